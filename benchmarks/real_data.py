"""Real-data benchmark: how well the noise level is estimated from measurements alone, and 16-bit data end to end.

    python benchmarks/real_data.py [--sigmas 1 2 5 10 20] [--out benchmarks/results/real_data.json]
    python benchmarks/real_data.py --only microscopy [--microscopy-steps 300]
    python benchmarks/real_data.py --only sigma photon [--steps 250] [--threads 1]

For each task (Gaussian_R2 deblurring, x2 bicubic down-sampling) and each sigma (8-bit grey levels), every sample
photograph (14: train and validation) is measured with seeded Gaussian noise (float measurements, no 8-bit
rounding), and the noise level is estimated by ``sei``'s estimator (``sei.physics.noise_estimation``) and by
deepinv's ``PatchCovarianceNoiseEstimator`` (the same patch-covariance method without the weak-texture selection).
Reported: the relative error of the set's estimate (the median over images, what ``--noise-level auto`` uses) and
the mean and worst relative error of the per-image estimates. Also the Poisson-Gaussian estimator (gain and sigma)
on photon-limited deblurring measurements. Prints a table and writes JSON.

The 16-bit case ("microscopy-like", simulated from the sample photographs): their luma as 16-bit counts (background
300, peak about 30 300 of 65 535), blurred by Gaussian_R2 and given Gaussian noise of 600 counts, rounded to
16-bit TIFFs: the 11 training photographs as files, the 3 validation ones (centre 256 x 256) as one 3-page stack.
``sei train --measurements`` with ``--noise-level auto`` (a short budget, ``--microscopy-steps``), ``sei restore`` of
the stack (16-bit stack out), and TV at the estimated level; PSNR in counts with the clean image's own range
(max - min) as the peak, and with 65535.

Training with the noise setting (``--only sigma photon``): the 11 training photographs of the ``sample`` dataset,
shorter side 256, are measured once (``sei degrade``'s path: Gaussian_R2 blur, seeded noise) and written as 16-bit
PNGs, clipped to [0, 1] as a camera does; every row trains SEI on that same folder (``data.kind="measurements"``)
with the laptop recipe (unet-small, lr 1e-3), the same seed and ``--steps`` steps, so rows differ only in the noise
setting. Each network is scored on the held-out photographs of ``benchmarks/laptop_quality.py`` (never trained
on), measured the same way (seed 0, clipped), with the paper's protocol (8-bit luma PSNR/SSIM).

- ``sigma``: Gaussian noise 5 and 15 (``--levels``); rows: the true level, ``auto``, ``learn`` and a wrong level
  (x0.5, x2); at the first level also ``learn`` started from the wrong levels (its ``train/sigma`` trajectory says
  where the learned level goes) and the true level with a second seed (``--repeat-seed``: its gap to seed 0 is the
  run-to-run noise the other gaps compare with).
- ``photon``: Poisson-Gaussian noise, peak 40 photons (gain 1/40) and read noise 2 grey levels; rows: SEI with the
  Poisson-Gaussian SURE (gain and read noise given), SEI with the Gaussian SURE at the
  equivalent sigma ``sqrt(gain * mean(y) + sigma^2)`` of the training measurements and at x0.5 and x2 of it (the
  best one is the comparison; choosing it on the held-out photographs favours the Gaussian SURE), the
  Poisson-Gaussian and equivalent-sigma rows again with the second seed, Wiener and TV (the noise level at
  mid-grey, see ``sei.physics.noise``).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from laptop_quality import HELD_OUT, RECIPES, SHORTER_SIDE, baseline_row, held_out_images, score  # benchmarks/
from recording import Table, record, recorded_data, table_of
from sei.data.sources import SAMPLE_SPLITS, sample_image
from sei.physics import make_physics
from sei.physics.noise_estimation import estimate_gaussian, estimate_poisson_gaussian
from sei.physics.spec import PhysicsSpec

TASKS = {"Gaussian_R2 deblurring": dict(task="deblurring", kernel="Gaussian_R2"),
         "x2 down-sampling": dict(task="sr", sr_factor=2)}


def relative_errors(estimates: list[float], truth: float) -> tuple[float, float]:
    errors = [abs(e / truth - 1.0) for e in estimates]
    return sum(errors) / len(errors), max(errors)


def gaussian_rows(images: list[torch.Tensor], sigmas: list[float], with_deepinv: bool) -> list[dict]:
    from deepinv.models import PatchCovarianceNoiseEstimator

    rows = []
    for label, words in TASKS.items():
        operator = make_physics(noise_level=0, **words)
        clean = [operator.A(x[None])[0] for x in images]
        for level in sigmas:
            sigma = level / 255.0
            generator = torch.Generator().manual_seed(int(level * 100))
            measured = [c + sigma * torch.randn(c.shape, generator=generator) for c in clean]
            started = time.perf_counter()
            ours = estimate_gaussian(measured)
            seconds = time.perf_counter() - started
            mean_error, worst_error = relative_errors(list(ours.per_image), sigma)
            row = {"task": label, "noise_level": level, "estimate": ours.noise_level,
                   "set_error": abs(ours.sigma / sigma - 1.0), "image_mean_error": mean_error,
                   "image_worst_error": worst_error, "seconds": seconds}
            if with_deepinv:
                theirs = [float(PatchCovarianceNoiseEstimator.estimate_noise(y[None])) for y in measured]
                row["deepinv_set_error"] = abs(float(torch.tensor(theirs).median()) / sigma - 1.0)
                row["deepinv_image_mean_error"], row["deepinv_image_worst_error"] = relative_errors(theirs, sigma)
            rows.append(row)
            print(format_row(row), flush=True)
    return rows


def poisson_gaussian_rows(images: list[torch.Tensor], cases: list[tuple[float, float]]) -> list[dict]:
    """``cases``: (peak photons, read-noise sigma in grey levels); the gain is 1 / peak."""
    operator = make_physics("deblurring", kernel="Gaussian_R2", noise_level=0)
    grey = [operator.A(x.mean(0, keepdim=True)[None])[0] for x in images]
    rows = []
    for peak, level in cases:
        gain, sigma = 1.0 / peak, level / 255.0
        generator = torch.Generator().manual_seed(int(peak))
        measured = [gain * torch.poisson(u.clamp_min(0) / gain, generator=generator)
                    + sigma * torch.randn(u.shape, generator=generator) for u in grey]
        estimate = estimate_poisson_gaussian(measured)
        rows.append({"peak_photons": peak, "gain": gain, "noise_level": level, "gain_estimate": estimate.gain,
                     "noise_level_estimate": estimate.noise_level, "gain_error": abs(estimate.gain / gain - 1.0),
                     "noise_level_error": abs(estimate.sigma / sigma - 1.0)})
        print(f"Poisson-Gaussian peak {peak:g} photons, read noise {level:g}: gain {estimate.gain:.4f} "
              f"(true {gain:.4f}), noise level {estimate.noise_level:.2f}", flush=True)
    return rows


MICRO_BACKGROUND, MICRO_PEAK, MICRO_NOISE = 300.0, 30000.0, 600.0  # counts of a 16-bit camera


def _counts(image: torch.Tensor) -> torch.Tensor:
    """A sample photograph's ``(1, H, W)`` luma as 16-bit counts (float)."""
    from sei.data.channels import luma

    return MICRO_BACKGROUND + MICRO_PEAK * luma(image)


