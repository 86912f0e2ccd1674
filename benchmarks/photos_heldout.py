"""Photographs nobody tuned to: SEI as a user runs it, against the best classical restorer, on held-out photographs.

    python benchmarks/photos_heldout.py [--scenarios gaussian,box,sr] [--rows default,shipped,finetune]
                                        [--time 10m] [--finetune-options "..."] [--datasets-dir datasets]
                                        [--download] [--work DIR]

Held-out photographs: the 12 of ``photos-test`` (two Debian wallpaper packages that no training set of ``sei``
uses; :data:`sei.data.photos.HELD_OUT_PACKAGES` records each one's author and licence) and 2 that ship inside
wheels (:data:`WHEEL_PHOTOS`), shorter side 256 as in the paper, written as 8-bit PNG: the references. The
``sample`` validation photographs are left out: training runs validate on them.

Every scenario (Gaussian_R2 or Box_R3 deblurring, or x2 bicubic super-resolution; noise 5) measures them once with
``sei degrade`` (8-bit PNG, as a camera writes them), and every restorer runs through the ``sei`` command line:

- classical: Wiener, TV and (deblurring) BM3D, bicubic (SR); the Wiener strength and the TV weight are chosen
  over a grid (extended while the best value is at one of its ends) on 8 photographs of the ``photos`` *training*
  set, degraded the same way, never on the held-out ones; the best of them on the held-out set is the reference;
- ``default``: the README's command exactly as written, ``sei train --dataset photos --download`` with the
  scenario's operator (its defaults otherwise: unet-small, 2400 steps on a CPU, bf16 where native), then
  ``sei restore`` of the measurements (and with ``--ensemble``);
- ``shipped``: the network that ships for the operator (``--weights pretrained:NAME``), no training at all;
- ``finetune``: the shipped network fine-tuned on the held-out measurements themselves, the user's own blurry
  photographs, for ``--time`` (``sei train --measurements DIR --weights pretrained:NAME --time 10m``), then
  ``sei restore`` (and with ``--ensemble``). A scenario whose operator has no network of its own starts from
  another of the same task.

Finished trainings in ``--work`` are reused (their recorded training seconds reported) unless ``--retrain``;
``--retune`` chooses the classical strengths again (and restores the classical rows again).

PSNR and SSIM on the luma of 8-bit images, as ``sei test`` computes them. Records
benchmarks/results/photos_heldout.json, keeping the scenarios and rows of an earlier recording that were not rerun.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from commands import finished_run_seconds, sei
from laptop_quality import HELD_OUT
from recording import Table, record, recorded_data

from sei.data.preprocess import resize_shorter_side
from sei.data.sources import PAPER_SHORTER_SIDE, SAMPLE_SPLITS, load_image_set
from sei.io.images import read_image, write_image
from sei.metrics import psnr, ssim
from sei.models.pretrained import pretrained_networks

MAX_SR_CROP = 4  # the most rows or columns `sei degrade` crops for a super-resolution factor (x4)
SCENARIOS: dict[str, list[str]] = {
    "gaussian": ["--kernel", "Gaussian_R2"],
    "box": ["--kernel", "Box_R3"],
    "sr": ["--task", "sr", "--sr-factor", "2"],
}
NOISE = ["--noise-level", "5"]
TITLES = {"gaussian": "Gaussian_R2 deblurring, noise 5", "box": "Box_R3 deblurring, noise 5",
          "sr": "x2 super-resolution (bicubic), noise 5"}
CLASSICAL = {"gaussian": ["wiener", "tv", "bm3d"], "box": ["wiener", "tv", "bm3d"], "sr": ["bicubic", "wiener", "tv"]}
# strength grids around the defaults: Wiener's multiplier of sigma^2 (default 50), TV's weight in [0, 1] image
# units (default 0.05 sigma, sigma = 5 / 255)
WIENER_GRID = (12.5, 25.0, 50.0, 100.0, 200.0)
GRID_EXTENSIONS = 4  # values tried beyond either end of a grid whose best value is at that end
TV_GRID = tuple(round(factor * 5 / 255, 6) for factor in (0.0125, 0.025, 0.05, 0.1, 0.2))
TUNING_IMAGES = 8
# the photographs of laptop_quality.HELD_OUT that no training run validates on (the others are sample's val split)
WHEEL_PHOTOS = {name: HELD_OUT[name][1] for name in ("motorcycle", "grace_hopper")}


def write_references(images: dict[str, torch.Tensor], folder: Path) -> None:
    """The clean photographs at the paper's size, as 8-bit PNG (the references every row is scored against)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in images.items():
        write_image(folder / f"{name}.png", resize_shorter_side(image[:3], PAPER_SHORTER_SIDE))


def held_out(datasets_dir: Path, download: bool) -> dict[str, torch.Tensor]:
    test = load_image_set("photos-test", "val", datasets_dir, download=download, resize=None)
    images = dict(zip(test.names, test.images))
    images.update({name: HELD_OUT[name][0]() for name in WHEEL_PHOTOS})
    return images


