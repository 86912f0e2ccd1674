"""The check vocabulary: the checks public functions make at their top, each with one clear error.

>>> import torch
>>> check_image_batch(torch.zeros(2, 3, 8, 8))
>>> check_image_batch(torch.zeros(3, 8, 8))
Traceback (most recent call last):
...
sei.core.errors.ShapeError: x must have shape (B, C, H, W) (images), got (3, 8, 8)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from sei.core.errors import ShapeError

__all__ = ["check_image_batch", "is_count", "is_positive_number", "nonfinite_tensors"]


def check_image_batch(x: torch.Tensor, name: str = "x", spatial_dims: int = 2) -> None:
    """Raise :class:`~sei.core.errors.ShapeError` unless ``x`` is a ``(B, C, H, W)`` floating-point tensor, or
    ``(B, C, D, H, W)`` with ``spatial_dims=3`` (volumes)."""
    if not isinstance(x, torch.Tensor):
        raise ShapeError(f"{name} must be a tensor, got {type(x).__name__}")
    if x.ndim != 2 + spatial_dims:
        axes = "(B, C, H, W)" if spatial_dims == 2 else "(B, C, D, H, W)"
        what = {2: "images", 3: "volumes"}.get(spatial_dims, f"{spatial_dims}-D data")
        raise ShapeError(f"{name} must have shape {axes} ({what}), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ShapeError(f"{name} must be a floating-point tensor, got {x.dtype}")


def is_positive_number(value: Any) -> bool:
    """Whether ``value`` is a finite int or float above zero (booleans are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def is_count(value: Any, minimum: int = 0) -> bool:
    """Whether ``value`` is an int (not a boolean) of at least ``minimum``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def nonfinite_tensors(state: Mapping[str, Any]) -> list[str]:
    """Names of the floating-point (or complex) tensors of ``state`` holding a NaN or an infinity; other entries
    are not looked at.

    >>> nonfinite_tensors({"w": torch.tensor([1.0, float("nan")]), "step": torch.tensor(3), "name": "x"})
    ['w']
    """
    return [name for name, value in state.items()
            if isinstance(value, torch.Tensor) and (value.is_floating_point() or value.is_complex())
            and not bool(torch.isfinite(value).all())]