def _measure_counts(clean: torch.Tensor, operator, generator: torch.Generator) -> np.ndarray:
    """Blur in network units (counts / 65535, the 16-bit map), Gaussian noise in counts, rounded to uint16."""
    blurred = operator.A((clean / 65535.0)[None])[0, 0].double() * 65535.0
    noisy = blurred + MICRO_NOISE * torch.randn(blurred.shape, generator=generator, dtype=torch.float64)
    return np.clip(np.round(noisy.numpy()), 0, 65535).astype(np.uint16)


def microscopy_rows(steps: int, workdir: Path) -> dict:
    """16-bit grayscale data end to end: write measurements, train SEI on them, restore a 16-bit stack, score."""
    import tifffile
    import yaml

    from sei.cli import main as sei
    from sei.metrics import psnr

    operator = make_physics("deblurring", kernel="Gaussian_R2", noise_level=0)
    generator = torch.Generator().manual_seed(0)
    train_dir, stack_path = workdir / "cells", workdir / "stack.tif"
    train_dir.mkdir(parents=True, exist_ok=True)
    for name in SAMPLE_SPLITS["train"]:
        tifffile.imwrite(train_dir / f"{name}.tif", _measure_counts(_counts(sample_image(name)), operator, generator))
    clean = []
    for name in SAMPLE_SPLITS["val"]:
        image = _counts(sample_image(name))
        top, left = (image.shape[-2] - 256) // 2, (image.shape[-1] - 256) // 2
        clean.append(image[:, top:top + 256, left:left + 256])
    measured = np.stack([_measure_counts(c, operator, generator) for c in clean])
    tifffile.imwrite(stack_path, measured, photometric="minisblack")
    run = workdir / "run"
    started = time.perf_counter()
    sei(["train", "--measurements", str(train_dir), "--kernel", "Gaussian_R2", "--noise-level", "auto", "--steps",
         str(steps), "--out-dir", str(run)])
    train_seconds = time.perf_counter() - started
    config = yaml.safe_load((run / "config.yaml").read_text())
    level = float(config["physics"]["noise_level"])
    sei(["restore", str(stack_path), str(workdir / "sei"), "--weights", str(run), "--no-ensemble", "--quiet"])
    sei(["restore", str(stack_path), str(workdir / "tv"), "--model-kind", "tv", "--kernel", "Gaussian_R2",
         "--noise-level", f"{level:.4g}", "--quiet"])
    reference = torch.stack(clean).double()
    peaks = [float(c.max() - c.min()) for c in clean]
    rows = []
    for label, stack in (("blurry input", measured), ("TV (no training)", tifffile.imread(workdir / "tv" / "stack.tif")),
                         ("SEI (measurements only)", tifffile.imread(workdir / "sei" / "stack.tif"))):
        estimate = torch.from_numpy(stack.astype(np.float64))[:, None]
        own = [float(psnr(estimate[i:i + 1], reference[i:i + 1], data_range=peaks[i])) for i in range(len(clean))]
        full = psnr(estimate, reference, data_range=65535.0).tolist()
        rows.append({"method": label, "dtype": str(stack.dtype), "shape": list(stack.shape),
                     "psnr_clean_range": sum(own) / len(own), "psnr_65535": sum(full) / len(full),
                     "mean_counts": float(stack.mean())})
        print(f"| {label} | {stack.dtype} {tuple(stack.shape)} | {rows[-1]['psnr_clean_range']:.2f} | "
              f"{rows[-1]['psnr_65535']:.2f} | {rows[-1]['mean_counts']:.0f} |", flush=True)
    return {"rows": rows, "steps": steps, "train_seconds": train_seconds, "noise_counts": MICRO_NOISE,
            "true_noise_level": MICRO_NOISE * 255 / 65535, "estimated_noise_level": level,
            "intensity": config["data"].get("intensity"), "clean_mean_counts": float(reference.mean())}


