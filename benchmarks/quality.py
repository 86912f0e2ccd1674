"""Quality benchmark: does the method behave as the paper says, with our backbones and budgets?

    python benchmarks/quality.py [--tasks deblurring,sr] [--backbones unet-tiny,unet-small] [--budgets 500,2000]
                                 [--methods supervised,sei,sure,css,ei-shift,ei-rotate,sei-no-stop-grad]
                                 [--lr 1e-3] [--seed 0] [--device cpu]

Trains every method with the same backbone, budget (optimiser steps, batch 8, 48x48 crops) and seed on the
sample photographs, for Gaussian_R2 deblurring and x2 super-resolution at noise level 5, evaluates on the sample
validation photographs, and prints one paper-style table per (task, backbone, budget) with the input's scores
(the blurry image, or bicubic up-sampling for SR). Finished trainings are reused, so the benchmark can be
stopped and continued. Records the tables in benchmarks/results/quality.json. The numbers are reported as they
come: nothing here is tuned towards an expected ordering.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from recording import Table, record, recorded_data

from sei.config.resolve import resolve
from sei.config.run_folder import WEIGHTS_FILE
from sei.config.schema import from_flat
from sei.data.pairs import MeasurementSet
from sei.data.sources import load_image_set
from sei.inference.baselines import build_baseline
from sei.inference.evaluation import evaluate
from sei.inference.reconstructors import NetworkReconstructor
from sei.models.weights import load_backbone
from sei.physics import make_physics
from sei.training.run import train_or_reuse

TASKS = {"deblurring": {"physics.task": "deblurring", "physics.kernel": "Gaussian_R2"},
         "sr": {"physics.task": "sr", "physics.sr_factor": 2}}


def record_key(record: dict) -> tuple:
    return record["task"], record["backbone"], record["steps"], record["method"]


def save_record(entry: dict, args: argparse.Namespace, echo: bool = False) -> None:
    """Merge one record into the recorded results as they are now (other runs of this benchmark may be writing)."""
    records = recorded_data("quality").get("records", [])
    merged = list(({record_key(r): r for r in records} | ({record_key(entry): entry} if entry else {})).values())
    groups = sorted({(r["task"], r["backbone"], r["steps"]) for r in merged})
    tables = [Table(f"{task} ({'Gaussian_R2' if task == 'deblurring' else 'x2'}), {backbone}, {steps} steps, "
                    f"lr {args.lr:g}, seed {args.seed}: PSNR (dB) / SSIM on the sample's 3 validation photographs",
                    ["method", "PSNR (dB)", "SSIM", "training s"],
                    [[r["method"], f"{r['psnr']:.2f} ± {r['psnr_std']:.2f}", r["ssim"], r["train_seconds"]]
                     for r in merged if (r["task"], r["backbone"], r["steps"]) == (task, backbone, steps)])
              for task, backbone, steps in groups]
    record("quality", tables, {"records": merged, "lr": args.lr, "seed": args.seed}, device=args.device, echo=echo)


SELF_SUPERVISED_RIVALS = ("sure", "css", "ei-shift", "ei-rotate", "sei-no-stop-grad")


def sei_verdict(rows: list[dict]) -> str:
    """One line: SEI's PSNR margin over the best self-supervised rival and its gap to supervised."""
    psnr = {row["method"]: row["psnr"] for row in rows}
    rivals = {m: psnr[m] for m in SELF_SUPERVISED_RIVALS if m in psnr}
    if "sei" not in psnr or not rivals:
        return "SEI verdict: needs sei and at least one rival in --methods"
    best = max(rivals, key=rivals.get)
    margin = psnr["sei"] - rivals[best]
    line = f"SEI {'above' if margin > 0 else 'NOT above'} every rival: {margin:+.2f} dB against the best ({best})"
    if "supervised" in psnr:
        line += f"; {psnr['sei'] - psnr['supervised']:+.2f} dB against supervised"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="deblurring,sr")
    parser.add_argument("--backbones", default="unet-tiny,unet-small")
    parser.add_argument("--budgets", default="500,2000")
    parser.add_argument("--methods", default="supervised,sei,sure,css,ei-shift,ei-rotate,sei-no-stop-grad")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs-dir", default="benchmarks/results/quality")
    args = parser.parse_args()
    done = {record_key(r): r for r in recorded_data("quality").get("records", [])}
    validation = load_image_set("sample", "val")
    for task in args.tasks.split(","):
        physics_settings = TASKS[task]
        physics = make_physics(task, physics_settings.get("physics.kernel"), physics_settings.get("physics.sr_factor"), 5)
        measurements = MeasurementSet(validation, physics)
        input_kind = "bicubic" if task == "sr" else "identity"
        input_scores = evaluate(build_baseline(input_kind, physics), measurements, progress=False).summary
        for backbone in args.backbones.split(","):
            for steps in (int(b) for b in args.budgets.split(",")):
                label = f"input ({input_kind})"
                done[(task, backbone, steps, label)] = {"task": task, "backbone": backbone, "steps": steps,
                                                        "method": label, "psnr": input_scores["psnr"],
                                                        "psnr_std": input_scores["psnr_std"],
                                                        "ssim": input_scores["ssim"], "train_seconds": None}
                save_record(done[(task, backbone, steps, label)], args)
                rows = []
                for method in args.methods.split(","):
                    key = (task, backbone, steps, method)
                    if key not in done:
                        config = resolve(from_flat({
                            **physics_settings, "physics.noise_level": 5, "data.dataset": "sample",
                            "loss.method": method, "model.backbone": backbone, "train.steps": steps,
                            "train.lr": args.lr, "train.seed": args.seed, "train.device": args.device,
                            "train.progress": False, "name": f"{task}_{backbone}_{steps}_{method}",
                            "out_dir": f"{args.runs_dir}/{task}_{backbone}_{steps}_{method}"}))
                        trained_before = (Path(config.out_dir) / WEIGHTS_FILE).is_file()
                        started = time.perf_counter()
                        weights = train_or_reuse(config)
                        seconds = None if trained_before else time.perf_counter() - started  # unknown if reused
                        network = NetworkReconstructor(load_backbone(weights))
                        summary = evaluate(network, measurements, progress=False).summary
                        done[key] = {"task": task, "backbone": backbone, "steps": steps, "method": method,
                                     "psnr": summary["psnr"], "psnr_std": summary["psnr_std"],
                                     "ssim": summary["ssim"], "train_seconds": seconds}
                        save_record(done[key], args)
                    rows.append(done[key])
                print(f"\n{task} ({'Gaussian_R2' if task == 'deblurring' else 'x2'}), {backbone}, {steps} steps")
                print(f"{'method':<20}{'PSNR (dB)':>16}{'SSIM':>9}{'train s':>9}")
                print(f"{'input (' + input_kind + ')':<20}{input_scores['psnr']:>10.2f} ± {input_scores['psnr_std']:.2f}"
                      f"{input_scores['ssim']:>9.4f}")
                for row in rows:
                    print(f"{row['method']:<20}{row['psnr']:>10.2f} ± {row['psnr_std']:.2f}{row['ssim']:>9.4f}"
                          f"{'-' if row['train_seconds'] is None else round(row['train_seconds']):>9}", flush=True)
                print(sei_verdict(rows), flush=True)
    save_record({}, args, echo=True)


if __name__ == "__main__":
    main()
