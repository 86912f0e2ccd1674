"""How long ``sei`` takes to start: the wall and CPU time of commands that neither train nor restore, and which
heavy packages (torch, deepinv, lightning) each imports.

    python benchmarks/startup.py [--runs 5] [--commands "--help;info;weights list;psf --help"] [--no-references]

Each command runs ``--runs`` times as its own process (the ``sei`` console script beside this Python, which
restarts itself once with glibc's tunables, as it does for a user; its output is discarded). The table gives
the median wall time and the median user + system CPU time of the process; CPU time counts only this process's
work, so it varies less than wall time on a busy machine. One more run with ``PYTHONPROFILEIMPORTTIME=1`` lists
the heavy packages the command imported and the import time of each. Reference rows time the interpreter alone
and the import of each heavy package. Prints the table and records it in benchmarks/results/startup.json.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from recording import Table, record

COMMANDS = ("--help", "info", "weights list", "psf --help", "restore --help", "train --help")
HEAVY = ("torch", "deepinv", "lightning")
REFERENCES = {"python (interpreter only)": "pass", "import torch": "import torch", "import deepinv": "import deepinv",
              "import lightning.pytorch": "import lightning.pytorch"}


def sei_command() -> list[str]:
    """The ``sei`` console script installed beside this Python, else ``python -m sei`` (the same command line)."""
    script = Path(sys.executable).with_name("sei")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "sei"]


def timed(argv: list[str], environment: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run ``argv`` to its end: (wall seconds, user + system CPU seconds, standard error)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    finished = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env=environment, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if finished.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited with {finished.returncode}: {finished.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, finished.stderr


def heavy_imports(stderr: str) -> dict[str, float]:
    """Heavy package -> its cumulative import time in seconds where it was first imported, from ``-X importtime``'s
    report; only the outermost heavy imports are kept (deepinv's own import of torch is part of deepinv's time),
    so the times add up. Packages the process did not import are absent."""
    entries = []  # (nesting level, module, cumulative seconds), in the order the imports finished
    for line in stderr.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        _, cumulative, name = line.split("|")
        if cumulative.strip().isdigit():  # not the header
            entries.append(((len(name) - len(name.lstrip()) - 1) // 2, name.strip(), int(cumulative) / 1e6))
    found: dict[str, float] = {}
    ancestors: list[str] = []
    for level, module, seconds in reversed(entries):  # reversed, a parent comes before the imports it made
        ancestors = ancestors[:level]
        root = module.partition(".")[0]  # `import lightning.pytorch` imports lightning inside it
        if root in HEAVY and not any(parent.partition(".")[0] in HEAVY for parent in ancestors):
            found[root] = found.get(root, 0.0) + seconds
        ancestors.append(module)
    return found


def measure(label: str, argv: list[str], runs: int) -> dict:
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu, _ = timed(argv)
        walls.append(wall)
        cpus.append(cpu)
    _, _, report = timed(argv, {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"})
    imported = heavy_imports(report)
    row = {"command": label, "wall_median_s": statistics.median(walls), "wall_min_s": min(walls),
           "cpu_median_s": statistics.median(cpus), "imports": sorted(imported),
           "import_s": imported, "walls_s": walls, "cpus_s": cpus}
    print(f"{label}: {row['wall_median_s']:.2f} s wall (median of {runs}), {row['cpu_median_s']:.2f} s CPU, "
          f"imports {', '.join(row['imports']) or 'none of ' + '/'.join(HEAVY)}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs per command (the median is reported)")
    parser.add_argument("--commands", default=";".join(COMMANDS), help="sei commands, separated by ';'")
    parser.add_argument("--no-references", action="store_true",
                        help="skip the reference rows (the interpreter alone, and each heavy package's import)")
    args = parser.parse_args()
    sei = sei_command()
    rows = [measure(f"sei {command}", [*sei, *shlex.split(command)], args.runs)
            for command in args.commands.split(";") if command.strip()]
    references = [] if args.no_references else [
        measure(label, [sys.executable, "-c", code], args.runs) for label, code in REFERENCES.items()]

    def table_rows(records: list[dict]) -> list[list]:
        return [[r["command"], r["wall_median_s"], r["wall_min_s"], r["cpu_median_s"],
                 ", ".join(f"{name} ({r['import_s'][name]:.2f} s)" for name in r["imports"]) or "none"]
                for r in records]

    columns = ["command", "wall s (median)", "wall s (min)", "user+sys s (median)", "heavy imports (import time)"]
    tables = [Table(f"Start-up of sei commands, {args.runs} runs each", columns, table_rows(rows),
                    "Import times come from one more run with PYTHONPROFILEIMPORTTIME=1 (cumulative, outermost "
                    "import of each package). sei restarts itself once (glibc tunables), so its times include two "
                    "interpreter starts.")]
    if references:
        tables.append(Table("References: the interpreter alone and each heavy package's import (python -c)",
                            columns, table_rows(references)))
    record("startup", tables, {"runs": args.runs, "sei": " ".join(Path(part).name for part in sei),
                               "commands": rows, "references": references})


if __name__ == "__main__":
    main()
