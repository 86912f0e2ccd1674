"""The flips and quarter turns of images and volumes (the dihedral group of the square; volumes may also reverse their
planes), and those an operator commutes with: the ones a plain network trained for it may see.

For a transform ``T`` of that group (:func:`dihedral`) and ``y = A x + e``,
``T y = (T A T^-1)(T x) + T e``, and white noise stays white: where ``T A = A T``, ``T y`` is a measurement of ``T x``
through ``A`` itself. The self-ensemble (:mod:`sei.inference.ensemble`) averages a network's estimates over them, and
training draws its crops through them (:class:`sei.data.pairs.CropDataset`).
"""

from __future__ import annotations

import torch

from sei.core.scaling import scale_factors
from sei.physics.base import physics_spatial_dims, physics_upscale

__all__ = ["commutes", "DIHEDRAL", "dihedral", "dihedral_inverse", "dihedral_sides", "operator_symmetries",
           "transform_count"]

# (quarter turns, flip) for the 8 elements of the dihedral group of the square; index 0 is the identity.
DIHEDRAL: tuple[tuple[int, bool], ...] = tuple((turns, flip) for flip in (False, True) for turns in range(4))


def dihedral(x: torch.Tensor, index: int) -> torch.Tensor:
    """Transform ``index`` of ``(..., H, W)`` tensors (0-7: an optional left-right flip, then quarter turns), or of
    ``(..., D, H, W)`` volumes (8-15: the planes' order reversed, then transform ``index - 8``)."""
    if index >= len(DIHEDRAL):
        x, index = x.flip(-3), index - len(DIHEDRAL)
    turns, flip = DIHEDRAL[index]
    if flip:
        x = x.flip(-1)
    return torch.rot90(x, turns, dims=(-2, -1)) if turns else x


def dihedral_inverse(x: torch.Tensor, index: int) -> torch.Tensor:
    """The inverse of :func:`dihedral` ``index``.

    >>> x = torch.rand(1, 1, 5, 7)
    >>> all(torch.equal(dihedral_inverse(dihedral(x, index), index), x) for index in range(len(DIHEDRAL)))
    True
    >>> v = torch.rand(1, 1, 3, 5, 7)
    >>> all(torch.equal(dihedral_inverse(dihedral(v, index), index), v) for index in range(2 * len(DIHEDRAL)))
    True
    """
    axial = index >= len(DIHEDRAL)
    turns, flip = DIHEDRAL[index % len(DIHEDRAL)]
    if turns:
        x = torch.rot90(x, -turns, dims=(-2, -1))
    if flip:
        x = x.flip(-1)
    return x.flip(-3) if axial else x


def dihedral_sides(sides: torch.Tensor, index: int) -> torch.Tensor:
    """Per-side flags of an image or volume, ``(N, 2)`` as ``(start, end)`` along each of its ``N`` axes (``(y, x)``
    or ``(z, y, x)``), after :func:`dihedral` ``index`` moved the sides: each flag is carried on a 3-per-axis grid
    through the same transform, so the two agree by construction.

    >>> sides = torch.tensor([[True, False], [False, False]])  # the top row is the image's border
    >>> dihedral_sides(sides, 1).tolist()  # a quarter turn counter-clockwise takes the top to the left
    [[False, False], [True, False]]
    """
    dims = sides.shape[0]
    grid = torch.zeros((3,) * dims)
    centre = [1] * dims
    for axis in range(dims):
        for end in (0, 1):
            place = list(centre)
            place[axis] = 2 * end
            grid[tuple(place)] = float(sides[axis, end])
    moved = dihedral(grid, index)
    flags = [[moved[tuple(centre[:axis] + [2 * end] + centre[axis + 1:])] > 0.5 for end in (0, 1)]
             for axis in range(dims)]
    return torch.tensor(flags, dtype=torch.bool)


def transform_count(physics) -> int:
    """How many transforms of :func:`dihedral` apply to ``physics``' measurements: the 8 of :data:`DIHEDRAL` for
    images, and as many again with the planes' order reversed for volumes."""
    return len(DIHEDRAL) * (2 if physics_spatial_dims(physics) == 3 else 1)


@torch.no_grad()
def commutes(physics, index: int, size: int = 24, tolerance: float = 1e-5) -> bool:
    """Whether ``A T = T A`` for transform ``index``, checked numerically on random square images (volumes of square
    planes for an operator of volumes, whose planes ``T`` transforms alike).

    Exact for any linear operator up to ``tolerance`` (relative): it decides which transforms a plain network
    trained for ``physics`` may see. The test image is ``size * upscale`` pixels wide, or twice the kernel, with
    sizes that are multiples of what the operator decimates (planes too, for axial super-resolution).
    """
    if index == 0:
        return True
    dims, upscale = physics_spatial_dims(physics), physics_upscale(physics)
    kernel = getattr(physics, "kernel", None)
    extent = 2 * max(kernel.shape[-2:]) if isinstance(kernel, torch.Tensor) and kernel.ndim >= 2 else 0
    factors = scale_factors(upscale, dims)
    lateral = max(size * factors[-1], extent)
    sizes = ([2 * kernel.shape[0]] if dims == 3 else []) + [lateral, lateral]
    sizes = [-(-n // f) * f for n, f in zip(sizes, factors)]  # multiples of what the operator decimates by
    generator = torch.Generator().manual_seed(index)
    x = torch.rand(2, 1, *sizes, generator=generator, dtype=torch.float64)
    left, right = physics.A(dihedral(x, index)), dihedral(physics.A(x), index)
    return bool((left - right).abs().max() <= tolerance * right.abs().max().clamp_min(1e-12))


def operator_symmetries(physics) -> tuple[int, ...]:
    """The transforms (indices of :func:`dihedral`, the identity 0 first) that ``physics`` commutes with.

    >>> from sei.physics import make_physics
    >>> operator_symmetries(make_physics("deblurring", kernel="Gaussian_R2"))
    (0, 1, 2, 3, 4, 5, 6, 7)
    """
    return tuple(index for index in range(transform_count(physics)) if commutes(physics, index))
