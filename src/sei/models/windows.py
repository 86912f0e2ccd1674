"""Networks whose input size must be a multiple of some ``m`` (a U-Net's down-samplings, SwinIR's window), applied
to inputs of any size without padding a border into the image.

Padding such an input up to a multiple puts an artificial border in it (a mirror's kink, or a flat band), and a
deblurring network sharpens that kink into a spike on the last columns: up to 130 grey levels on a 409 px wide
photograph. :func:`apply_aligned` instead computes the largest aligned window at the top left, and aligned strips of
:data:`STRIP` px anchored at the right and bottom borders for the last few columns and rows (and planes, for
volumes): every output pixel is the network's on real image content.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from sei.core.scaling import scale_factors

__all__ = ["STRIP", "apply_aligned"]

# Width of the border strips: wider than the reach of a border into the output (a few pixels for unet-small, a few
# windows for SwinIR), so a strip's pixels near the image border see the same context as in the whole image.
STRIP = 64


def apply_aligned(network: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, multiple: int, upscale: int = 1,
                  strip: int = STRIP, spatial_dims: int = 2) -> torch.Tensor:
    """``network`` applied to ``x`` of any size, each call on a window whose sizes are multiples of ``multiple``.

    Axis by axis: the aligned start of the axis, then a strip of ``strip`` px ending at its border, of which only the
    last (unaligned) rows are kept; in 2-D that is the top-left window, the right and bottom strips and the corner.

    :param network: maps ``(B, C, h, w)`` with ``h, w`` multiples of ``multiple`` to ``(B, C', upscale h, upscale
        w)``; it is also given the whole of ``x`` when ``x`` is aligned already or smaller than one multiple along
        an axis (then padding it is the network's own business).
    :param x: ``(B, C, H, W)``, or ``(B, C, D, H, W)`` with ``spatial_dims=3``.
    :param multiple: the size multiple the network needs, in pixels.
    :param upscale: the network's output size over its input size (along z only for volumes:
        :func:`sei.core.scaling.scale_factors`).
    :param strip: the border strips' width in pixels (rounded up to a multiple).
    :return: ``(B, C', upscale H, upscale W)`` (and likewise in 3-D).

    >>> double = lambda t: t.repeat_interleave(2, -1).repeat_interleave(2, -2)
    >>> apply_aligned(double, torch.rand(1, 1, 9, 13), multiple=4, upscale=2).shape
    torch.Size([1, 1, 18, 26])
    """
    sizes = x.shape[-spatial_dims:]
    if all(n % multiple == 0 for n in sizes) or any(n < multiple for n in sizes):
        return network(x)
    strip = -(-strip // multiple) * multiple
    factors = scale_factors(upscale, spatial_dims)

    def windowed(window: torch.Tensor, axis: int) -> torch.Tensor:
        if axis == 0:
            return network(window)
        size = window.shape[axis]
        aligned = size - size % multiple
        if aligned == size:
            return windowed(window, axis + 1)
        width, extra = min(aligned, strip), (size - aligned) * factors[axis]
        start = windowed(window.narrow(axis, 0, aligned), axis + 1)
        end = windowed(window.narrow(axis, size - width, width), axis + 1)
        return torch.cat([start, end.narrow(axis, end.shape[axis] - extra, extra)], dim=axis)

    return windowed(x, -spatial_dims)
