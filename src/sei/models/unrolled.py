"""A physics-aware backbone: half-quadratic splitting unrolled for a few iterations, with a learned denoiser.

For ``y = A x + e`` the network alternates, ``K`` times, from an initial estimate ``x_0``::

    z_k     = prox_l2(x_k, y, gamma_k)      = argmin_x gamma_k / 2 ||A x - y||^2 + 1/2 ||x - x_k||^2
    x_{k+1} = D(z_k, sigma_k)                 (a small residual U-Net told the noise level sigma_k)

The data step is the operator's own exact proximal operator (closed form in the Fourier domain for
:class:`~sei.physics.blur.FFTBlur`, by per-axis eigendecompositions for
:class:`~sei.physics.downsampling.BicubicDownsampling`, conjugate gradients for other deepinv operators), so
the network only has to learn a prior: one denoiser shared by all iterations, plus per-iteration step sizes
``gamma_k`` and noise levels ``sigma_k`` (learned in log space, so they stay positive).

Why not ``deepinv.unfolded``: its ``BaseUnfold`` is deprecated in deepinv 0.5, and ``BaseOptim`` takes the
operator at every call (``model(y, physics)``) and carries iterate dictionaries, histories and convergence
checks. A ``sei`` backbone is ``f(y) -> x`` (SEI calls it on ``y``, on ``y + tau b`` and on ``A T x_hat + e'``),
its state dict must hold learned weights only, and its parameters must stay positive: a 20-line loop does
exactly that.

The operator is held by the network but kept out of its module tree (``object.__setattr__``): a weights file
never contains a blur kernel, and the same weights can be used with the operator of another run.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sei.core.errors import ConfigError, ShapeError
from sei.models.unet import UNet
from sei.core.units import sigma_of
from sei.physics.base import physics_upscale
from sei.physics.spec import DEFAULT_NOISE_LEVEL

__all__ = ["hqs_schedule", "NoiseConditionalUNet", "operator_sigma", "UnrolledHQS"]

# Noise level assumed when the operator has no (Gaussian) noise model: the paper's 5 grey levels.
_DEFAULT_SIGMA = sigma_of(DEFAULT_NOISE_LEVEL)
# Largest denoiser noise level of the initial schedule (DPIR's 49 grey levels).
_FIRST_SIGMA = sigma_of(49.0)


def operator_sigma(physics) -> float:
    """The operator's Gaussian noise standard deviation in [0, 1] units (5/255 when it declares none)."""
    # Read deepinv's noise-model attribute directly: any model with one scalar ``sigma`` (deepinv's and our
    # GaussianNoise) gives it; anything else only changes the initial values of learned parameters.
    sigma = getattr(getattr(physics, "noise_model", None), "sigma", None)
    try:
        sigma = torch.as_tensor(sigma, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return _DEFAULT_SIGMA
    if sigma.numel() != 1 or not float(sigma) > 0:
        return _DEFAULT_SIGMA
    return float(sigma)


def hqs_schedule(iterations: int, noise_sigma: float, first_sigma: float = _FIRST_SIGMA,
                 weight: float = 0.23) -> tuple[list[float], list[float]]:
    """DPIR's schedule: denoiser levels ``sigma_k`` geometric from ``first_sigma`` down to ``noise_sigma``, and
    data step sizes ``gamma_k = sigma_k^2 / (weight * noise_sigma^2)`` (Zhang et al. 2021, lambda = 0.23).

    :return: ``(gammas, sigmas)``, ``iterations`` values each.
    """
    first = max(first_sigma, noise_sigma)
    if iterations == 1:
        sigmas = [noise_sigma]
    else:
        ratio = (noise_sigma / first) ** (1.0 / (iterations - 1))
        sigmas = [first * ratio**k for k in range(iterations)]
    gammas = [s**2 / (weight * noise_sigma**2) for s in sigmas]
    return gammas, sigmas


class NoiseConditionalUNet(UNet):
    """Residual U-Net denoiser ``D(x, sigma)``: ``(B, C, H, W)`` and a noise level -> ``(B, C, H, W)``.

    The residual U-Net of :mod:`sei.models.unet` with the noise level as a constant extra input channel (as in
    DRUNet), so one network serves every iteration of the unrolled loop. Its last convolution starts at zero: an
    untrained denoiser is the identity.

    :param channels: image channels.
    :param width: channels at full resolution, doubled at each level.
    :param levels: number of 2x down-samplings.
    :param blocks: residual blocks per stage.
    """

    def __init__(self, channels: int = 3, width: int = 32, levels: int = 2, blocks: int = 1) -> None:
        if channels < 1 or width < 1 or levels < 0 or blocks < 1:
            raise ConfigError(f"invalid denoiser settings: channels={channels}, width={width}, levels={levels}, "
                              f"blocks={blocks}")
        super().__init__(upscale=1, in_chans=channels, width=width, levels=levels, blocks=blocks, condition_channels=1)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        """:param sigma: noise level in [0, 1] units, a number or a tensor broadcastable to ``(B,)``."""
        level = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1).expand(x.shape[0], 1)
        return super().forward(x, level)


