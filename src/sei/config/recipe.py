"""Training precision: bf16 mixed precision where the hardware computes bf16 natively, float32 elsewhere.

Measured (``benchmarks/precision_quality.py``, held-out photographs, Gaussian_R2, noise 5, on an H100): bf16-mixed
trains to within 0.02 dB of float32 (unet-small, 1000 steps: SEI -0.01 dB, supervised -0.02 dB; the paper's
SwinIR, SEI, 300 steps: +0.00 dB); on this project's CPU (avx512_bf16) within 0.07 dB (unet-small, SEI, 400 steps),
with a unet-small SEI step 1.5-2x faster and the paper's SwinIR step 2.6-2.8x faster.
The losses keep their reductions and SURE's finite difference in float32 (see :mod:`sei.losses`), and training calls
every operator, whoever built it, in float32 outside autocast (:class:`sei.physics.base.Float32Physics`): only the
network runs in bf16.
"""

from __future__ import annotations

from pathlib import Path

import torch

AUTO_PRECISION = "auto"
NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 instructions that compute bf16 dot products
FP16_PRECISIONS = ("16-mixed", "16", "16-true")  # float16: gradients may overflow, a scaler may rescale them


def is_fp16(precision: str) -> bool:
    """Whether Lightning's ``precision`` computes in float16, whose gradients may overflow now and then (under
    ``16-mixed`` a gradient scaler multiplies them and skips the overflowing steps itself)."""
    return str(precision) in FP16_PRECISIONS


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
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """Lightning's precision for a requested one: ``"auto"`` becomes ``"bf16-mixed"`` where
    :func:`has_native_bf16`, else ``"32-true"``; anything else is returned unchanged."""
    if str(precision) != AUTO_PRECISION:
        return str(precision)
    return "bf16-mixed" if has_native_bf16(device) else "32-true"
