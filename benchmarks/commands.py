"""Running the ``sei`` command line from a benchmark, as a user runs it."""

from __future__ import annotations

import contextlib
import io
import time

from sei.cli import main as sei_main
from sei.core.errors import SEIError

__all__ = ["sei"]


def sei(*words: object) -> float:
    """Run a ``sei`` command quietly; seconds taken. :raises SEIError: if it fails."""
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()) as out:
        status = sei_main([str(word) for word in words])
    if status != 0:
        raise SEIError(f"sei {' '.join(map(str, words))} exited with status {status}:\n{out.getvalue()[-2000:]}")
    return time.perf_counter() - started