def tuning_photos(datasets_dir: Path, download: bool) -> dict[str, torch.Tensor]:
    """Photographs of the ``photos`` training set (Debian's, every third one) to choose classical strengths on."""
    train = load_image_set("photos", "train", datasets_dir, download=download, resize=None)
    packaged = [(n, i) for n, i in zip(train.names, train.images) if n not in SAMPLE_SPLITS["train"]]
    return dict(packaged[::3][:TUNING_IMAGES])


def scores(estimates: Path, references: Path) -> dict[str, Any]:
    """Mean and per-image luma PSNR/SSIM of 8-bit estimates against the references."""
    per_image = {}
    for reference_file in sorted(references.glob("*.png")):
        reference = read_image(reference_file)[None]
        estimate = read_image(estimates / reference_file.name)[None]
        # super-resolution measures the reference cropped at the bottom and right to a multiple of the factor
        # (`sei degrade`): score that crop
        height, width = estimate.shape[-2:]
        if 0 <= reference.shape[-2] - height < MAX_SR_CROP and 0 <= reference.shape[-1] - width < MAX_SR_CROP:
            reference = reference[..., :height, :width]
        per_image[reference_file.stem] = {"psnr": float(psnr(estimate, reference, 1.0)),
                                          "ssim": float(ssim(estimate, reference, 1.0))}
    values = np.array([[v["psnr"], v["ssim"]] for v in per_image.values()])
    return {"psnr": float(values[:, 0].mean()), "ssim": float(values[:, 1].mean()), "n": len(per_image),
            "per_image": per_image}


def restore(measurements: Path, out: Path, references: Path, options: list[str]) -> dict[str, Any]:
    if out.exists():
        shutil.rmtree(out)
    seconds = sei("restore", measurements, out, "--quiet", *options)
    return {**scores(out, references), "restore_s": seconds}


def tune(scenario: str, work: Path, tuning: Path) -> dict[str, float]:
    """The Wiener strength and TV weight with the best mean PSNR on the degraded training photographs."""
    measurements = work / "tuning_measurements"
    if not measurements.exists():
        sei("degrade", tuning, measurements, *SCENARIOS[scenario], *NOISE, "--seed", "1", "--quiet")
    chosen = {}
    for option, grid in (("--wiener-strength", WIENER_GRID), ("--tv-weight", TV_GRID)):
        kind = "wiener" if option == "--wiener-strength" else "tv"
        results = {value: restore(measurements, work / "tuning_out", tuning, ["--model-kind", kind, option, value])
                   for value in grid}
        # a best value at either end of the grid may not be the best: go on by the grid's ratio until it is not
        for _ in range(GRID_EXTENSIONS):
            best = max(results, key=lambda value: results[value]["psnr"])
            values = sorted(results)
            if best not in (values[0], values[-1]):
                break
            step = values[-1] / values[-2] if best == values[-1] else values[0] / values[1]
            value = round(best * step, 6)
            results[value] = restore(measurements, work / "tuning_out", tuning, ["--model-kind", kind, option, value])
        chosen[kind] = max(results, key=lambda value: results[value]["psnr"])
        tried = ", ".join(f"{value}: {results[value]['psnr']:.2f}" for value in sorted(results))
        print(f"[{scenario}] {kind}: {option} {chosen[kind]} on the training photographs ({tried})", flush=True)
    return chosen


def trained(run: Path, retrain: bool, *options: object) -> float:
    """Train a run with ``sei train OPTIONS --out-dir RUN`` (or reuse it when finished); its training seconds."""
    finished = finished_run_seconds(run)
    if finished is not None and not retrain:
        return finished
    if run.exists():
        shutil.rmtree(run)
    sei("train", *options, "--out-dir", run, "--quiet")
    return finished_run_seconds(run)


def shipped_for(scenario: str) -> tuple[str | None, bool]:
    """The shipped network to start from for a scenario, and whether it was trained for this very operator."""
    networks = pretrained_networks().values()
    flags = SCENARIOS[scenario]
    task = "sr" if "sr" in flags else "deblurring"
    kernel = flags[flags.index("--kernel") + 1] if "--kernel" in flags else None
    for network in networks:
        if network.task == task and network.kernel == kernel and network.noise_level == 5.0:
            return network.weights_name, True
    for network in networks:  # another operator of the same task: a starting point for fine-tuning
        if network.task == task and network.sr_factor == (2 if task == "sr" else None):
            return network.weights_name, False
    return None, False


