"""Does data loading starve the training step? The fraction of step time spent waiting for the next batch.

    python benchmarks/data_loading.py [--backbones unet-small,swinir] [--workers 0,2] [--steps 60] [--device cpu]

Runs real training (the Lightning engine, the sample photographs, SEI, Gaussian_R2, batch 8, 48x48 crops) and
reads ``train/data_wait_fraction`` (time between the end of one step and the start of the next, over that
plus the step itself) and ``train/samples_per_s`` from the run's CSV log. Measurements are simulated once and
kept in memory; crops are slices, drawn in worker processes when ``--workers`` > 0; batches are pinned on GPUs.
Prints a table and records it in benchmarks/results/data_loading.json.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import statistics
from pathlib import Path

from recording import Table, record

from sei.config import RunFolder
from sei.config.schema import from_flat
from sei.training import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", default="unet-small,swinir")
    parser.add_argument("--workers", default="0,2")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs-dir", default="benchmarks/results/data_loading")
    args = parser.parse_args()
    records = []
    for backbone in args.backbones.split(","):
        for workers in (int(w) for w in args.workers.split(",")):
            out_dir = Path(args.runs_dir) / f"{backbone}_workers{workers}"
            shutil.rmtree(out_dir, ignore_errors=True)
            config = from_flat({"data.dataset": "sample", "model.backbone": backbone, "train.steps": args.steps,
                                "data.num_workers": workers, "train.device": args.device, "train.progress": False,
                                "train.log_every": 1, "train.checkpoint_every": 0, "out_dir": str(out_dir)})
            train(config)
            with open(RunFolder(out_dir).metrics_log, newline="") as file:
                rows = list(csv.DictReader(file))
            waits = [float(r["train/data_wait_fraction"]) for r in rows if r.get("train/data_wait_fraction")]
            speeds = [float(r["train/samples_per_s"]) for r in rows if r.get("train/samples_per_s")]
            records.append({"backbone": backbone, "workers": workers, "steps": args.steps,
                            "data_wait_fraction_median": statistics.median(waits),
                            "data_wait_fraction_mean": statistics.fmean(waits),
                            "samples_per_s_median": statistics.median(speeds)})
    table = Table(f"Training on the sample photographs (SEI, Gaussian_R2, batch 8, 48x48 crops, {args.steps} steps)",
                  ["backbone", "loader workers", "waiting for data (median share of the step)", "mean share",
                   "samples/s (median)"],
                  [[r["backbone"], r["workers"], f"{100 * r['data_wait_fraction_median']:.2f} %",
                    f"{100 * r['data_wait_fraction_mean']:.2f} %", r["samples_per_s_median"]] for r in records])
    record("data_loading", [table], {"records": records}, device=args.device)


if __name__ == "__main__":
    main()
