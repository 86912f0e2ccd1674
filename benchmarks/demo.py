"""Benchmark the main job: `sei demo` on the sample photographs, against its targets.

    python benchmarks/demo.py [--steps 1000] [--out-dir benchmarks/results/demo] [--device cpu]

Targets (README): SEI at least +1.5 dB PSNR over the blurry input, and within 1 dB of the supervised network
trained with the same backbone and budget, in about 10 minutes on two CPU cores. Prints a table and writes
`benchmarks/results/demo.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

import torch

from sei.demo import run_demo
from sei.inference.evaluation import format_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=None, help="training steps per method (demo default)")
    parser.add_argument("--out-dir", default="benchmarks/results/demo")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--keep", action="store_true", help="reuse an existing run folder instead of starting over")
    args = parser.parse_args()
    out_dir = Path(args.out_dir)
    if out_dir.exists() and not args.keep:
        shutil.rmtree(out_dir)
    started = time.perf_counter()
    result = run_demo(out_dir, steps=args.steps, device=args.device, progress=False)
    total = time.perf_counter() - started
    print(format_table(list(result.summaries.items())))
    gain, gap = result.sei_gain_over_input, result.sei_gap_to_supervised
    classical = result.sei_gain_over_classical
    checks = {"sei_gain_over_input_at_least_1.5_db": gain >= 1.5, "sei_within_1_db_of_supervised": gap <= 1.0,
              f"sei_above_{result.best_classical}": classical > 0, "under_10_minutes": total <= 600}
    print(f"SEI - input: {gain:+.2f} dB; SEI - {result.best_classical}: {classical:+.2f} dB; "
          f"supervised - SEI: {gap:+.2f} dB; total {total:.0f} s "
          f"({', '.join(f'{k}: {v:.0f} s' for k, v in result.seconds.items())})")
    print("targets: " + ", ".join(f"{name} {'PASS' if ok else 'FAIL'}" for name, ok in checks.items()))
    record = {"psnr": {k: v["psnr"] for k, v in result.summaries.items()},
              "ssim": {k: v["ssim"] for k, v in result.summaries.items()},
              "sei_gain_over_input_db": gain, "supervised_minus_sei_db": gap,
              "sei_minus_best_classical_db": classical, "best_classical": result.best_classical, "seconds_total": total,
              "seconds": result.seconds, "targets": checks, "steps": args.steps or "default",
              "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "platform": platform.platform(), "torch": torch.__version__}}
    path = Path("benchmarks/results/demo.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))
    print(f"wrote {path} and {result.report}")


if __name__ == "__main__":
    main()
