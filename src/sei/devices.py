"""Device strings as users type them (``cpu``, ``cuda``, ``cuda:1``, ``auto``), for PyTorch and Lightning."""

from __future__ import annotations

from typing import Any

import torch

from sei.errors import ConfigError


def torch_device(device: str = "auto") -> torch.device:
    """The ``torch.device`` for a device string; ``auto`` picks the first GPU when there is one.

    :raises ConfigError: for an unknown string or a GPU that PyTorch does not see.
    """
    name = str(device).lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but PyTorch sees no CUDA GPU; use --device cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' asked for, but it is not available here; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError as error:
        raise ConfigError(f"unknown device {device!r}; use cpu, cuda, cuda:N or auto") from error


def lightning_devices(device: str = "auto", devices: Any = 1) -> dict[str, Any]:
    """Lightning ``accelerator`` and ``devices`` for a device string and a device count."""
    resolved = torch_device(device)
    if resolved.type == "cpu":
        return {"accelerator": "cpu", "devices": devices}
    if resolved.type == "cuda":
        return {"accelerator": "gpu", "devices": [resolved.index] if resolved.index is not None else devices}
    return {"accelerator": resolved.type, "devices": 1}
