"""Closed-form reconstructions: the measurement itself, bicubic up-sampling, and the Wiener filter."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sei.core.errors import ConfigError
from sei.core.scaling import interpolate_up, scale_factors, upscaled_size
from sei.core.units import NOISE_FLOOR
from sei.physics.base import physics_upscale
from sei.physics.blur import FFTBlur, laplacian_power
from sei.physics.blur_downsampling import BlurDownsampling
from sei.physics.downsampling import BicubicDownsampling
from sei.physics.noise import equivalent_sigma

__all__ = ["Bicubic", "Identity", "Wiener"]



class Identity(nn.Module):
    """The measurement itself as the estimate; for super-resolution, its nearest-neighbour enlargement (of volumes:
    each plane repeated)."""

    def __init__(self, upscale: int = 1) -> None:
        super().__init__()
        self.upscale = upscale

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if self.upscale == 1:
            return y
        return F.interpolate(y, scale_factor=scale_factors(self.upscale, y.ndim - 2), mode="nearest")


class Bicubic(nn.Module):
    """Bicubic up-sampling by the super-resolution factor (super-resolution only); volumes are interpolated along z
    (:func:`sei.core.scaling.interpolate_up`)."""

    def __init__(self, upscale: int) -> None:
        super().__init__()
        if upscale < 2:
            raise ConfigError("bicubic up-sampling applies to super-resolution; for deblurring use 'identity'")
        self.upscale = upscale

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return interpolate_up(y, self.upscale)


class Wiener(nn.Module):
    """Regularised inverse filter with its regularisation set by the noise level.

    Both solve ``argmin_x ||A x - y||^2 + lam ||L x||^2`` with ``L`` the 5-point Laplacian, whose power
    ``|L(f)|^2`` models the ``1/|f|^2`` spectrum of natural images, and ``lam = strength * sigma^2``. Deblurring by
    circular convolution is diagonal in the Fourier domain, so the solution is the exact filter
    ``F^-1(conj(K) Y / (|K|^2 + lam |L|^2))``. Super-resolution goes through the operator's adjoint: the normal
    equations ``(A^T A + lam L^T L) x = A^T y`` are solved by conjugate gradients (deepinv), from the bicubic
    enlargement.

    :param physics: an :class:`FFTBlur`, :class:`BicubicDownsampling` or :class:`BlurDownsampling` with its Gaussian
        noise model.
    :param strength: multiplier of ``sigma^2`` (defaults tuned on the sample training photographs).
    """

    DEFAULT_STRENGTH = {"deblurring": 50.0, "sr": 50.0}

    def __init__(self, physics, strength: float | None = None, iterations: int = 100) -> None:
        super().__init__()
        if not isinstance(physics, (FFTBlur, BicubicDownsampling, BlurDownsampling)):
            raise ConfigError("the Wiener filter needs sei's FFTBlur, BicubicDownsampling or BlurDownsampling, got "
                              f"{type(physics).__name__}")
        self.physics = physics
        self.task = "deblurring" if isinstance(physics, FFTBlur) else "sr"
        self.strength = float(strength if strength is not None else self.DEFAULT_STRENGTH[self.task])
        if self.strength <= 0:
            raise ConfigError(f"Wiener strength must be > 0, got {self.strength}")
        self.upscale = physics_upscale(physics)
        self.iterations = iterations

    def regularisation(self) -> float:
        return self.strength * max(equivalent_sigma(self.physics), NOISE_FLOOR) ** 2

    @torch.no_grad()
    def forward(self, y: torch.Tensor) -> torch.Tensor:
        lam = self.regularisation()
        if self.task == "deblurring":
            # evaluated on the size the filter runs at (larger than y for a non-circular boundary)
            return self.physics.wiener(y, lambda *size: lam * laplacian_power(*size))
        from deepinv.optim.linear import conjugate_gradient

        y = y.float()
        size = upscaled_size(y.shape[2:], self.upscale)
        axes = tuple(range(-len(size), 0))
        power = laplacian_power(*size, dtype=torch.float32).to(y.device)

        def normal_operator(x: torch.Tensor) -> torch.Tensor:
            smoothness = torch.fft.irfftn(torch.fft.rfftn(x, dim=axes) * power, s=size, dim=axes)
            return self.physics.A_adjoint(self.physics.A(x), img_size=size) + lam * smoothness

        start = interpolate_up(y, self.upscale)
        return conjugate_gradient(normal_operator, self.physics.A_adjoint(y, img_size=size),
                                  max_iter=self.iterations, tol=1e-7, init=start)
