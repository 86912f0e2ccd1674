"""Tiled inference: restore an image of any size in bounded memory, blending overlapping tiles without seams.

The measurement is cut into overlapping tiles, each restored on its own, and the outputs are blended with a
weight that falls smoothly to (almost) zero towards each tile's border, where a network sees the least
context. Memory depends on the tile size, not on the image size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from sei.core.errors import ConfigError
from sei.core.scaling import scale_factors

__all__ = ["blend_profile", "blend_window", "planes_by_chunks", "tile_layout", "tiled_apply"]


def tile_layout(length: int, tile: int, overlap: int, multiple: int = 1) -> tuple[int, list[int]]:
    """Size and start offsets of equal tiles, at most ``tile`` px, covering ``[0, length)`` with at least
    ``overlap`` px between neighbours.

    Every repeated pixel is computed again, so the tiles are as few and as small as cover the length: fixed-size
    tiles can repeat most of one (1024 px in 512 px tiles: three tiles, 1536 px, where three of 368 px do).
    With ``multiple`` (a network's window or total stride), tiles have sizes and, but for the last one, starts on
    its multiples: a network whose output depends on the position of its input on that grid (strided
    convolutions, windows) then computes each tile as it computes the whole image, so tiles agree where they
    overlap; if no such tile fits within ``tile``, they are not aligned.

    >>> tile_layout(100, 48, 8)  # three tiles of 39 px cover 100 px with at least 8 px of overlap
    (39, [0, 31, 61])
    >>> tile_layout(100, 48, 8, multiple=8)  # on a U-Net's grid of 8
    (40, [0, 32, 60])
    """
    if length <= tile:
        return length, [0]
    if tile // multiple * multiple - overlap < multiple:
        multiple = 1
    count = -(-(length - overlap) // (tile - overlap))  # the fewest tiles of full size
    while True:
        smallest = -(-(length + (count - 1) * overlap) // count)  # the smallest size ``count`` tiles can have
        for size in range(-(-smallest // multiple) * multiple, tile + 1, multiple):
            step = (size - overlap) // multiple * multiple
            if (count - 1) * step + size >= length:
                # count - 1 tiles fell short at every size, so the last start is past the others
                return size, [index * step for index in range(count - 1)] + [length - size]
        count += 1


def blend_profile(length: int, ramp: int) -> torch.Tensor:
    """``(length,)`` float64 weights: 1 inside, raised-cosine ramps over ``ramp`` px at each end, never 0.

    >>> blend_profile(6, 2).tolist()
    [0.1464466094067262, 0.8535533905932737, 1.0, 1.0, 0.8535533905932737, 0.1464466094067262]
    """
    weights = torch.ones(length, dtype=torch.float64)
    size = min(ramp, length // 2)
    if size > 0:
        positions = (torch.arange(size, dtype=torch.float64) + 0.5) / size
        rise = 0.5 - 0.5 * torch.cos(torch.pi * positions)
        weights[:size] = rise
        weights[length - size:] = rise.flip(0)
    return weights.clamp_min(1e-3)


def blend_window(height: int, width: int, ramp: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """``(height, width)`` weights: :func:`blend_profile` along each axis."""
    return torch.outer(blend_profile(height, ramp), blend_profile(width, ramp)).to(dtype=dtype, device=device)


def planes_by_chunks(restore: Callable[[torch.Tensor], torch.Tensor], read: Callable[[int, int], torch.Tensor],
                     depth: int, chunk: int, overlap: int, multiple: int = 1, upscale: int = 1
                     ) -> Iterator[torch.Tensor]:
    """The planes of ``restore(volume)``, computed over overlapping chunks of planes and blended along z as
    :func:`tiled_apply` blends tiles, yielded in order as soon as no later chunk reaches them: memory holds about
    one chunk (its measurement, its estimate and their blend), whatever the depth.

    :param restore: ``(B, C, d, h, w) -> (B, C, d r, H, W)`` for any ``d`` (tiled laterally itself if it likes).
    :param read: ``read(start, stop)``: the measurement's planes ``[start, stop)``, ``(B, C, stop - start, h, w)``.
    :param depth: the volume's planes; ``chunk``: the most planes restored at once; ``overlap``: planes that
        neighbouring chunks share at least (the blend's ramp); ``multiple``: the grid chunks are aligned to
        (:func:`tile_layout`), all in measurement planes.
    :param upscale: ``r``, the estimate's planes per measurement plane (axial super-resolution).
    :return: ``depth r`` planes ``(B, C, H, W)`` in float32.
    """
    if chunk < 1 or overlap < 0 or overlap >= chunk:
        raise ConfigError(f"need chunk > overlap >= 0, got chunk={chunk}, overlap={overlap}")
    size, starts = tile_layout(depth, chunk, overlap, multiple)
    # from here on in the estimate's planes
    size, starts, depth = size * upscale, [start * upscale for start in starts], depth * upscale
    weights = blend_profile(size, overlap * upscale if len(starts) > 1 else 0).float()
    total = sums = None
    done = 0  # planes yielded; the sums hold planes [done, done + size)
    for start in starts:
        if start > done:  # no later chunk reaches planes [done, start): out they go, and the sums move on
            shift = start - done
            for plane in range(shift):
                yield sums[:, :, plane] / total[plane]
            sums = torch.cat([sums[:, :, shift:], sums.new_zeros(*sums.shape[:2], shift, *sums.shape[3:])], dim=2)
            total = torch.cat([total[shift:], total.new_zeros(shift)])
            done = start
        piece = restore(read(start // upscale, (start + size) // upscale)).float()
        if sums is None:
            sums, total = torch.zeros_like(piece), torch.zeros(size, dtype=piece.dtype, device=piece.device)
        sums += piece * weights.to(piece.device)[:, None, None]
        total += weights.to(piece.device)
    for plane in range(depth - done):
        yield sums[:, :, plane] / total[plane]


@torch.no_grad()
def tiled_apply(restore: Callable[[torch.Tensor], torch.Tensor], y: torch.Tensor, tile: int = 256,
                overlap: int = 32, upscale: int = 1, multiple: int = 1) -> torch.Tensor:
    """``restore(y)`` computed tile by tile.

    :param restore: ``(B, C, h, w) -> (B, C, h r, w r)``, for any tile size; of volumes ``(B, C, d, h, w) ->
        (B, C, d r, h, w)`` (:mod:`sei.core.scaling`).
    :param y: ``(B, C, H, W)`` measurement, or a ``(B, C, D, H, W)`` volume, tiled laterally (each tile holds every
        plane: a z-stack is far thinner than wide).
    :param tile: tile size in measurement pixels; an image no larger than one tile is restored whole.
    :param overlap: overlap between neighbouring tiles in measurement pixels (the blending ramp's width).
    :param upscale: ``r``, the output's size ratio.
    :param multiple: the grid ``restore`` computes on (e.g. a network's window), which tile sizes and starts
        are aligned to when such tiles fit within ``tile`` (:func:`tile_layout`).
    :return: ``(B, C, H r, W r)``, or ``(B, C, D r, H, W)``.
    """
    if tile < 1 or overlap < 0 or overlap >= tile:
        raise ConfigError(f"need tile > overlap >= 0, got tile={tile}, overlap={overlap}")
    height, width = y.shape[-2:]
    if height <= tile and width <= tile:
        return restore(y)
    tile_h, tops = tile_layout(height, tile, overlap, multiple)
    tile_w, lefts = tile_layout(width, tile, overlap, multiple)
    output = None
    total = None
    lateral = scale_factors(upscale, y.ndim - 2)[-1]  # a volume is super-resolved along z, not within its tiles
    window = blend_window(tile_h * lateral, tile_w * lateral, overlap * lateral, device=y.device)
    for top in tops:
        for left in lefts:
            piece = restore(y[..., top:top + tile_h, left:left + tile_w]).float()
            if output is None:
                output = piece.new_zeros(*piece.shape[:-2], height * lateral, width * lateral)
                total = piece.new_zeros(height * lateral, width * lateral)
            rows = slice(top * lateral, (top + tile_h) * lateral)
            cols = slice(left * lateral, (left + tile_w) * lateral)
            output[..., rows, cols] += piece * window
            total[rows, cols] += window
    return output / total
