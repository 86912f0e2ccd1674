"""How a benchmark records what it measured, so that the documentation can show it without copying by hand.

Every benchmark prints its tables and writes ``benchmarks/results/<name>.json``::

    {"benchmark": name, "command": "python benchmarks/... --flags", "recorded": {date, machine, threads, device,
     torch, sei, commit, load average}, "tables": [{"title", "columns", "rows", "notes"}], "data": {raw values}}

The documentation's benchmark pages (docs/_ext/sei_docs.py) render ``tables`` with ``recorded`` and ``command``.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Table:
    """A table as printed and as the documentation shows it."""

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    notes: str = ""

    def format(self) -> str:
        """Plain text, columns padded, numbers to four significant digits."""
        cells = [[_text(value) for value in row] for row in [self.columns, *self.rows]]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        lines = [self.title] if self.title else []
        for index, row in enumerate(cells):
            lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
            if index == 0:
                lines.append("  ".join("-" * width for width in widths))
        if self.notes:
            lines.append(self.notes)
        return "\n".join(lines)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def machine(device: str = "cpu") -> dict[str, Any]:
    """Where and when a measurement was taken."""
    import torch

    import sei

    gpu = torch.cuda.get_device_name(0) if str(device).startswith("cuda") and torch.cuda.is_available() else None
    return {"date": datetime.date.today().isoformat(), "machine": gpu or _cpu_model(), "cores": os.cpu_count(),
            "torch threads": torch.get_num_threads(), "torch": torch.__version__, "sei": sei.__version__,
            "commit": _commit(), "load average": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None}


def recorded_data(name: str) -> dict[str, Any]:
    """The raw ``data`` of an earlier recording of ``name`` (``{}`` if there is none), for benchmarks that merge."""
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()).get("data", {}) if path.is_file() else {}


def record(name: str, tables: list[Table], data: dict[str, Any], device: str = "cpu",
           command: str | None = None, echo: bool = True) -> Path:
    """Print ``tables`` (unless ``echo`` is False) and write them, with the machine, the command and the raw
    ``data``, to ``benchmarks/results/<name>.json`` (replacing an earlier recording of the same name)."""
    if echo:
        for table in tables:
            print(table.format(), end="\n\n")
    if command is None:
        script = Path(sys.argv[0])
        command = " ".join(["python", f"benchmarks/{script.name}", *map(shlex.quote, sys.argv[1:])])
    payload = {"benchmark": name, "command": command, "recorded": machine(device),
               "tables": [asdict(table) for table in tables], "data": data}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    temporary.replace(path)
    if echo:
        print(f"wrote {path}")
    return path


def table_of(title: str, rows: list[dict[str, Any]], notes: str = "") -> Table:
    """A table of flat records, one column per key (in the order the keys first appear); nested values are left out."""
    columns = list(dict.fromkeys(key for row in rows for key, value in row.items()
                                 if not isinstance(value, (dict, list))))
    return Table(title, columns, [[row.get(column) for column in columns] for row in rows], notes)
