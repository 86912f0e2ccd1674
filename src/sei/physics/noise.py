"""Additive white Gaussian noise drawn from an explicit generator."""

from __future__ import annotations

import deepinv
import torch

from sei.physics.base import identity


def gaussian_noise_like(x: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Noise ``N(0, sigma^2 I)`` of ``x``'s shape, dtype and device.

    The draw happens on the generator's device and is then moved, so a CPU generator gives the same
    noise whether ``x`` lives on the CPU or a GPU.
    """
    source = generator.device if generator is not None else x.device
    noise = torch.randn(x.shape, generator=generator, device=source, dtype=torch.float32)
    return (sigma * noise).to(device=x.device, dtype=x.dtype)


class GaussianNoise(deepinv.physics.GaussianNoise):
    """deepinv's Gaussian noise model with a per-call ``generator``.

    :param noise_level: standard deviation in 8-bit grey levels; ``sigma = noise_level / 255``.
    """

    def __init__(self, noise_level: float = 5.0) -> None:
        if noise_level < 0:
            raise ValueError(f"noise level must be >= 0, got {noise_level}")
        super().__init__(sigma=noise_level / 255.0)
        self.noise_model = identity  # deepinv's default is a lambda, which cannot be pickled
        self.noise_level = float(noise_level)

    def forward(self, x: torch.Tensor, seed: int | None = None, generator: torch.Generator | None = None,
                **kwargs) -> torch.Tensor:
        """``x + e`` with ``e ~ N(0, sigma^2 I)`` drawn from ``generator`` (or a fresh one seeded by ``seed``)."""
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(seed)
        return x + gaussian_noise_like(x, self.noise_level / 255.0, generator)
