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

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from sei.errors import ConfigError, MissingGroundTruthError, ShapeError, UnknownNameError
from sei.losses.equivariance import equivariance_loss
from sei.losses.supervised import css_loss, supervised_loss
from sei.losses.sure import pooled_noise_variance, sure_gaussian, sure_poisson_gaussian
from sei.physics.base import check_image_batch, physics_margin, physics_upscale
from sei.physics.noise import noise_parameters
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
        loss = css_loss(model, physics, y, generator)
        return LossOutput(loss, {"css": loss.detach()})


# Weight of one batch's estimate in the learned noise variance's running average: a memory of about 20 batches,
# which averages the batches' different content and follows the network as it fits (tests/test_learned_noise.py).
NOISE_VARIANCE_MOMENTUM = 0.05


class SureEquivariant(Method):
    """``SURE(y, f) + alpha * ||f(A T x_hat + e') - T x_hat||^2``, or SURE alone when ``transform`` is None.

    :param transform: random transform module called as ``transform(x, generator)``; None for SURE only.
    :param alpha: weight of the equivariance term.
    :param stop_gradient: compute ``T x_hat`` without gradient (the paper's choice).
    :param tau: SURE finite-difference step.
    :param sure_constant: ``"unbiased"`` or ``"reference"`` (see :func:`sei.losses.sure.sure_gaussian`).
    :param batched_probe: evaluate ``f(y)`` and ``f(y + tau b)`` in one batch.

    When the operator's spec says its Gaussian noise level is ``learned`` (``--noise-level learn``), sigma^2 is
    learned with the network: it starts at the operator's level (the measurements' estimate) and, after each
    training batch, moves to ``(1 - m) sigma^2 + m * residual / noise_gain`` (``m`` = ``NOISE_VARIANCE_MOMENTUM``),
    the running average of the residual estimate of :func:`sei.losses.sure.residual_noise_variance`: the noise power
    left in ``A f(y) - y`` over the share of the noise that the residual keeps, both from the SURE evaluation the
    batch already made. SURE and the equivariance term's noise e' use the learned level. In a data-parallel run
    the ranks pool their residuals (:func:`sei.losses.sure.pooled_noise_variance`), so the level is the same on
    every rank.

    Why not UNSURE's multiplier (Tachella et al., 2024), the ascent ``sigma^2 += step * 2 div``: its fixed point is
    where the network's divergence is 0 (``sigma^2 / (1 - d)`` with ``d`` the per-pixel divergence of the MMSE
    denoiser), and a network trained by SURE at a level above the truth only reaches a divergence <= 0 by learning
    to subtract the noise (a gain ``1 - level / sigma^2`` < 0 on noise-only directions), which a network early in
    training does not: its divergence is > 0 (the blur's own share, ``A``'s centre tap, to begin with) at any
    level, so the level rose from every start, at a rate set by the divergence, not by the distance to the truth.
    The residual estimate is an upper bound on sigma^2 whatever the level the network is trained at, and tightens
    as the network fits, so it converges from above as from below; early in training it is high (up to 6.7 for a
    true 5 around step 60 in ``benchmarks/real_data.py``, 5.11 at step 250 from 2.5, 4.93 and 10 alike).

    The learned variance is the buffer ``noise_variance``, the running average's only state (saved in checkpoints,
    so a resumed run continues it exactly); ``learned_noise_level`` reads it. Only training batches update it.
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
        # -1 until a level is learned (a finite value: the divergence guard checks every saved tensor)
        self.register_buffer("noise_variance", torch.tensor(-1.0, dtype=torch.float64))

    @property
    def learned_noise_level(self) -> float | None:
        """The learned Gaussian noise level in 8-bit grey levels, ``None`` when none is learned."""
        variance = float(self.noise_variance)
        return None if variance < 0 else math.sqrt(variance) * 255.0

    def _learned_sigma(self, physics, sigma: float) -> float:
        """The learned sigma (starting at ``sigma``), set as the operator's level so that e' is drawn at it."""
        if float(self.noise_variance) < 0:
            self.noise_variance.fill_(sigma**2)
        learned = math.sqrt(float(self.noise_variance))
        physics.noise_model.noise_level = learned * 255.0  # sei's GaussianNoise: the level e' is drawn at
        return learned

    def compute(self, model, physics, y, x, generator) -> LossOutput:
        gain, sigma = noise_parameters(physics)  # the one place the SURE flavour follows the noise model
        learn = getattr(getattr(physics, "spec", None), "noise_source", None) == "learned"
        if learn:
            sigma = self._learned_sigma(physics, sigma)
        options = dict(margin=physics_margin(physics), tau=self.tau, constant=self.sure_constant,
                       batched_probe=self.batched_probe)
        if gain > 0:
            sure = sure_poisson_gaussian(model, physics, y, gain, sigma, generator, **options)
        else:
            sure = sure_gaussian(model, physics, y, sigma, generator, **options)
        parts = {"sure": sure.loss.detach(), "sure_residual": sure.residual.detach(),
                 "sure_divergence": sure.divergence.detach()}
        loss = sure.loss
        if self.transform is not None:
            equivariance, _ = equivariance_loss(model, physics, sure.estimate, self.transform, generator,
                                                alpha=self.alpha, stop_gradient=self.stop_gradient)
            parts["equivariance"] = equivariance.detach()
            loss = loss + equivariance
        if learn:
            parts["sigma"] = torch.tensor(sigma * 255.0)
            estimate = pooled_noise_variance(sure) if self.training else None  # all ranks' batches in DDP
            if estimate is not None:  # None: this batch's residual says nothing about the noise
                variance = float(self.noise_variance)
                self.noise_variance.fill_(variance + NOISE_VARIANCE_MOMENTUM * (estimate - variance))
        return LossOutput(loss, parts, sure.estimate.detach())

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, alpha={self.alpha}, stop_gradient={self.stop_gradient}, tau={self.tau}, "
                f"sure_constant={self.sure_constant!r}")


class SEILoss(SureEquivariant):
    """The SEI loss: ``SURE(y, f) + alpha * ||f(A T x_hat + e') - T x_hat||^2`` with ``T`` a random down-scaling
    (factor drawn from ``scale_factors``) and, by default, stop-gradient on ``T x_hat``."""

    def __init__(self, alpha: float = 1.0, stop_gradient: bool = True,
                 scale_factors: Sequence[float] = DEFAULT_SCALE_FACTORS, **options) -> None:
        name = "sei" if stop_gradient else "sei-no-stop-grad"
        super().__init__(name, RandomScale(scale_factors), alpha=alpha, stop_gradient=stop_gradient, **options)


MethodFactory = Callable[..., Method]


def _sure_options(options: dict) -> dict:
    return {k: options[k] for k in ("alpha", "tau", "sure_constant", "batched_probe") if k in options}


@dataclass(frozen=True)
class MethodEntry:
    """One training method: its name, the other names it answers to, what it is, and how to build it.

    :ivar factory: ``factory(**options) -> Method`` with the options of :func:`build_method`.
    """

    name: str
    aliases: tuple[str, ...]
    description: str
    needs_ground_truth: bool
    factory: MethodFactory


METHOD_REGISTRY: tuple[MethodEntry, ...] = (
    MethodEntry("sei", ("proposed",), "SURE + scale equivariance with stop-gradient (the paper's method)", False,
                lambda **o: SEILoss(stop_gradient=o.get("stop_gradient", True),
                                    scale_factors=o.get("scale_factors", DEFAULT_SCALE_FACTORS), **_sure_options(o))),
    MethodEntry("supervised", ("sup",), "MSE to clean images", True, lambda **o: Supervised()),
    MethodEntry("css", (), "supervised on re-degraded measurement pairs (A y + e'', y)", False, lambda **o: CSS()),
    MethodEntry("ei-shift", ("eishift",), "SURE + circular-shift equivariance", False,
                lambda **o: SureEquivariant("ei-shift", RandomShift(), stop_gradient=o.get("stop_gradient", True),
                                            **_sure_options(o))),
    MethodEntry("ei-rotate", ("eirotate",), "SURE + rotation equivariance", False,
                lambda **o: SureEquivariant("ei-rotate", RandomRotate(o.get("rotation_multiples", 1.0)),
                                            stop_gradient=o.get("stop_gradient", True), **_sure_options(o))),
    MethodEntry("sure", ("sure-only",), "SURE only (measurement consistency)", False,
                lambda **o: SureEquivariant("sure", None, **_sure_options(o))),
    MethodEntry("sei-no-stop-grad", ("sei-no-stop-gradient",), "SEI without stop-gradient (ablation)", False,
                lambda **o: SEILoss(stop_gradient=False, scale_factors=o.get("scale_factors", DEFAULT_SCALE_FACTORS),
                                    **_sure_options(o))),
)


def method_entry(name: str) -> MethodEntry:
    """The registry entry for ``name`` or one of its aliases (case-insensitive, ``_`` read as ``-``).

    :raises UnknownNameError: listing every valid name and alias.
    """
    key = str(name).strip().lower().replace("_", "-")
    for entry in METHOD_REGISTRY:
        if key == entry.name or key in entry.aliases:
            return entry
    raise UnknownNameError("method", name, [n for e in METHOD_REGISTRY for n in (e.name, *e.aliases)])


def canonical_method(name: str, stop_gradient: bool = True) -> str:
    """The registry name of a method; ``sei`` without stop-gradient is the ``sei-no-stop-grad`` ablation."""
    key = method_entry(name).name
    return "sei-no-stop-grad" if key == "sei" and not stop_gradient else key


def methods_help() -> str:
    """``sei (alias proposed), supervised (sup), ...`` for help texts."""
    return ", ".join(e.name + (f" ({', '.join(e.aliases)})" if e.aliases else "") for e in METHOD_REGISTRY)


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
    entry = method_entry(canonical_method(name, stop_gradient))
    return entry.factory(alpha=alpha, tau=tau, scale_factors=scale_factors, rotation_multiples=rotation_multiples,
                         sure_constant=sure_constant, batched_probe=batched_probe, stop_gradient=stop_gradient)
