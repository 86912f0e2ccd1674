"""Explicit randomness: every random draw comes from a generator seeded by a tuple of keys.

Keys such as (run seed, purpose, epoch, sample index, rank) are mixed with NumPy's ``SeedSequence`` (a
hash designed for this), so nearby keys give unrelated streams and a resumed run, which knows its epoch and
step, draws exactly what an uninterrupted run would have drawn.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

__all__ = ["derive_seed", "make_generator"]


def _as_int(key: int | str) -> int:
    if isinstance(key, str):  # purpose labels ("crop", "loss"), hashed stably across processes
        return zlib.crc32(key.encode("utf-8"))
    if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or key < 0:
        raise ValueError(f"seed keys must be non-negative integers or strings, got {key!r}")
    return int(key)


def derive_seed(*keys: int | str) -> int:
    """A 63-bit seed determined by ``keys``."""
    state = np.random.SeedSequence([_as_int(key) for key in keys]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def make_generator(*keys: int | str, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` seeded by :func:`derive_seed` of ``keys``.

    >>> draw = lambda *keys: torch.rand(2, generator=make_generator(*keys))
    >>> torch.equal(draw(0, "crop", 3, 7), draw(0, "crop", 3, 7)), torch.equal(draw(0, "crop", 3, 7), draw(0, "crop", 3, 8))
    (True, False)
    """
    return torch.Generator(device=device).manual_seed(derive_seed(*keys))
