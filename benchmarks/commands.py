"""Running the ``sei`` command line from a benchmark, as a user runs it."""

from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path

from sei.cli import main as sei_main
from sei.core.errors import SEIError

__all__ = ["finished_run_seconds", "sei"]


def sei(*words: object) -> float:
    """Run a ``sei`` command quietly; seconds taken. :raises SEIError: if it fails."""
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()) as out:
        status = sei_main([str(word) for word in words])
    if status != 0:
        raise SEIError(f"sei {' '.join(map(str, words))} exited with status {status}:\n{out.getvalue()[-2000:]}")
    return time.perf_counter() - started


def finished_run_seconds(run: Path) -> float | None:
    """The training seconds a finished ``sei train`` run recorded (its summary beside its weights); ``None`` for a
    run folder that is missing or unfinished."""
    summary = run / "train_summary.json"
    if summary.is_file() and (run / "weights.pt").is_file():
        return float(json.loads(summary.read_text())["seconds"])
    return None
