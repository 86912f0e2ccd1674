"""What every training method is: ``method(model, physics, y, x=None, generator=None) -> LossOutput``."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from sei.core.checks import check_image_batch
from sei.core.errors import MissingGroundTruthError, ShapeError
from sei.core.scaling import upscaled_size
from sei.physics.base import physics_spatial_dims, physics_upscale

__all__ = ["LossOutput", "Method"]


@dataclass
class LossOutput:
    """What a method returns for one batch.

    :ivar loss: scalar to minimise (with its graph).
    :ivar parts: named detached scalars for logging (``sure``, ``equivariance``, ``mse`` ...).
    :ivar estimate: detached ``f(y)`` where the method computed it, else ``None``.
    """

    loss: torch.Tensor
    parts: dict[str, torch.Tensor] = field(default_factory=dict)
    estimate: torch.Tensor | None = None


class Method(nn.Module):
    """Base class: ``method(model, physics, y, x=None, generator=None, borders=None) -> LossOutput``.

    ``y`` is a ``(B, C, h, w)`` batch of measurements (``(B, C, d, h, w)`` volumes for an operator of volumes),
    ``x`` the matching ``(B, C, h r, w r)`` clean images when available, ``generator`` the source of every random
    draw the loss makes, ``borders`` ``(B, dims, 2)`` which ``(start, end)`` side of each crop along each axis is its
    measurement's own border (:class:`sei.data.pairs.CropDataset`; ``None``: none is). Subclasses implement
    :meth:`compute`; this class checks the inputs first.
    """

    name: str = ""
    needs_ground_truth: bool = False

    def forward(self, model, physics, y: torch.Tensor, x: torch.Tensor | None = None,
                generator: torch.Generator | None = None, borders: torch.Tensor | None = None) -> LossOutput:
        dims = physics_spatial_dims(physics)
        check_image_batch(y, "y", dims)
        if x is None and self.needs_ground_truth:
            raise MissingGroundTruthError(
                f"method {self.name!r} needs clean images; train it on a dataset with ground truth, "
                "or use a self-supervised method (sei, css, ei-shift, ei-rotate, sure)"
            )
        if x is not None:
            check_image_batch(x, "x", dims)
            expected = (*y.shape[:2], *upscaled_size(y.shape[2:], physics_upscale(physics)))
            if tuple(x.shape) != expected:
                raise ShapeError(f"clean images should have shape {expected} to match measurements "
                                 f"{tuple(y.shape)}, got {tuple(x.shape)}")
        return self.compute(model, physics, y, x, generator, borders)

    def compute(self, model, physics, y, x, generator, borders) -> LossOutput:  # pragma: no cover - abstract
        raise NotImplementedError