class UnrolledHQS(nn.Module):
    """Half-quadratic splitting unrolled for ``iterations`` steps: ``(B, C, h, w) -> (B, C, h r, w r)``.

    :param physics: the measurement operator (deepinv ``LinearPhysics`` with ``prox_l2``); held, not registered.
    :param upscale: 1 for deblurring, r for x r super-resolution; must match the operator's ``upscale``.
    :param in_chans: image channels.
    :param iterations: number of (data step, denoiser) pairs.
    :param width: denoiser width (see :class:`NoiseConditionalUNet`).
    :param levels: denoiser down-samplings.
    :param blocks: denoiser residual blocks per stage.
    :param init_sigma: the noise level the initial schedule assumes (default: the operator's, else 5/255);
        only the initial values of the learned parameters depend on it.
    """

    def __init__(self, physics, upscale: int = 1, in_chans: int = 3, iterations: int = 4, width: int = 32,
                 levels: int = 2, blocks: int = 1, init_sigma: float | None = None) -> None:
        super().__init__()
        if physics is None:
            raise ConfigError("the unrolled backbone needs the measurement operator (physics=...)")
        if not hasattr(physics, "prox_l2"):
            raise ConfigError(f"the unrolled backbone needs an operator with prox_l2; {type(physics).__name__} "
                              "has none")
        if physics_upscale(physics) != upscale:
            raise ConfigError(f"the operator's upscale is {physics_upscale(physics)} but the network was built for "
                              f"upscale {upscale}")
        if iterations < 1:
            raise ConfigError(f"the unrolled backbone needs at least one iteration, got {iterations}")
        self.upscale = upscale
        self.iterations = iterations
        object.__setattr__(self, "_physics", physics)  # not a submodule: no kernel in the state dict
        sigma = float(init_sigma) if init_sigma is not None else operator_sigma(physics)
        gammas, sigmas = hqs_schedule(iterations, sigma)
        self.log_gamma = nn.Parameter(torch.tensor([math.log(g) for g in gammas]))
        self.log_sigma = nn.Parameter(torch.tensor([math.log(s) for s in sigmas]))
        self.denoiser = NoiseConditionalUNet(in_chans, width, levels, blocks)

    @property
    def physics(self):
        """The operator the data steps use."""
        return self._physics

    def set_physics(self, physics) -> None:
        """Use another operator (same upscale), e.g. a transformed kernel for a self-ensemble."""
        if physics_upscale(physics) != self.upscale:
            raise ConfigError(f"operator upscale {physics_upscale(physics)} does not match the network's {self.upscale}")
        object.__setattr__(self, "_physics", physics)

    @property
    def size_multiple(self) -> int:
        """Measurement sizes that are multiples of this reach the denoiser (at ``r`` times the size) unpadded."""
        multiple = self.denoiser.size_multiple
        return multiple // math.gcd(multiple, self.upscale)

    def extra_repr(self) -> str:
        return f"iterations={self.iterations}, upscale={self.upscale}, physics={type(self._physics).__name__}"

    def initial_estimate(self, y: torch.Tensor) -> torch.Tensor:
        """``x_0``: the measurement for deblurring, its bicubic enlargement for super-resolution."""
        if self.upscale == 1:
            return y
        return F.interpolate(y, scale_factor=self.upscale, mode="bicubic", align_corners=False)

    def data_step(self, x: torch.Tensor, y: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        """``prox_l2(x, y, gamma)`` of the operator, in ``x``'s dtype."""
        return self._physics.prox_l2(x, y, gamma).to(x.dtype)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if y.ndim != 4:
            raise ShapeError(f"measurements must have shape (B, C, h, w), got {tuple(y.shape)}")
        x = self.initial_estimate(y)
        gammas, sigmas = self.log_gamma.exp(), self.log_sigma.exp()
        for k in range(self.iterations):
            x = self.data_step(x, y, gammas[k])
            x = self.denoiser(x, sigmas[k])
        return x
