"""``make_physics``: an operator from the user's words, through the one physics spec."""

from __future__ import annotations

from pathlib import Path

import torch

from sei.physics.base import SEILinearPhysics
from sei.physics.spec import PhysicsSpec

__all__ = ["make_physics"]


def make_physics(
    task: str,
    kernel: str | Path | torch.Tensor | None = None,
    sr_factor: int | None = None,
    noise_level: float | None = None,
    noise: str | None = None,
    gain: float | None = None,
) -> SEILinearPhysics:
    """The measurement operator ``y = A x + e`` for a task (see :class:`~sei.physics.spec.PhysicsSpec`).

    :param task: ``"deblurring"`` or ``"sr"``.
    :param kernel: blur kernel name (``"Gaussian_R2"``), file or tensor; for ``sr``, ``None`` is bicubic
        down-sampling and a kernel means blur by it then decimate.
    :param sr_factor: for super-resolution: the integer factor (2, 3 or 4 in the paper).
    :param noise_level: (read-)noise standard deviation in 8-bit grey levels (default
        :data:`~sei.physics.spec.DEFAULT_NOISE_LEVEL`, the paper's 5).
    :param noise: ``"gaussian"`` (default) or ``"poisson-gaussian"`` (which needs ``gain``, the intensity of one
        photon).
    :raises ConfigError: if the settings do not describe one operator.

    >>> import torch
    >>> x = torch.rand(1, 3, 32, 40)
    >>> physics = make_physics("deblurring", kernel="Gaussian_R2", noise_level=5)
    >>> physics.A(x).shape, physics.margin
    (torch.Size([1, 3, 32, 40]), (6, 6))
    >>> make_physics("sr", sr_factor=2).A(x).shape
    torch.Size([1, 3, 16, 20])
    """
    return PhysicsSpec(task=task, kernel=kernel, sr_factor=sr_factor, noise=noise, noise_level=noise_level,
                       gain=gain).build()
