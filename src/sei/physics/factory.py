"""Turn the user's words (task, kernel or factor, noise level) into an operator with its noise model."""

from __future__ import annotations

from pathlib import Path

import torch

from sei.errors import ConfigError, UnknownNameError
from sei.physics.base import SEILinearPhysics
from sei.physics.blur import FFTBlur
from sei.physics.downsampling import BicubicDownsampling
from sei.physics.noise import GaussianNoise

TASKS = ("deblurring", "sr")
_TASK_ALIASES = {
    "deblurring": "deblurring", "deblur": "deblurring", "blur": "deblurring",
    "sr": "sr", "super-resolution": "sr", "superresolution": "sr",
}
PAPER_SR_FACTORS = (2, 3, 4)


def canonical_task(task: str) -> str:
    """``'deblur'`` -> ``'deblurring'``, ``'super-resolution'`` -> ``'sr'``; raises for anything else."""
    key = str(task).strip().lower()
    if key not in _TASK_ALIASES:
        raise UnknownNameError("task", task, TASKS)
    return _TASK_ALIASES[key]


def make_physics(
    task: str,
    kernel: str | Path | torch.Tensor | None = None,
    sr_factor: int | None = None,
    noise_level: float = 5.0,
) -> SEILinearPhysics:
    """The measurement operator ``y = A x + e`` for a task.

    :param task: ``"deblurring"`` or ``"sr"``.
    :param kernel: for deblurring: a kernel name (``"Gaussian_R2"``), a kernel file, or a tensor.
    :param sr_factor: for super-resolution: the integer factor (2, 3 or 4 in the paper).
    :param noise_level: noise standard deviation in 8-bit grey levels (sigma = noise_level / 255).
    :raises ConfigError: if the settings do not describe one operator.
    """
    task = canonical_task(task)
    noise = GaussianNoise(noise_level)
    if task == "deblurring":
        if kernel is None:
            raise ConfigError("deblurring needs a kernel (e.g. Gaussian_R2, Box_R3, or a kernel file)")
        if sr_factor not in (None, 1):
            raise ConfigError(f"deblurring takes no super-resolution factor, got {sr_factor}")
        return FFTBlur(kernel, noise_model=noise)
    if kernel is not None:
        raise ConfigError(f"super-resolution uses bicubic down-sampling and takes no kernel, got {kernel!r}")
    if sr_factor is None:
        raise ConfigError(f"super-resolution needs a factor, e.g. one of {PAPER_SR_FACTORS}")
    try:
        factor = int(sr_factor)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"super-resolution factor must be an integer, got {sr_factor!r}") from error
    if factor != sr_factor:
        raise ConfigError(f"super-resolution factor must be an integer, got {sr_factor!r}")
    return BicubicDownsampling(factor, noise_model=noise)


def noise_sigma(physics) -> float:
    """The noise standard deviation (in [0, 1] units) of an operator's Gaussian noise model, 0 for none."""
    model = getattr(physics, "noise_model", None)
    if isinstance(model, GaussianNoise):
        return model.noise_level / 255.0
    sigma = getattr(model, "sigma", None)
    if sigma is None:
        return 0.0
    return float(torch.as_tensor(sigma).flatten()[0])
