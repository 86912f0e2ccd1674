"""Supervised losses: MSE to the clean image, and CSS (supervised on re-degraded measurement pairs), as functions and
as training methods."""

from __future__ import annotations

import torch

from sei.losses.base import LossOutput, Method
from sei.physics.noise import measure

__all__ = ["CSS", "css_loss", "css_pair", "Supervised", "supervised_loss"]


def supervised_loss(model, y: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``mean((f(y) - x)^2)`` and the estimate ``f(y)``."""
    estimate = model(y)
    return (estimate.float() - x.float()).pow(2).mean(), estimate


def css_pair(physics, y: torch.Tensor, generator: torch.Generator | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """CSS training pair from a measurement alone: input ``A y + e''``, target ``y``.

    The measurement plays the role of the clean image: the network learns to undo one more application of
    the operator. For super-resolution the input is ``y`` down-sampled once more.
    """
    degraded = measure(physics, y, generator)
    return degraded.to(y.dtype), y


def css_loss(model, physics, y: torch.Tensor, generator: torch.Generator | None = None
             ) -> torch.Tensor:
    """``mean((f(A y + e'') - y)^2)``."""
    degraded, target = css_pair(physics, y, generator)
    return (model(degraded).float() - target.float()).pow(2).mean()


class Supervised(Method):
    """``mean((f(y) - x)^2)``."""

    name = "supervised"
    needs_ground_truth = True

    def compute(self, model, physics, y, x, generator, borders) -> LossOutput:
        loss, estimate = supervised_loss(model, y, x)
        return LossOutput(loss, {"mse": loss.detach()}, estimate.detach())


class CSS(Method):
    """``mean((f(A y + e'') - y)^2)``: supervised training on re-degraded measurements."""

    name = "css"

    def compute(self, model, physics, y, x, generator, borders) -> LossOutput:
        loss = css_loss(model, physics, y, generator)
        return LossOutput(loss, {"css": loss.detach()})
