"""Noise models, and noise drawn from an explicit generator for any operator's Gaussian noise model.

Every noisy quantity SEI makes (simulated measurements, the fresh noise e' of the equivariance term, CSS's e'')
comes from the operator's own noise model through :func:`add_noise`, drawn from a generator that ``sei`` seeds:
a run is reproducible and a resumed run repeats an uninterrupted one. Gaussian and Poisson-Gaussian
(``gain * Poisson(u / gain) + N(0, sigma^2)``, photon noise plus read noise) models are known; a noise model we
cannot seed or do not know how to account for in SURE (another kind, no noise model at all) is an error, never
silent unseeded noise or sigma = 0.
"""

from __future__ import annotations

import math
import warnings

import deepinv
import torch

from sei.core.errors import ConfigError, ImageError, SEIWarning
from sei.core.units import sigma_of
from sei.physics.base import identity

__all__ = ["REFERENCE_INTENSITY", "add_noise", "check_gain", "check_noise_level", "check_photon_data",
           "equivalent_sigma", "gaussian_noise_like", "gaussian_sigma", "GaussianNoise", "measure",
           "noise_parameters", "poisson_gaussian_like", "PoissonGaussianNoise"]


def _finite_number(value: object, at_least_zero: bool, requirement: str) -> float:
    """``value`` as a float that is finite and >= 0 (> 0 unless ``at_least_zero``).

    :raises ConfigError: ``f"{requirement}, got {value!r}"`` otherwise.
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < 0 or (number == 0 and not at_least_zero):
        raise ConfigError(f"{requirement}, got {value!r}")
    return number


def check_noise_level(level: float) -> float:
    """A Gaussian noise level in grey levels (see :mod:`sei.core.units`), checked: a finite number >= 0.

    :raises ConfigError: naming the value otherwise.
    """
    level = _finite_number(level, True, "the noise level (--noise-level) must be a finite number >= 0 (8-bit grey "
                                        "levels)")
    if level > 255:  # allowed (the maths holds), but a standard deviation above the whole range is rarely meant
        warnings.warn(f"the noise level {level:g} is larger than the whole intensity range (255 grey levels); the "
                      "measurements would be mostly noise (is it in the right units? see --help)", SEIWarning,
                      stacklevel=2)
    return level


def check_gain(gain: float) -> float:
    """A Poisson gain (the intensity of one photon in [0, 1] units), checked: a finite number > 0.

    :raises ConfigError: naming the value otherwise.
    """
    gain = _finite_number(gain, False, "the Poisson gain (--gain) must be a finite number > 0 (intensity of one "
                                       "photon)")
    if gain > 1:  # one photon brighter than full scale: fewer than one photon per bright pixel
        warnings.warn(f"the Poisson gain {gain:g} makes one photon brighter than the whole intensity range [0, 1] "
                      "(the gain is 1 / the peak photon count, e.g. 0.01 for 100 photons)", SEIWarning, stacklevel=2)
    return gain


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

    def __init__(self, noise_level: float) -> None:
        noise_level = check_noise_level(noise_level)
        super().__init__(sigma=sigma_of(noise_level))
        self.noise_model = identity  # deepinv's default is a lambda, which cannot be pickled
        self.noise_level = noise_level

    def forward(self, x: torch.Tensor, seed: int | None = None, generator: torch.Generator | None = None,
                **kwargs) -> torch.Tensor:
        """``x + e`` with ``e ~ N(0, sigma^2 I)`` drawn from ``generator`` (or a fresh one seeded by ``seed``)."""
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(seed)
        return x + gaussian_noise_like(x, sigma_of(self.noise_level), generator)


class PoissonGaussianNoise(deepinv.physics.PoissonGaussianNoise):
    """deepinv's Poisson-Gaussian noise model, ``gain * Poisson(u / gain) + N(0, sigma^2)``, with a per-call
    ``generator``.

    :param gain: intensity of one photon, in the images' [0, 1] units (1 / peak photons), > 0.
    :param noise_level: read-noise standard deviation in 8-bit grey levels; ``sigma = noise_level / 255``.
    """

    def __init__(self, gain: float, noise_level: float = 0.0) -> None:
        gain, noise_level = check_gain(gain), check_noise_level(noise_level)
        super().__init__(gain=gain, sigma=sigma_of(noise_level))
        self.noise_model = identity
        self.gain_value = gain
        self.noise_level = noise_level

    def forward(self, x: torch.Tensor, seed: int | None = None, generator: torch.Generator | None = None,
                **kwargs) -> torch.Tensor:
        """Noisy ``x`` drawn from ``generator`` (or one seeded by ``seed``); see :func:`poisson_gaussian_like`."""
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(seed)
        return poisson_gaussian_like(x, self.gain_value, sigma_of(self.noise_level), generator)


def poisson_gaussian_like(mean: torch.Tensor, gain: float, sigma: float,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """``gain * Poisson(mean / gain) + N(0, sigma^2)`` of ``mean``'s shape, dtype and device.

    Negative means (a network's estimate dipping below zero, in the equivariance term) count as zero photons.
    Drawn on the generator's device then moved, as :func:`gaussian_noise_like`.
    """
    source = generator.device if generator is not None else mean.device
    rate = (mean.detach().to(device=source, dtype=torch.float32) / gain).clamp_min(0)
    photons = torch.poisson(rate, generator=generator)
    noisy = gain * photons + gaussian_noise_like(photons, sigma, generator)
    return noisy.to(device=mean.device, dtype=mean.dtype)


def check_photon_data(image: torch.Tensor, what: str = "the data") -> None:
    """Poisson noise needs non-negative intensities (a mean photon count).

    :raises ImageError: naming ``what`` and its minimum, if any value is below zero.
    """
    minimum = float(image.min())
    if minimum < 0:
        raise ImageError(f"{what} has negative values (minimum {minimum:.4g}): a Poisson (photon-count) noise model "
                         "needs intensities >= 0; remove the offset (e.g. a subtracted background) or use "
                         "--noise gaussian")


def noise_parameters(physics) -> tuple[float, float]:
    """``(gain, sigma)`` of an operator's noise model, ``gain = 0`` for Gaussian noise (sigma in [0, 1] units).

    :raises ConfigError: as :func:`gaussian_sigma` for a model that is neither.
    """
    model = getattr(physics, "noise_model", None)
    if isinstance(model, PoissonGaussianNoise):
        return model.gain_value, sigma_of(model.noise_level)
    return 0.0, gaussian_sigma(physics)


# Where a Poisson-Gaussian model's signal-dependent noise is summed up as one standard deviation, for restorers that
# assume Gaussian noise (Wiener, TV, BM3D, DPIR): mid-grey.
REFERENCE_INTENSITY = 0.5


def equivalent_sigma(physics) -> float:
    """One Gaussian standard deviation (in [0, 1] units) for restorers that assume Gaussian noise: the model's own
    for Gaussian noise, ``sqrt(gain * 0.5 + sigma^2)`` (the noise at mid-grey) for Poisson-Gaussian noise.

    :raises ConfigError: as :func:`gaussian_sigma` for a model that is neither.
    """
    gain, sigma = noise_parameters(physics)
    return math.sqrt(gain * REFERENCE_INTENSITY + sigma**2)


def gaussian_sigma(physics) -> float:
    """The standard deviation (in [0, 1] units) of an operator's Gaussian noise model.

    :raises ConfigError: if the operator has no noise model, a non-Gaussian one, or a per-image sigma.
    """
    model = getattr(physics, "noise_model", None)
    if isinstance(model, GaussianNoise):
        return sigma_of(model.noise_level)
    if isinstance(model, deepinv.physics.GaussianNoise):
        sigma = torch.as_tensor(model.sigma)
        if sigma.numel() != 1:
            raise ConfigError(f"the operator's Gaussian noise has {sigma.numel()} noise levels; SEI needs one")
        return float(sigma)
    name = type(model).__name__ if model is not None else "none"
    raise ConfigError(
        f"{type(physics).__name__} has noise model {name}; SEI's SURE and its simulated noise need Gaussian noise of a "
        "known level: give the operator noise_model=deepinv.physics.GaussianNoise(sigma=...) (sigma in [0, 1] units)")


def add_noise(physics, clean: torch.Tensor, generator: torch.Generator | None = None,
              sigma: float | None = None) -> torch.Tensor:
    """``clean`` with noise from ``physics``' noise model (Gaussian or Poisson-Gaussian), drawn from ``generator``.

    For Poisson-Gaussian noise the photon noise is drawn without gradient (it is a sample, not a function of
    ``clean`` that training could differentiate).

    :param sigma: the Gaussian standard deviation ([0, 1] units) to draw at instead of the model's own (a level
        learned in training); the model still says which kind of noise it is.
    """
    gain, model_sigma = noise_parameters(physics)
    sigma = model_sigma if sigma is None else sigma
    if gain > 0:
        return poisson_gaussian_like(clean, gain, sigma, generator)
    return clean + gaussian_noise_like(clean, sigma, generator)


def measure(physics, x: torch.Tensor, generator: torch.Generator | None = None,
            sigma: float | None = None) -> torch.Tensor:
    """A simulated measurement ``A x + e`` of ``(B, C, H, W)`` images, the noise drawn from ``generator`` (at
    ``sigma`` instead of the noise model's own level when given, see :func:`add_noise`).

    >>> from sei.physics import make_physics
    >>> physics = make_physics("deblurring", kernel="Box_R2", noise_level=10)
    >>> x = torch.rand(1, 3, 64, 64)
    >>> y = measure(physics, x, torch.Generator().manual_seed(0))
    >>> torch.equal(y, measure(physics, x, torch.Generator().manual_seed(0)))  # every draw from the generator
    True
    >>> round((y - physics.A(x)).std().item() * 255)  # 10 grey levels
    10
    """
    return add_noise(physics, physics.A(x), generator, sigma)
