"""Device strings as users type them (``cpu``, ``cuda``, ``cuda:1``, ``auto``), for PyTorch and Lightning."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sei.core.errors import ConfigError

if TYPE_CHECKING:  # imported where a device is made: sei.config.recipe reads this module without torch
    import torch

__all__ = ["NATIVE_BF16_CPU_FLAGS", "cpu_has_native_bf16", "has_native_bf16", "lightning_devices", "torch_device",
           "training_processes"]


def torch_device(device: str = "auto") -> torch.device:
    """The ``torch.device`` for a device string; ``auto`` picks the first GPU when there is one.

    :raises ConfigError: for an unknown string or a GPU that PyTorch does not see.
    """
    import torch

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


def training_processes(device: str = "auto", devices: Any = 1, num_nodes: int = 1) -> int:
    """How many processes a run trains in: the devices per node times the nodes.

    :param devices: a count; ``auto`` or -1 (every visible GPU on a GPU, one process on a CPU); or GPU indices, as a
        list or a string such as ``"0,1"``. A device string naming one GPU (``cuda:1``) trains in one process.
    """
    import torch

    resolved = torch_device(device)
    if resolved.type == "cuda" and resolved.index is not None:
        per_node = 1
    elif isinstance(devices, (list, tuple)):
        per_node = len(devices)
    elif str(devices).strip() in ("auto", "-1"):
        per_node = torch.cuda.device_count() if resolved.type == "cuda" else 1
    elif isinstance(devices, str) and "," in devices:
        per_node = len([index for index in devices.split(",") if index.strip()])
    else:
        try:
            per_node = int(devices)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"devices must be a count, auto or GPU indices such as 0,1; got {devices!r}") from error
    return max(per_node, 1) * max(int(num_nodes), 1)


NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 instructions that compute bf16 dot products


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU has bf16 dot-product instructions (Linux ``/proc/cpuinfo`` flags; False elsewhere).

    :param cpuinfo: the text of ``/proc/cpuinfo`` (read from the system when ``None``).
    """
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        if not path.is_file():
            return False
        cpuinfo = path.read_text(errors="replace")
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return any(flag in flags for flag in NATIVE_BF16_CPU_FLAGS)


def has_native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: a GPU with bf16 tensor cores (compute capability 8.0 and
    later), or a CPU with :data:`NATIVE_BF16_CPU_FLAGS`."""
    if device.type == "cuda":
        import torch

        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False