# ---- training with the noise setting -----------------------------------------------------------------------
KERNEL = "Gaussian_R2"
PHOTON_PEAK, READ_NOISE = 40.0, 2.0  # photons at intensity 1 (gain 1 / 40), read noise in grey levels


def write_clean_photographs(folder: Path) -> Path:
    """The ``sample`` dataset's training photographs, shorter side 256, as 16-bit PNGs: ``sei degrade``'s input.

    Resized here and clipped to [0, 1] by the writer: ``degrade_files(resize=...)`` resizes after reading, and the
    resampling's overshoot below 0 makes it refuse a Poisson model on these photographs."""
    from sei.data.preprocess import resize_shorter_side
    from sei.io.images import write_image

    folder.mkdir(parents=True, exist_ok=True)
    for name in SAMPLE_SPLITS["train"]:
        write_image(folder / f"{name}.png", resize_shorter_side(sample_image(name), SHORTER_SIDE), bits=16)
    return folder


def write_measurements(spec: PhysicsSpec, clean: Path, folder: Path) -> Path:
    """``clean``'s photographs measured as ``spec`` says (noise seed 0), as 16-bit PNGs (clipped to [0, 1])."""
    from sei.data.degradation import degrade_files
    from sei.io.outputs import output_paths

    report = degrade_files(spec, output_paths(clean, folder, "png"), seed=0, bits=16, progress=False)
    if report.failed:
        raise RuntimeError(f"could not measure {report.failed}")
    return folder


