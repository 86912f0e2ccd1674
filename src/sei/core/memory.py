"""Keeping a CPU process's resident memory close to what its tensors actually use.

**Coalescing (every ``sei`` command, where the C library is glibc).** PyTorch allocates a CPU tensor with
``posix_memalign(64, size)``: glibc takes a chunk 64 + 32 bytes larger than asked and frees the slivers before and
after the aligned block. Slivers that small go to glibc's per-thread cache (tcache) and fast bins, which keep
chunks marked in use, so a freed tensor cannot merge with its neighbours; the next tensor of the same size asks for
96 bytes more than its hole and goes elsewhere. A training step that frees and reallocates hundreds of large
tensors every step grows the heap by gigabytes of holes. Turning the cache and the fast bins off
(:data:`COALESCING_TUNABLES`) lets freed tensors merge. Merged chunks then reach the top of the heap, which glibc
returns to the system and the next step faults in again (up to 0.7 million page faults per step), so the tunables
also keep the heap's top. They can be set only before a process starts
(``GLIBC_TUNABLES``), so the ``sei`` command restarts itself once with them (:func:`restart_with_coalescing`).
Measured on the paper's SwinIR SEI step (Gaussian_R2, 48x48 crops, two threads; ``benchmarks/memory_modes.py
--allocators sei,glibc``), glibc's defaults against coalescing, per step:

- batch 8, fp32, checkpointing: 9.3 GB and 39.7 s against 4.5 GB and 37.4 s;
- batch 8, bf16, checkpointing: 4.9 GB and 15.4 s against 3.1 GB and 14.2 s; no checkpointing: 16.3 GB and
  13.4 s against 15.3 GB and 12.6 s;
- unet-small, batch 8, bf16: 0.9 GB and 0.14 s in both.

**Returning freed memory (``--memory lean``).** glibc serves large allocations from its heap once its adaptive
mmap threshold has grown (up to 32 MiB), and keeps freed heap memory for reuse. Fixing the thresholds makes every
allocation above a threshold its own mapping, returned to the system when freed. The price is a page fault per
fresh 4 KiB page (the kernel zero-fills it), so the threshold trades memory for time. Measured on the paper's
SwinIR SEI step at batch 2 with checkpointing (two threads, ``benchmarks/memory_modes.py``'s set-up, glibc's
defaults otherwise), per step:

- glibc's defaults: 3.4 GB peak, 0.1 million page faults;
- 4 MiB (which at batch 8 corresponds to 16 MiB: tensors scale with the batch): 2.5 GB, 3.0 million;
- 1 MiB: 1.4 GB, 8.3 million, 2.2-3x the step time of the defaults.

Trimming the heap (``malloc_trim``) after every Swin block instead gave 2.9 GB with 2.5 million faults at batch 2.
``lean`` is the last resort of ``--memory auto`` (taken only when checkpointing alone does not fit), so it keeps
the least memory: :data:`THRESHOLD_BYTES` is 1 MiB.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where the C library is called: every `sei` command imports this module to start
    import ctypes

__all__ = ["COALESCING_TUNABLES", "THRESHOLD_BYTES", "TUNABLES_VARIABLE", "coalescing_active",
           "coalescing_environment", "format_tunables", "is_glibc", "parse_tunables", "release_freed_memory",
           "restart_with_coalescing", "trim_freed_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
THRESHOLD_BYTES = 1 << 20  # bytes: the least memory; see the measurements above and benchmarks/memory_modes.py
TUNABLES_VARIABLE = "GLIBC_TUNABLES"
# glibc tunables under which freed tensors merge with their neighbours (see the module's docstring): no per-thread
# cache and no fast bins; the heap's free top kept instead of returned (1 TiB: never, in practice), which pins
# glibc's mmap threshold, so it is set to the ceiling its adaptive rule reaches anyway (32 MiB on 64-bit systems)
COALESCING_TUNABLES = {"glibc.malloc.tcache_count": "0", "glibc.malloc.mxfast": "0",
                       "glibc.malloc.trim_threshold": str(1 << 40), "glibc.malloc.mmap_threshold": str(32 << 20)}


def is_glibc() -> bool:
    """Whether this process runs on Linux with glibc (the C library whose allocator this module tunes).

    Asked of the C library itself (``confstr``: instant, and true of the library the process runs with), rather than
    by ``platform.libc_ver``, which reads the Python executable.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        version = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):  # no confstr, or a C library without this name (musl)
        return False
    return bool(version) and version.startswith("glibc")


def parse_tunables(value: str) -> dict[str, str]:
    """``GLIBC_TUNABLES``' ``name=value:name=value`` as a dict, in order (entries without ``=`` are dropped)."""
    pairs = (entry.partition("=") for entry in value.split(":") if entry)
    return {name: setting for name, separator, setting in pairs if separator}


def format_tunables(tunables: Mapping[str, str]) -> str:
    """The ``GLIBC_TUNABLES`` value of ``{name: value}`` (the inverse of :func:`parse_tunables`)."""
    return ":".join(f"{name}={value}" for name, value in tunables.items())


def coalescing_environment(environment: Mapping[str, str]) -> dict[str, str] | None:
    """A copy of ``environment`` whose ``GLIBC_TUNABLES`` adds :data:`COALESCING_TUNABLES` to its own entries.

    A tunable that ``environment`` already sets is left as it is (a user's choice wins), so setting one of them
    yourself, e.g. ``GLIBC_TUNABLES=glibc.malloc.tcache_count=7``, keeps glibc's behaviour for it.

    :return: the new environment, or None when there is nothing to add or the C library is not glibc.
    """
    if not is_glibc():
        return None
    current = parse_tunables(environment.get(TUNABLES_VARIABLE, ""))
    missing = {name: value for name, value in COALESCING_TUNABLES.items() if name not in current}
    if not missing:
        return None
    return {**environment, TUNABLES_VARIABLE: format_tunables({**current, **missing})}


def coalescing_active(environment: Mapping[str, str]) -> bool:
    """Whether a process started with ``environment`` runs with :data:`COALESCING_TUNABLES` (glibc only)."""
    current = parse_tunables(environment.get(TUNABLES_VARIABLE, ""))
    return is_glibc() and all(current.get(name) == value for name, value in COALESCING_TUNABLES.items())


def restart_with_coalescing(command: Sequence[str]) -> None:
    """Replace this process by ``command`` started with :func:`coalescing_environment`, once.

    Returns (doing nothing) where the tunables are already in the environment, the C library is not glibc, or the
    process cannot be replaced; otherwise it does not return. Call it before anything is printed or started.

    :param command: the program and its arguments, e.g. ``[sys.executable, "-m", "sei", *sys.argv[1:]]``.
    """
    environment = coalescing_environment(os.environ)
    if environment is None or not command or not command[0]:
        return
    try:
        os.execve(command[0], list(command), environment)
    except OSError:
        return  # the same command without the tunables: more memory, nothing else changes


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (it has ``mallopt`` and ``malloc_trim``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import ctypes.util  # imports subprocess and shutil (tens of ms): here, not at every command's start

    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name)
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def release_freed_memory(threshold: int = THRESHOLD_BYTES) -> bool:
    """Make glibc map allocations above ``threshold`` bytes individually and trim freed memory.

    This is process-wide and lasts for the life of the process.

    :return: True if applied, False where the C library is not glibc (nothing changes there).
    """
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, threshold))


def trim_freed_memory() -> bool:
    """Return the memory glibc holds freed (in the middle of its heaps too) to the system, once (``malloc_trim``).

    :return: True if glibc released any, False if it had none to release or the C library is not glibc.
    """
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
