"""Keeping a CPU process's resident memory close to what its tensors actually use.

glibc serves large allocations from its heap once its adaptive mmap threshold has grown (up to 32 MiB), and keeps
freed heap memory for reuse. A training step allocates and frees hundreds of large temporaries of many sizes, so
the heap fragments and the resident set ends up several gigabytes above the live tensors (measured: 7.6 GB
against 2.3 GB for a checkpointed SwinIR forward and backward at batch 16). Fixing the thresholds makes every
allocation above a threshold its own mapping, returned to the system when freed. The price is a page fault per
fresh 4 KiB page (the kernel zero-fills it), so the threshold trades memory for time. Measured on the paper's
SwinIR SEI step at batch 2 with checkpointing (two threads, ``benchmarks/memory_modes.py``'s set-up), per step:

- glibc's defaults: 3.4 GB peak, 0.1 million page faults;
- 4 MiB (which at batch 8 corresponds to 16 MiB: tensors scale with the batch): 2.5 GB, 3.0 million;
- 1 MiB: 1.4 GB, 8.3 million, 2.2-3x the step time of the defaults.

At batch 8, 16 MiB peaked at 7.9 GB against 9.8 GB with the defaults and 2.9 GB with 1 MiB. Trimming the heap
(``malloc_trim``) after every Swin block instead gave 2.9 GB with 2.5 million faults at batch 2: the excess is
fragmentation within a block's computation, which no trim between blocks removes. ``lean`` is the last resort of
``--memory auto`` (taken only when checkpointing alone does not fit), so it keeps the least memory:
:data:`THRESHOLD_BYTES` is 1 MiB.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
THRESHOLD_BYTES = 1 << 20  # bytes: the least memory; see the measurements above and benchmarks/memory_modes.py


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (it has ``mallopt`` and ``malloc_trim``), else None."""
    if not sys.platform.startswith("linux"):
        return None
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