def held_out_measurements(spec: PhysicsSpec):
    """The held-out photographs measured as ``spec`` says (seed 0) and clipped to [0, 1] as the training files are."""
    from sei.data.pairs import MeasurementSet

    measurements = MeasurementSet(held_out_images(list(HELD_OUT)), spec.build(), noise_seed=0)
    measurements.measurements = [m.clamp(0.0, 1.0) for m in measurements.measurements]
    return measurements


def sigma_trajectory(run: Path, every: int = 50) -> list[tuple[int, float]]:
    """``(step, train/sigma)`` from a run's CSV log, about every ``every`` steps, and the last logged value."""
    import csv

    with open(run / "logs" / "csv" / "metrics.csv", newline="") as file:
        logged = [(int(row["step"]), float(row["train/sigma"])) for row in csv.DictReader(file)
                  if row.get("train/sigma")]
    picked = [point for point in logged if point[0] % every < 10]
    return picked + ([logged[-1]] if logged and logged[-1] not in picked else [])


def train_and_score(label: str, physics: dict, folder: Path, run: Path, steps: int, seed: int, measurements) -> dict:
    """SEI trained on the measurement folder with the laptop recipe and the noise setting ``physics``; its score on
    the held-out measurements, the noise parameters it used, and where a learned level went."""
    from sei.config.schema import from_flat
    from sei.models.weights import load_backbone, read_physics
    from sei.inference.reconstructors import NetworkReconstructor
    from sei.training import train

    overrides = {"data.dataset": str(folder), "data.kind": "measurements", "physics.kernel": KERNEL,
                 **{f"physics.{key}": value for key, value in physics.items()}, **RECIPES["unet"],
                 "loss.method": "sei", "train.steps": steps, "train.seed": seed, "train.device": "cpu",
                 "train.progress": False, "train.checkpoint_every": 0, "out_dir": str(run)}
    started = time.perf_counter()
    result = train(from_flat(overrides))
    seconds = time.perf_counter() - started
    network = load_backbone(result.weights).eval()
    with torch.inference_mode():
        row = score(NetworkReconstructor(network), measurements)
    used, recorded = result.config.physics, read_physics(result.weights)
    row.update(label=label, setting={k: v for k, v in physics.items()}, noise_level_used=used.noise_level,
               gain_used=used.gain, noise_source=used.noise_source, seed=seed, steps=steps, train_s=seconds)
    if used.noise_source == "learned":
        row.update(learned_noise_level=recorded.noise_level, sigma_trajectory=sigma_trajectory(run))
    return row


def sigma_rows(levels: list[float], steps: int, repeat_seed: int | None, workdir: Path, clean: Path) -> dict:
    """Gaussian_R2 at each noise level: SEI with the true, estimated, learned and wrong levels (see the docstring)."""
    cases = {}
    for level in levels:
        spec = PhysicsSpec(task="deblurring", kernel=KERNEL, noise_level=level)
        folder = write_measurements(spec, clean, workdir / f"gaussian{level:g}")
        measurements = held_out_measurements(spec)
        settings = [("true σ", {"noise_level": level}, 0), ("auto", {"noise_level": "auto"}, 0),
                    ("learn", {"noise_level": "learn"}, 0), ("σ × 0.5", {"noise_level": level / 2}, 0),
                    ("σ × 2", {"noise_level": level * 2}, 0)]
        if level == levels[0]:  # the budget allows these at one level
            settings += [("learn from σ × 0.5", {"noise_level": level / 2, "noise_source": "learned"}, 0),
                         ("learn from σ × 2", {"noise_level": level * 2, "noise_source": "learned"}, 0)]
            if repeat_seed is not None:
                settings.append((f"true σ (seed {repeat_seed})", {"noise_level": level}, repeat_seed))
        rows = []
        for index, (label, physics, seed) in enumerate(settings):
            rows.append(train_and_score(label, physics, folder, workdir / f"gaussian{level:g}_{index}", steps, seed,
                                        measurements))
            print(format_training_row(rows[-1], rows[0]["psnr"]), flush=True)
        rows.append({**baseline_row("identity", spec.build(), measurements), "label": "blurry input"})
        print(format_training_row(rows[-1], rows[0]["psnr"]), flush=True)
        cases[f"{level:g}"] = {"noise_level": level, "rows": rows}
    return cases