def run_scenario(scenario: str, rows_wanted: list[str], args: argparse.Namespace, previous: dict[str, Any]
                 ) -> dict[str, Any]:
    work = args.work / scenario
    references, tuning = args.work / "references", args.work / "tuning_references"
    measurements = work / "measurements"
    if not measurements.exists():
        sei("degrade", references, measurements, *SCENARIOS[scenario], *NOISE, "--quiet")
    rows: dict[str, Any] = dict(previous.get("rows", {}))
    strengths = None if args.retune else previous.get("strengths")
    if strengths is None:
        strengths = tune(scenario, work, tuning)
        rows = {label: row for label, row in rows.items() if label not in CLASSICAL[scenario]}
    for kind in CLASSICAL[scenario]:
        if kind not in rows:
            option = {"wiener": ["--wiener-strength", strengths["wiener"]], "tv": ["--tv-weight", strengths["tv"]]}
            rows[kind] = restore(measurements, work / kind, references, ["--model-kind", kind, *option.get(kind, [])])
            print(f"[{scenario}] {kind}: {rows[kind]['psnr']:.2f} dB", flush=True)
    physics = [*SCENARIOS[scenario], *NOISE]
    if "default" in rows_wanted:
        run = work / "runs" / "default"
        seconds = trained(run, args.retrain, "--dataset", "photos", "--download", "--datasets-dir", args.datasets_dir,
                          *physics)
        for ensemble in (False, True):
            label = "SEI: the README's command" + (" + ensemble" if ensemble else "")
            rows[label] = {**restore(measurements, work / "default_out", references,
                                     ["--weights", run, "--ensemble" if ensemble else "--no-ensemble"]),
                            "train_s": seconds}
            print(f"[{scenario}] {label}: {rows[label]['psnr']:.2f} dB ({seconds:.0f} s training)", flush=True)
    start, same_operator = shipped_for(scenario)
    if start and same_operator and "shipped" in rows_wanted:
        for ensemble in (False, True):
            label = f"SEI: shipped {start}, no training" + (" + ensemble" if ensemble else "")
            rows[label] = restore(measurements, work / "shipped_out", references,
                                  ["--weights", start, "--ensemble" if ensemble else "--no-ensemble"])
            print(f"[{scenario}] {label}: {rows[label]['psnr']:.2f} dB", flush=True)
    if start and "finetune" in rows_wanted:
        extra = args.finetune_options.split()
        run = work / "runs" / ("finetune" + "".join(extra).replace("-", "_"))
        seconds = trained(run, args.retrain, "--measurements", measurements, "--weights", start, "--time", args.time,
                          *extra)
        for ensemble in (False, True):
            label = (f"SEI: {start} + {args.time} on the measurements{' ' if extra else ''}{' '.join(extra)}"
                     + (" + ensemble" if ensemble else ""))
            rows[label] = {**restore(measurements, work / "finetune_out", references,
                                     ["--weights", run, "--ensemble" if ensemble else "--no-ensemble"]),
                            "train_s": seconds}
            print(f"[{scenario}] {label}: {rows[label]['psnr']:.2f} dB ({seconds:.0f} s training)", flush=True)
    return {"rows": rows, "strengths": strengths}


def scenario_table(scenario: str, payload: dict[str, Any]) -> Table:
    rows = payload["rows"]
    classical = {kind: rows[kind]["psnr"] for kind in CLASSICAL[scenario] if kind in rows}
    best = max(classical, key=classical.get)
    strengths = payload["strengths"]
    table = Table(f"{TITLES[scenario]}: {rows[best]['n']} held-out photographs; best classical: {best}",
                  ["row", "PSNR (dB)", "SSIM", f"vs {best}", "training s", "restore s"],
                  notes=f"Wiener strength {strengths['wiener']} and TV weight {strengths['tv']}, chosen on "
                        f"{TUNING_IMAGES} photographs of the photos training set.")
    for label, row in rows.items():
        table.rows.append([label, f"{row['psnr']:.2f}", f"{row['ssim']:.4f}", f"{row['psnr'] - classical[best]:+.2f}",
                           row.get("train_s"), row["restore_s"]])
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--rows", default="default,shipped,finetune")
    parser.add_argument("--time", default="10m", help="fine-tuning budget (the laptop budget)")
    parser.add_argument("--finetune-options", default="", help="more sei train options for the finetune rows")
    parser.add_argument("--datasets-dir", type=Path, default=Path("datasets"))
    parser.add_argument("--download", action="store_true")
    parser.add_argument("--work", type=Path, default=Path("benchmarks/results/photos_heldout_work"))
    parser.add_argument("--retrain", action="store_true", help="train again runs that finished (default: reuse)")
    parser.add_argument("--retune", action="store_true",
                        help="choose the classical strengths again and restore the classical rows again")
    args = parser.parse_args()
    references = args.work / "references"
    if not references.exists():
        write_references(held_out(args.datasets_dir, args.download), references)
        write_references(tuning_photos(args.datasets_dir, args.download), args.work / "tuning_references")
    recorded = recorded_data("photos_heldout").get("scenarios", {})
    for scenario in args.scenarios.split(","):
        started = time.perf_counter()
        recorded[scenario] = run_scenario(scenario, args.rows.split(","), args, recorded.get(scenario, {}))
        recorded[scenario]["seconds"] = time.perf_counter() - started
        record("photos_heldout", [scenario_table(name, payload) for name, payload in recorded.items()],
               {"scenarios": recorded, "images": sorted(p.stem for p in references.glob("*.png")),
                "wheel_licences": WHEEL_PHOTOS})


if __name__ == "__main__":
    main()
