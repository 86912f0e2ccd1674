"""Benchmark the main job: `sei demo` on the sample photographs, against its targets.

    python benchmarks/demo.py [--steps 1000] [--out-dir benchmarks/results/demo] [--device cpu]

Targets: SEI at least +1.5 dB PSNR over the blurry input, within 1 dB of the supervised network trained with the
same backbone and budget, and above the best classical restorer, in about 10 minutes on two CPU cores. Prints the
tables and records them in `benchmarks/results/demo.json`.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from recording import Table, record

from sei.core.defaults import DEMO_FINETUNE_STEPS, DEMO_PRETRAINED
from sei.demo import run_demo


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
    gain, gap = result.sei_gain_over_input, result.sei_gap_to_supervised
    classical = result.sei_gain_over_classical
    checks = {"sei_gain_over_input_at_least_1.5_db": gain >= 1.5, "sei_within_1_db_of_supervised": gap <= 1.0,
              f"sei_above_{result.best_classical}": classical > 0, "under_10_minutes": total <= 600}
    names = {"input": "blurry input", "tv": "TV (no training)", "bm3d": "BM3D (no training)",
             "sei": "SEI (measurements only)", "supervised": "supervised, same backbone and budget",
             "shipped": f"the shipped {DEMO_PRETRAINED}, no training",
             "sei-finetuned": f"the shipped network + {DEMO_FINETUNE_STEPS} steps on the blurry photographs"}
    scores = Table("Gaussian_R2 deblurring, noise 5, the 3 validation photographs of the sample set",
                   ["reconstruction", "PSNR (dB)", "SSIM"],
                   [[names.get(label, label), f"{s['psnr']:.2f} ± {s['psnr_std']:.2f}",
                     f"{s['ssim']:.3f} ± {s['ssim_std']:.3f}"] for label, s in result.summaries.items()],
                   notes=f"{sum(v for k, v in result.seconds.items() if k.startswith('train_')):.0f} s of training, "
                         f"{result.seconds['evaluate']:.0f} s of evaluation, {total:.0f} s in all.")
    met = {True: "yes", False: "no"}
    targets = Table("Targets", ["target", "measured", "met"], [
        ["SEI at least +1.5 dB over the blurry input", f"{gain:+.2f} dB",
         met[checks["sei_gain_over_input_at_least_1.5_db"]]],
        ["SEI within 1 dB of supervised", f"{-gap:+.2f} dB", met[checks["sei_within_1_db_of_supervised"]]],
        [f"SEI above the best classical restorer ({result.best_classical})", f"{classical:+.2f} dB",
         met[checks[f"sei_above_{result.best_classical}"]]],
        ["under 10 minutes", f"{total:.0f} s", met[checks["under_10_minutes"]]]])
    record("demo", [scores, targets], {
        "summaries": result.summaries, "sei_gain_over_input_db": gain, "supervised_minus_sei_db": gap,
        "sei_minus_best_classical_db": classical, "finetuning_gain_db": result.finetuning_gain, "best_classical": result.best_classical, "seconds_total": total,
        "seconds": result.seconds, "targets": checks, "steps": args.steps or "default"}, device=args.device)
    print(f"report: {result.report}")


if __name__ == "__main__":
    main()
