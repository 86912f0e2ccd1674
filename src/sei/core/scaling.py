"""How super-resolution scales each axis: images along both axes, volumes (z-stacks) along z only.

A microscope samples a z-stack several times more coarsely along z than across, and that is the axis whose
resolution super-resolution of volumes restores (axial super-resolution, towards isotropic voxels); images are
super-resolved along both axes, as in the paper. This is the one place that says so: operators, networks, tiling
and file writers ask it for an estimate's size.

>>> scale_factors(2, spatial_dims=2), scale_factors(3, spatial_dims=3)
((2, 2), (3, 1, 1))
>>> upscaled_size((10, 32, 40), 3)
(30, 32, 40)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the sizes' rules are read where torch is not loaded (the command line's help)
    import torch

__all__ = ["decimable", "interpolate_up", "measured_margin", "scale_factors", "upscaled_size"]


def scale_factors(upscale: int, spatial_dims: int) -> tuple[int, ...]:
    """An estimate's size over its measurement's, per spatial axis: ``(r, r)`` for ``(H, W)`` images, ``(r, 1, 1)``
    for ``(D, H, W)`` volumes.

    :param upscale: the super-resolution factor ``r`` (1: deblurring).
    :param spatial_dims: 2 for images, 3 for volumes.
    """
    if spatial_dims == 3:
        return (int(upscale), 1, 1)
    return (int(upscale),) * spatial_dims


def upscaled_size(size: Sequence[int], upscale: int) -> tuple[int, ...]:
    """The spatial size of the estimate of a measurement of spatial ``size`` (``(h, w)`` or ``(d, h, w)``)."""
    return tuple(int(n) * f for n, f in zip(size, scale_factors(upscale, len(size))))


def measured_margin(kernel_shape: Sequence[int], upscale: int = 1) -> tuple[int, ...]:
    """Measurement rows and columns (planes first, for volumes) at each border that a kernel of ``kernel_shape``
    reaches across: its half-size ``(k - 1) // 2`` per axis, divided by what super-resolution by ``upscale``
    decimates there and rounded up. SURE leaves them out of a training crop.

    >>> measured_margin((7, 7)), measured_margin((7, 7), 2), measured_margin((45, 21, 21), 3)
    ((3, 3), (2, 2), (8, 10, 10))
    """
    factors = scale_factors(upscale, len(kernel_shape))
    return tuple(-(-((int(k) - 1) // 2) // f) for k, f in zip(kernel_shape, factors))


def decimable(image: torch.Tensor, upscale: int) -> torch.Tensor:
    """``image`` ``(C, *spatial)`` cut at its far end of each axis to a multiple of what super-resolution by
    ``upscale`` decimates there (:func:`scale_factors`): rows and columns of an image, planes of a volume.

    >>> import torch
    >>> decimable(torch.zeros(1, 7, 9, 10), 3).shape, decimable(torch.zeros(1, 7, 9), 2).shape
    (torch.Size([1, 6, 9, 10]), torch.Size([1, 6, 8]))
    """
    factors = scale_factors(upscale, image.ndim - 1)
    return image[(slice(None), *(slice(0, n - n % f) for n, f in zip(image.shape[1:], factors)))]


def interpolate_up(x: torch.Tensor, upscale: int) -> torch.Tensor:
    """The smooth enlargement of a measurement to its estimate's size: bicubic for ``(B, C, h, w)`` images, cubic
    along z only for ``(B, C, d, h, w)`` volumes (each plane's pixels are left as they are).

    >>> import torch
    >>> interpolate_up(torch.rand(1, 1, 4, 5, 6), 2).shape
    torch.Size([1, 1, 8, 5, 6])
    """
    import torch.nn.functional as F

    if upscale == 1:
        return x
    if x.ndim == 5:  # cubic along z: a bicubic interpolation of (z, pixel) planes whose second factor is 1
        batch, channels, depth, height, width = x.shape
        planes = x.reshape(batch, channels, depth, height * width)
        enlarged = F.interpolate(planes, scale_factor=(upscale, 1), mode="bicubic", align_corners=False)
        return enlarged.reshape(batch, channels, depth * upscale, height, width)
    return F.interpolate(x, scale_factor=upscale, mode="bicubic", align_corners=False)
