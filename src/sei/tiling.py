"""Tiled inference: restore an image of any size in bounded memory, blending overlapping tiles without seams.

The measurement is cut into overlapping tiles, each restored on its own, and the outputs are blended with a
weight that falls smoothly to (almost) zero towards each tile's border, where a network sees the least
context. Memory depends on the tile size, not on the image size.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from sei.errors import ConfigError


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``[0, length)`` with at least ``overlap`` px overlap."""
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def blend_window(height: int, width: int, ramp: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """``(height, width)`` weights: 1 inside, raised-cosine ramps over ``ramp`` px at each border, never 0."""

    def profile(length: int) -> torch.Tensor:
        weights = torch.ones(length, dtype=torch.float64)
        size = min(ramp, length // 2)
        if size > 0:
            positions = (torch.arange(size, dtype=torch.float64) + 0.5) / size
            rise = 0.5 - 0.5 * torch.cos(torch.pi * positions)
            weights[:size] = rise
            weights[length - size:] = rise.flip(0)
        return weights.clamp_min(1e-3)

    return torch.outer(profile(height), profile(width)).to(dtype=dtype, device=device)


@torch.no_grad()
def tiled_apply(restore: Callable[[torch.Tensor], torch.Tensor], y: torch.Tensor, tile: int = 256,
                overlap: int = 32, upscale: int = 1) -> torch.Tensor:
    """``restore(y)`` computed tile by tile.

    :param restore: ``(B, C, h, w) -> (B, C, h r, w r)``, for any tile size.
    :param y: ``(B, C, H, W)`` measurement.
    :param tile: tile size in measurement pixels; an image no larger than one tile is restored whole.
    :param overlap: overlap between neighbouring tiles in measurement pixels (the blending ramp's width).
    :param upscale: ``r``, the output's size ratio.
    :return: ``(B, C, H r, W r)``.
    """
    if tile < 1 or overlap < 0 or overlap >= tile:
        raise ConfigError(f"need tile > overlap >= 0, got tile={tile}, overlap={overlap}")
    height, width = y.shape[-2:]
    if height <= tile and width <= tile:
        return restore(y)
    tile_h, tile_w = min(tile, height), min(tile, width)
    output = None
    total = None
    window = blend_window(tile_h * upscale, tile_w * upscale, overlap * upscale, device=y.device)
    for top in tile_starts(height, tile_h, overlap):
        for left in tile_starts(width, tile_w, overlap):
            piece = restore(y[..., top:top + tile_h, left:left + tile_w]).float()
            if output is None:
                output = piece.new_zeros(*piece.shape[:2], height * upscale, width * upscale)
                total = piece.new_zeros(height * upscale, width * upscale)
            rows = slice(top * upscale, (top + tile_h) * upscale)
            cols = slice(left * upscale, (left + tile_w) * upscale)
            output[..., rows, cols] += piece * window
            total[rows, cols] += window
    return output / total
