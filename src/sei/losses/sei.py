"""The SEI loss: SURE on the measurements plus equivariance to random down-scaling, with stop-gradient.

For measurements ``y = A x + e`` of noise level ``sigma`` and a network ``f``,

    L(f) = SURE_m(y, f(y)) + alpha * mean((f(A T x_hat + e') - T x_hat)^2),   x_hat = stop_gradient(f(y))

- ``SURE_m`` (:mod:`sei.losses.sure`) estimates the measurement-domain error ``||A f(y) - A x||^2`` without ``x``,
  on the measurement's interior (``m``: the operator's margin, kept where a crop meets its measurement's own border),
  with a Monte-Carlo divergence; Poisson-Gaussian noise gets its own SURE;
- ``T`` (:mod:`sei.transforms`) is a random down-scaling (factors 0.75 and 0.5 about a random centre) for SEI, a
  random circular shift or rotation for the EI variants, and nothing for SURE alone;
- ``e'`` is fresh noise from the operator's noise model; ``T x_hat`` is computed without gradient (the paper's
  stop-gradient; without it, the ablation, training is much worse) (:mod:`sei.losses.equivariance`).

Every random draw (the SURE probe, ``T``'s parameters, ``e'``) comes from the ``generator`` of the call.

>>> import torch
>>> from sei.physics import make_physics
>>> from sei.models import build_backbone
>>> physics = make_physics("deblurring", kernel="Gaussian_R1", noise_level=5)
>>> y = physics(torch.rand(2, 3, 32, 32), generator=torch.Generator().manual_seed(0))
>>> out = SEILoss()(build_backbone("unet-tiny"), physics, y, generator=torch.Generator().manual_seed(1))
>>> sorted(out.parts)
['equivariance', 'sure', 'sure_divergence', 'sure_residual']
>>> out.loss.backward()  # trains f through SURE and through f(A T x_hat + e') only
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from sei.core.errors import ConfigError
from sei.core.units import level_of
from sei.losses.base import LossOutput, Method
from sei.losses.equivariance import DEFAULT_ALPHA, equivariance_loss
from sei.losses.sure import DEFAULT_TAU, SURE_CONSTANTS, SURE_DIVERGENCES, pooled_noise_variance, sure_gaussian, sure_poisson_gaussian
from sei.physics.base import physics_margin, sure_exact_sides
from sei.physics.noise import noise_parameters
from sei.transforms import DEFAULT_SCALE_FACTORS, VOLUME_SCALE_AXES, RandomScale

__all__ = ["NOISE_VARIANCE_MOMENTUM", "PAPER_SCALING", "SEILoss"]

# Weight of one batch's estimate in the learned noise variance's running average: a memory of about 20 batches,
# which averages the batches' different content and follows the network as it fits (tests/test_learned_noise.py).
NOISE_VARIANCE_MOMENTUM = 0.05
# SEILoss's default transform: the paper's random down-scaling (distinct from None, which is SURE alone).
PAPER_SCALING = object()


class SEILoss(Method):
    """``SURE(y, f) + alpha * ||f(A T x_hat + e') - T x_hat||^2`` (see the module), or SURE alone.

    :param transform: random transform module called as ``transform(x, generator)``; by default the paper's random
        down-scaling (``RandomScale(scale_factors)``); ``None`` for SURE only.
    :param alpha: weight of the equivariance term.
    :param stop_gradient: compute ``T x_hat`` without gradient (the paper's choice).
    :param tau: SURE finite-difference step.
    :param sure_constant: ``"unbiased"`` or ``"reference"`` (see :func:`sei.losses.sure.sure_gaussian`).
    :param batched_probe: evaluate ``f(y)`` and ``f(y + tau b)`` in one batch.
    :param divergence: how SURE estimates the divergence, ``"finite-difference"`` (the paper's) or ``"jvp"``
        (exact Jacobian-vector product; see :mod:`sei.losses.sure`).
    :param scale_factors: the down-scaling factors of the default transform.
    :param scale_axes: which axes of a volume the default transform shrinks (:data:`sei.transforms.VOLUME_SCALE_AXES`).
    :param name: the method's name in logs (``sei``, ``ei-shift`` ...; default from ``stop_gradient``).

    When the operator's spec says its Gaussian noise level is ``learned`` (``--noise-level learn``), sigma^2 is
    learned with the network: it starts at the operator's level (the measurements' estimate) and, after each
    training batch, moves to ``(1 - m) sigma^2 + m * residual / noise_gain`` (``m`` = ``NOISE_VARIANCE_MOMENTUM``),
    the running average of the residual estimate of :func:`sei.losses.sure.residual_noise_variance`: the noise power
    left in ``A f(y) - y`` over the share of the noise that the residual keeps, both from the SURE evaluation the
    batch already made. SURE and the equivariance term's noise e' use the learned level (the operator itself is
    left as it was built). In a data-parallel run the ranks pool their residuals
    (:func:`sei.losses.sure.pooled_noise_variance`), so the level is the same on every rank.

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

    def __init__(self, transform: nn.Module | None | object = PAPER_SCALING, alpha: float = DEFAULT_ALPHA,
                 stop_gradient: bool = True, tau: float = DEFAULT_TAU, sure_constant: str = SURE_CONSTANTS[0],
                 batched_probe: bool = True, scale_factors: Sequence[float] = DEFAULT_SCALE_FACTORS,
                 scale_axes: str = VOLUME_SCALE_AXES[0], name: str | None = None,
                 divergence: str = SURE_DIVERGENCES[0]) -> None:
        super().__init__()
        if alpha < 0:
            raise ConfigError(f"equivariance weight alpha must be >= 0, got {alpha}")
        self.name = name or ("sei" if stop_gradient else "sei-no-stop-grad")
        self.transform = (RandomScale(scale_factors, volume_axes=scale_axes) if transform is PAPER_SCALING
                          else transform)
        self.alpha = float(alpha)
        self.stop_gradient = bool(stop_gradient)
        self.tau = float(tau)
        self.sure_constant = sure_constant
        self.batched_probe = bool(batched_probe)
        self.divergence = divergence  # checked where SURE is computed, as the constant is
        # -1 until a level is learned (a finite value: the divergence guard checks every saved tensor)
        self.register_buffer("noise_variance", torch.tensor(-1.0, dtype=torch.float64))

    @property
    def learned_noise_level(self) -> float | None:
        """The learned Gaussian noise level in 8-bit grey levels, ``None`` when none is learned."""
        variance = float(self.noise_variance)
        return None if variance < 0 else level_of(math.sqrt(variance))

    def _learned_sigma(self, sigma: float) -> float:
        """The learned sigma, starting at ``sigma`` (the operator's level) on the first batch."""
        if float(self.noise_variance) < 0:
            self.noise_variance.fill_(sigma**2)
        return math.sqrt(float(self.noise_variance))

    def compute(self, model, physics, y, x, generator, borders) -> LossOutput:
        gain, sigma = noise_parameters(physics)  # the one place the SURE flavour follows the noise model
        learn = getattr(getattr(physics, "spec", None), "noise_source", None) == "learned"
        if learn:
            sigma = self._learned_sigma(sigma)
        options = dict(margin=physics_margin(physics), tau=self.tau, constant=self.sure_constant,
                       batched_probe=self.batched_probe, divergence=self.divergence,
                       exact_sides=sure_exact_sides(physics, borders))
        if gain > 0:
            sure = sure_poisson_gaussian(model, physics, y, gain, sigma, generator, **options)
        else:
            sure = sure_gaussian(model, physics, y, sigma, generator, **options)
        parts = {"sure": sure.loss.detach(), "sure_residual": sure.residual.detach(),
                 "sure_divergence": sure.divergence.detach()}
        loss = sure.loss
        if self.transform is not None:
            equivariance, _ = equivariance_loss(model, physics, sure.estimate, self.transform, generator,
                                                alpha=self.alpha, stop_gradient=self.stop_gradient,
                                                sigma=sigma if learn else None)
            parts["equivariance"] = equivariance.detach()
            loss = loss + equivariance
        if learn:
            parts["sigma"] = torch.tensor(level_of(sigma))
            estimate = pooled_noise_variance(sure) if self.training else None  # all ranks' batches in DDP
            if estimate is not None:  # None: this batch's residual says nothing about the noise
                variance = float(self.noise_variance)
                self.noise_variance.fill_(variance + NOISE_VARIANCE_MOMENTUM * (estimate - variance))
        return LossOutput(loss, parts, sure.estimate.detach())

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, alpha={self.alpha}, stop_gradient={self.stop_gradient}, tau={self.tau}, "
                f"sure_constant={self.sure_constant!r}, divergence={self.divergence!r}")
