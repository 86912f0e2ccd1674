"""Training methods by name: each turns a batch into a scalar loss and its named parts.

======================  ==========================================================  ==============
name (aliases)          loss                                                        ground truth
======================  ==========================================================  ==============
``sei`` (proposed)      SURE + alpha * scale equivariance, stop-gradient            no
``supervised`` (sup)    MSE to the clean image                                      yes
``css``                 MSE of f(A y + e'') to y (re-degraded measurement pairs)    no
``ei-shift``            SURE + alpha * circular-shift equivariance, stop-gradient   no
``ei-rotate``           SURE + alpha * rotation equivariance, stop-gradient         no
``sure``                SURE only                                                   no
``sei-no-stop-grad``    SEI with gradients through the transformed target           no
======================  ==========================================================  ==============
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from sei.errors import ConfigError, MissingGroundTruthError, ShapeError, UnknownNameError
from sei.losses.equivariance import equivariance_loss
from sei.losses.supervised import css_loss, supervised_loss
from sei.losses.sure import sure_gaussian
from sei.physics.base import check_image_batch, physics_margin, physics_upscale
from sei.physics.factory import noise_sigma
from sei.transforms import DEFAULT_SCALE_FACTORS, RandomRotate, RandomScale, RandomShift


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
    """Base class: ``method(model, physics, y, x=None, generator=None) -> LossOutput``.

    ``y`` is a ``(B, C, h, w)`` batch of measurements, ``x`` the matching ``(B, C, h r, w r)`` clean images
    when available, ``generator`` the source of every random draw the loss makes.
    """

    name: str = ""
    needs_ground_truth: bool = False

    def forward(self, model, physics, y: torch.Tensor, x: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> LossOutput:
        check_image_batch(y, "y")
        if x is None and self.needs_ground_truth:
            raise MissingGroundTruthError(
                f"method {self.name!r} needs clean images; train it on a dataset with ground truth, "
                "or use a self-supervised method (sei, css, ei-shift, ei-rotate, sure)"
            )
        if x is not None:
            check_image_batch(x, "x")
            upscale = physics_upscale(physics)
            expected = (y.shape[0], y.shape[1], y.shape[2] * upscale, y.shape[3] * upscale)
            if tuple(x.shape) != expected:
                raise ShapeError(f"clean images should have shape {expected} to match measurements "
                                 f"{tuple(y.shape)}, got {tuple(x.shape)}")
        return self.compute(model, physics, y, x, generator)

    def compute(self, model, physics, y, x, generator) -> LossOutput:  # pragma: no cover - abstract
        raise NotImplementedError


class Supervised(Method):
    """``mean((f(y) - x)^2)``."""

    name = "supervised"
    needs_ground_truth = True

    def compute(self, model, physics, y, x, generator) -> LossOutput:
        loss, estimate = supervised_loss(model, y, x)
        return LossOutput(loss, {"mse": loss.detach()}, estimate.detach())


class CSS(Method):
    """``mean((f(A y + e'') - y)^2)``: supervised training on re-degraded measurements."""

    name = "css"

    def compute(self, model, physics, y, x, generator) -> LossOutput:
        loss = css_loss(model, physics, y, noise_sigma(physics), generator)
        return LossOutput(loss, {"css": loss.detach()})


class SureEquivariant(Method):
    """``SURE(y, f) + alpha * ||f(A T x_hat + e') - T x_hat||^2``, or SURE alone when ``transform`` is None.

    :param transform: random transform module called as ``transform(x, generator)``; None for SURE only.
    :param alpha: weight of the equivariance term.
    :param stop_gradient: compute ``T x_hat`` without gradient (the paper's choice).
    :param tau: SURE finite-difference step.
    :param sure_constant: ``"unbiased"`` or ``"reference"`` (see :func:`sei.losses.sure.sure_gaussian`).
    :param batched_probe: evaluate ``f(y)`` and ``f(y + tau b)`` in one batch.
    """

    def __init__(self, name: str, transform: nn.Module | None, alpha: float = 1.0, stop_gradient: bool = True,
                 tau: float = 0.01, sure_constant: str = "unbiased", batched_probe: bool = True) -> None:
        super().__init__()
        if alpha < 0:
            raise ConfigError(f"equivariance weight alpha must be >= 0, got {alpha}")
        self.name = name
        self.transform = transform
        self.alpha = float(alpha)
        self.stop_gradient = bool(stop_gradient)
        self.tau = float(tau)
        self.sure_constant = sure_constant
        self.batched_probe = bool(batched_probe)

    def compute(self, model, physics, y, x, generator) -> LossOutput:
        sigma = noise_sigma(physics)
        sure = sure_gaussian(model, physics, y, sigma, generator, margin=physics_margin(physics), tau=self.tau,
                             constant=self.sure_constant, batched_probe=self.batched_probe)
        parts = {"sure": sure.loss.detach(), "sure_residual": sure.residual.detach(),
                 "sure_divergence": sure.divergence.detach()}
        loss = sure.loss
        if self.transform is not None:
            equivariance, _ = equivariance_loss(model, physics, sure.estimate, self.transform, sigma, generator,
                                                alpha=self.alpha, stop_gradient=self.stop_gradient)
            parts["equivariance"] = equivariance.detach()
            loss = loss + equivariance
        return LossOutput(loss, parts, sure.estimate.detach())

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, alpha={self.alpha}, stop_gradient={self.stop_gradient}, tau={self.tau}, "
                f"sure_constant={self.sure_constant!r}")


@dataclass(frozen=True)
class MethodInfo:
    """Registry entry: what a method is, for help texts and reports."""

    name: str
    description: str
    needs_ground_truth: bool


METHODS: dict[str, MethodInfo] = {
    "sei": MethodInfo("sei", "SURE + scale equivariance with stop-gradient (the paper's method)", False),
    "supervised": MethodInfo("supervised", "MSE to clean images", True),
    "css": MethodInfo("css", "supervised on re-degraded measurement pairs (A y + e'', y)", False),
    "ei-shift": MethodInfo("ei-shift", "SURE + circular-shift equivariance", False),
    "ei-rotate": MethodInfo("ei-rotate", "SURE + rotation equivariance", False),
    "sure": MethodInfo("sure", "SURE only (measurement consistency)", False),
    "sei-no-stop-grad": MethodInfo("sei-no-stop-grad", "SEI without stop-gradient (ablation)", False),
}
METHOD_ALIASES = {"proposed": "sei", "sup": "supervised", "sei-no-stop-gradient": "sei-no-stop-grad",
                  "sure-only": "sure"}


def canonical_method(name: str) -> str:
    """The registry name for ``name`` or one of its aliases (case-insensitive, ``_`` read as ``-``)."""
    key = str(name).strip().lower().replace("_", "-")
    key = METHOD_ALIASES.get(key, key)
    if key not in METHODS:
        raise UnknownNameError("method", name, list(METHODS) + list(METHOD_ALIASES))
    return key


def build_method(
    name: str,
    alpha: float = 1.0,
    tau: float = 0.01,
    scale_factors: Sequence[float] = DEFAULT_SCALE_FACTORS,
    rotation_multiples: float = 1.0,
    sure_constant: str = "unbiased",
    batched_probe: bool = True,
    stop_gradient: bool = True,
) -> Method:
    """A training method by name (see the module table).

    :param stop_gradient: ``False`` turns ``sei``, ``ei-shift`` and ``ei-rotate`` into their
        no-stop-gradient ablations (``sei-no-stop-grad`` is ``sei`` with this set).
    """
    key = canonical_method(name)
    if key == "supervised":
        return Supervised()
    if key == "css":
        return CSS()
    options = dict(alpha=alpha, tau=tau, sure_constant=sure_constant, batched_probe=batched_probe)
    if key == "sure":
        return SureEquivariant(key, None, **options)
    if key in ("sei", "sei-no-stop-grad"):
        transform = RandomScale(scale_factors)
        stop_gradient = stop_gradient and key == "sei"
        key = "sei" if stop_gradient else "sei-no-stop-grad"
    elif key == "ei-shift":
        transform = RandomShift()
    else:
        transform = RandomRotate(rotation_multiples)
    return SureEquivariant(key, transform, stop_gradient=stop_gradient, **options)