def photon_rows(steps: int, repeat_seed: int | None, workdir: Path, clean: Path) -> dict:
    """Photon-limited Gaussian_R2: SEI with the Poisson-Gaussian SURE against the Gaussian SURE and Wiener/TV."""
    from sei.io.images import read_image

    gain = 1.0 / PHOTON_PEAK
    spec = PhysicsSpec(task="deblurring", kernel=KERNEL, noise="poisson-gaussian", gain=gain, noise_level=READ_NOISE)
    folder = write_measurements(spec, clean, workdir / "photon")
    measurements = held_out_measurements(spec)
    mean = float(torch.stack([read_image(path).mean() for path in sorted(folder.glob("*.png"))]).mean())
    equivalent = 255.0 * (gain * mean + (READ_NOISE / 255.0) ** 2) ** 0.5
    pg = {"noise": "poisson-gaussian"}
    settings = [("Poisson-Gaussian SURE (gain, read noise given)", {**pg, "gain": gain, "noise_level": READ_NOISE})]
    levels = {factor: round(factor * equivalent, 1) for factor in (0.5, 1.0, 2.0)}
    settings += [(f"Gaussian SURE, σ = {factor:g} × equivalent ({level:g})", {"noise_level": level})
                 for factor, level in levels.items()]
    settings = [(label, physics, 0) for label, physics in settings]
    if repeat_seed is not None:  # Poisson-Gaussian and the equivalent sigma again: run-to-run noise of their gap
        settings += [(f"{label} (seed {repeat_seed})", physics, repeat_seed) for label, physics, _ in settings[:3:2]]
    rows = []
    for index, (label, physics, seed) in enumerate(settings):
        rows.append(train_and_score(label, physics, folder, workdir / f"photon_{index}", steps, seed, measurements))
        print(format_training_row(rows[-1], rows[0]["psnr"]), flush=True)
    physics = spec.build()
    for kind in ("wiener", "tv"):
        row = baseline_row(kind, physics, measurements)
        if isinstance(row, dict):
            rows.append({**row, "label": f"{kind} (noise level at mid-grey)"})
            print(format_training_row(rows[-1], rows[0]["psnr"]), flush=True)
    return {"peak_photons": PHOTON_PEAK, "gain": gain, "noise_level": READ_NOISE, "mean_measurement": mean,
            "equivalent_noise_level": equivalent, "rows": rows}


def format_training_row(row: dict, reference: float) -> str:
    used = row.get("noise_level_used")
    text = f"| {row['label']} | " + (f"{used:.3g}" if isinstance(used, float) else "-")
    if row.get("gain_used"):
        text += f", gain {row['gain_used']:.4g}"
    learned = f" | {row['learned_noise_level']:.3g}" if "learned_noise_level" in row else " | -"
    return (text + learned + f" | {row['psnr']:.2f} ± {row['psnr_std']:.2f} | {row['ssim']:.4f} | "
            f"{row['psnr'] - reference:+.2f} |" + (f" {row['train_s']:.0f} s |" if "train_s" in row else " - |"))


def format_row(row: dict) -> str:
    text = (f"| {row['task']} | {row['noise_level']:g} | {row['estimate']:.2f} | {100 * row['set_error']:.1f} % | "
            f"{100 * row['image_mean_error']:.1f} % | {100 * row['image_worst_error']:.1f} % |")
    if "deepinv_set_error" in row:
        text += (f" {100 * row['deepinv_set_error']:.1f} % | {100 * row['deepinv_image_mean_error']:.1f} % | "
                 f"{100 * row['deepinv_image_worst_error']:.1f} % |")
    return text


