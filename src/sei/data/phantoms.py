"""A 3-D fluorescence phantom with known ground truth: beads, filaments and hollow shells.

Microscopy benchmarks need a volume whose sharp truth is known and which holds what a deconvolution must get right
along z as well as across: points (sub-resolution beads, which show the PSF's length), lines at every orientation
(filaments such as microtubules, which show whether axial blur is undone for tilted structures) and surfaces
(hollow shells such as vesicle or nuclear membranes, whose top and bottom caps the axial blur smears into their
sides). Everything is drawn with anti-aliased edges (a smooth profile of the distance to the object, so the volume
is band-limited enough for any voxel size) over a dim background, in photons per voxel at its brightest.

>>> volume = fluorescence_phantom((16, 48, 48), seed=0)
>>> volume.shape, volume.dtype, bool(volume.min() >= 0), round(float(volume.max()), 3)
(torch.Size([16, 48, 48]), torch.float32, True, 1.0)
"""

from __future__ import annotations

import math

import torch

from sei.core.errors import ConfigError

__all__ = ["BACKGROUND", "fluorescence_phantom"]

BACKGROUND = 0.02  # the dim autofluorescence every real sample has, as a fraction of the brightest structure


def _profile(distance: torch.Tensor, radius: float) -> torch.Tensor:
    """1 inside ``radius``, 0 beyond, with a one-voxel smooth edge (a logistic of the distance)."""
    return torch.sigmoid((radius - distance) * 4.0)


def _coordinates(shape: tuple[int, int, int], anisotropy: float) -> torch.Tensor:
    """``(D, H, W, 3)`` voxel centres in lateral-voxel units (z stretched by ``anisotropy``)."""
    axes = [torch.arange(n, dtype=torch.float32) for n in shape]
    z, y, x = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([z * anisotropy, y, x], dim=-1)


def _segment_distance(points: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    direction = end - start
    t = ((points - start) @ direction / direction.dot(direction)).clamp(0, 1)
    return (points - start - t[..., None] * direction).norm(dim=-1)


def fluorescence_phantom(shape: tuple[int, int, int], seed: int = 0, anisotropy: float = 1.0, beads: int | None = None,
                         filaments: int | None = None, shells: int | None = None) -> torch.Tensor:
    """A ``(D, H, W)`` float32 volume in [0, 1]: beads, filaments and hollow shells over a dim background.

    :param shape: ``(planes, height, width)`` in voxels, each at least 8.
    :param seed: the random layout (positions, orientations, sizes, brightnesses).
    :param anisotropy: the z-step over the lateral voxel size: structures keep their physical shape (a shell stays
        round) in a stack sampled more coarsely along z.
    :param beads: number of sub-resolution beads; ``filaments``, ``shells``: of filaments and hollow shells (by
        default 10, 8 and 2 per 24,000 voxels, at least one of each).
    :raises ConfigError: for a shape with an axis under 8 voxels, or a non-positive anisotropy.
    """
    if len(shape) != 3 or any(not isinstance(n, int) or n < 8 for n in shape):
        raise ConfigError(f"a phantom needs three axes of at least 8 voxels, got {shape}")
    if not anisotropy > 0:
        raise ConfigError(f"the anisotropy (z-step over pixel size) must be positive, got {anisotropy}")
    generator = torch.Generator().manual_seed(seed)

    def uniform(low: float, high: float, *size: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(size or (1,), generator=generator)

    points = _coordinates(shape, anisotropy)
    extent = torch.tensor([(shape[0] - 1) * anisotropy, shape[1] - 1, shape[2] - 1])
    scale = math.prod(shape) / 8 / 3000
    beads = max(1, round(10 * scale)) if beads is None else beads
    filaments = max(1, round(8 * scale)) if filaments is None else filaments
    shells = max(1, round(2 * scale)) if shells is None else shells
    volume = torch.full(shape, BACKGROUND)
    for _ in range(filaments):  # lines crossing the volume at a random orientation, tilted out of the plane
        start, end = uniform(0, 1, 3) * extent, uniform(0, 1, 3) * extent
        if (end - start).norm() < 4:
            continue
        width = float(uniform(0.6, 1.2))
        volume = torch.maximum(volume, float(uniform(0.4, 0.8)) * _profile(_segment_distance(points, start, end),
                                                                               width))
    for _ in range(shells):  # hollow spheres: a membrane of 1-1.5 voxels
        radius = float(uniform(3, max(4.0, min(extent[1:].min().item(), extent[0].item() + 4) / 4)))
        centre = uniform(0, 1, 3) * extent
        distance = (points - centre).norm(dim=-1)
        thickness = float(uniform(1.0, 1.5))
        membrane = _profile((distance - radius).abs(), thickness / 2)
        volume = torch.maximum(volume, float(uniform(0.5, 0.9)) * membrane)
    for _ in range(beads):  # sub-resolution points, the brightest
        centre = uniform(0, 1, 3) * extent
        volume = torch.maximum(volume, float(uniform(0.6, 1.0)) * _profile((points - centre).norm(dim=-1), 0.7))
    return (volume / volume.max()).to(torch.float32)
