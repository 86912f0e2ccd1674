"""The training step as users run it, against the benchmark's baseline step: from Python and as the command runs it.

    python benchmarks/train_entry.py [--backbone swinir] [--batch 2] [--precisions 32,bf16] [--steps 4]
                                     [--repeats 1]

``benchmarks/train_step.py`` times the loss, backward pass and optimiser step of its own set-up, which is not the
code path ``sei train`` runs (the Lightning module, the operator in float32 outside autocast, gradient clipping,
logging, the data module). This benchmark times whole steps of that path, each row in fresh processes:

- ``baseline``: ``train_step.py``'s baseline step (three separate evaluations, deepinv's attention, eager
  float32), the reference every row's speed-up is taken against;
- ``python``: :func:`sei.training.train` called from Python, with glibc's default allocator settings;
- ``command``: the same call in a process started with the allocator settings that the ``sei`` command gives
  itself (``GLIBC_TUNABLES``, :mod:`sei.core.memory`), i.e. what ``sei train`` runs.

Each process runs two warm-up steps, then ``--steps`` timed ones (median); the rows run one after the other,
``--repeats`` times, in alternating order, and the table gives each row's median over its processes with the
speed-up against ``baseline``. A regression in any part of ``sei train``'s step (not only in
the network and loss that ``train_step.py`` covers) shows as a ``python`` or ``command`` row slower than the
baseline. Records ``benchmarks/results/train_entry.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WARMUP_STEPS = 2
ENTRIES = ("python", "command")
PRECISIONS = {"32": "32-true", "bf16": "bf16-mixed"}  # Lightning's names


def child_step(args) -> list[float]:
    """Per-step seconds of train_step.py's baseline step (warm-up excluded)."""
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train_step import Mode

    runner = Mode(argparse.Namespace(backbone=args.backbone, task="deblurring", batch=args.batch, method="sei",
                                     compile=None, crop=48), "baseline", torch.device("cpu"))
    for index in range(WARMUP_STEPS):
        runner.step(index)
    return [runner.step(index) for index in range(WARMUP_STEPS, WARMUP_STEPS + args.steps)]


def child_train(args) -> list[float]:
    """Per-step seconds of :func:`sei.training.train` (warm-up excluded), from batch start to batch end."""
    import lightning as L

    from sei.config.schema import from_flat
    from sei.training.run import train

    class StepTimes(L.Callback):
        def __init__(self) -> None:
            self.seconds: list[float] = []
            self.started = 0.0

        def on_train_batch_start(self, trainer, module, batch, batch_index) -> None:
            self.started = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_index) -> None:
            self.seconds.append(time.perf_counter() - self.started)

    timer = StepTimes()
    with tempfile.TemporaryDirectory() as folder:
        config = from_flat({"data.dataset": "sample", "model.backbone": args.backbone, "data.batch_size": args.batch,
                            "train.steps": WARMUP_STEPS + args.steps, "train.precision": PRECISIONS[args.precision],
                            "train.memory": "none", "train.progress": False, "train.device": "cpu",
                            "out_dir": str(Path(folder) / "run")})
        train(config, callbacks=[timer])
    return timer.seconds[WARMUP_STEPS:]


def run_child(args, row: str, precision: str) -> dict:
    from sei.core.memory import coalescing_active, coalescing_environment

    environment = dict(os.environ)
    if row == "command":
        environment = coalescing_environment(environment) or environment
    command = [sys.executable, __file__, "--child", "step" if row == "baseline" else "train", "--backbone",
               args.backbone, "--batch", str(args.batch), "--precision", precision, "--steps", str(args.steps)]
    result = subprocess.run(command, capture_output=True, text=True, env=environment)
    lines = [line for line in result.stdout.splitlines() if line.startswith("[")]
    if not lines:
        tail = (result.stderr.strip().splitlines() or [f"exit code {result.returncode}"])[-1]
        return {"error": tail[:200]}
    seconds = json.loads(lines[-1])
    return {"seconds": seconds, "median": statistics.median(seconds), "allocator_settings": coalescing_active(
        environment)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="swinir")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--precisions", default="32,bf16", help="comma-separated: 32, bf16")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per process, after two warm-up steps")
    parser.add_argument("--repeats", type=int, default=1, help="processes per row (rows alternate their order)")
    parser.add_argument("--child", choices=("step", "train"), help=argparse.SUPPRESS)
    parser.add_argument("--precision", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_step(args) if args.child == "step" else child_train(args)))
        return
    from recording import Table, record

    precisions = args.precisions.split(",")
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown:
        parser.error(f"unknown precision {unknown[0]!r}; use {', '.join(PRECISIONS)}")
    measured = [("baseline", "32")] + [(entry, precision) for precision in precisions for entry in ENTRIES]
    runs: dict[str, list[dict]] = {f"{row} {precision}": [] for row, precision in measured}
    for repeat in range(args.repeats):
        for row, precision in measured if repeat % 2 == 0 else reversed(measured):
            result = run_child(args, row, precision)
            runs[f"{row} {precision}"].append(result)
            print(f"{row:<9} {precision:>5} {result.get('median', result.get('error'))}", flush=True)
    medians = {key: [r["median"] for r in results if "median" in r] for key, results in runs.items()}
    base = statistics.median(medians["baseline 32"]) if medians["baseline 32"] else None
    rows = []
    for row, precision in measured:
        values = medians[f"{row} {precision}"]
        seconds = statistics.median(values) if values else None
        rows.append([row, precision, seconds, base / seconds if base and seconds else None,
                     ", ".join(f"{m:.2f}" for m in values)])
    table = Table(f"The SEI step as users run it ({args.backbone}, deblurring, batch {args.batch} of 48x48, two "
                  f"warm-up steps, median of {args.steps}; each row in fresh processes, speed-up against the "
                  "float32 baseline step)", ["entry", "precision", "s/step", "speed-up", "per process"], rows)
    record("train_entry", [table], {"runs": runs, "backbone": args.backbone, "batch": args.batch})


if __name__ == "__main__":
    main()