PARTS = ("estimator", "microscopy", "sigma", "photon")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sigmas", type=float, nargs="+", default=[1, 2, 5, 10, 20])
    parser.add_argument("--no-deepinv", action="store_true", help="skip deepinv's estimator")
    parser.add_argument("--out", default="benchmarks/results/real_data.json")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS), help="the parts to run (default: all)")
    parser.add_argument("--microscopy-steps", type=int, default=300,
                        help="training steps of the 16-bit case (default 300: a short budget; the laptop recipe defaults to 2400)")
    parser.add_argument("--workdir", default="runs/real_data_16bit", help="where the 16-bit case writes its files")
    parser.add_argument("--steps", type=int, default=250,
                        help="training steps of each sigma and photon row (default 250: 19 rows in about 45 minutes "
                             "on one thread of a shared 2-core machine)")
    parser.add_argument("--levels", type=float, nargs="+", default=[5, 15], help="noise levels of the sigma part")
    parser.add_argument("--repeat-seed", type=int, default=1,
                        help="a second seed for the true-level row and the two main photon rows (run-to-run noise); "
                             "-1: none")
    parser.add_argument("--training-workdir", default="runs/real_data_training",
                        help="where the sigma and photon parts write measurements and runs")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: the machine is shared; OpenMP barriers stall otherwise)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    results = recorded_data(out.stem)  # a part run alone keeps the others' numbers
    if "estimator" in args.only:
        images = [sample_image(name) for split in ("train", "val") for name in SAMPLE_SPLITS[split]]
        print("| task | noise level | set estimate | set error | per-image mean error | per-image worst |"
              + ("" if args.no_deepinv else " deepinv set | deepinv mean | deepinv worst |"))
        results["estimator_accuracy"] = gaussian_rows(images, args.sigmas, not args.no_deepinv)
        results["poisson_gaussian_estimator"] = poisson_gaussian_rows(images, [(30.0, 2.0), (50.0, 1.0), (200.0, 2.0)])
        results["images"] = len(images)
    if "microscopy" in args.only:
        workdir = Path(args.workdir)
        if workdir.exists():
            shutil.rmtree(workdir)  # a fresh run folder: sei train never overwrites one
        print("| 16-bit Gaussian_R2, noise 600 counts | output | PSNR (dB, clean range) | PSNR (dB, 65535) | mean counts |")
        results["microscopy_16bit"] = microscopy_rows(args.microscopy_steps, workdir)
    if "sigma" in args.only or "photon" in args.only:
        workdir = Path(args.training_workdir)
        if workdir.exists():
            shutil.rmtree(workdir)
        clean = write_clean_photographs(workdir / "clean")
        budget = {"steps": args.steps, "threads": args.threads, "recipe": RECIPES["unet"], "seed": 0,
                  "training_images": list(SAMPLE_SPLITS["train"]), "held_out": list(HELD_OUT)}
        header = "| row | noise level used | learned level | PSNR (dB) | SSIM | vs first row | train |"
        for part in ("sigma", "photon"):
            if part not in args.only:
                continue
            print(f"\n{part}: {args.steps} steps per row, {args.threads} thread(s)\n{header}", flush=True)
            started = time.perf_counter()
            repeat_seed = None if args.repeat_seed < 0 else args.repeat_seed
            if part == "sigma":
                measured = {"cases": sigma_rows(args.levels, args.steps, repeat_seed, workdir, clean)}
            else:
                measured = photon_rows(args.steps, repeat_seed, workdir, clean)
            results[f"training_{part}"] = {**budget, "wall_s": time.perf_counter() - started, **measured}
            record(out.stem, tables_of(results), results, echo=False)
    record(out.stem, tables_of(results), results)


TABLE_TITLES = {
    "estimator_accuracy": "Gaussian noise level estimated from the 16 sample photographs (relative errors)",
    "poisson_gaussian_estimator": "Poisson-Gaussian gain and read noise estimated from the same photographs",
    "microscopy_16bit": "16-bit microscopy-like case (Gaussian_R2, read noise 600 counts)",
    "training_sigma": "SEI trained with each noise setting (scores on the held-out photographs)",
    "training_photon": "Photon-limited measurements: Poisson-Gaussian SURE against Gaussian SURE and restorers",
}


def tables_of(results: dict) -> list[Table]:
    """One table per part that ran, from its records."""
    tables = []
    for key, title in TABLE_TITLES.items():
        value = results.get(key)
        rows = value.get("cases", value.get("rows")) if isinstance(value, dict) else value
        if isinstance(rows, list) and rows and all(isinstance(row, dict) for row in rows):
            tables.append(table_of(title, rows))
    return tables

if __name__ == "__main__":
    main()
