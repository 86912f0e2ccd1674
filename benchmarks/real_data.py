"""Real-data benchmark: how well the noise level is estimated from measurements alone, and 16-bit data end to end.

    python benchmarks/real_data.py [--sigmas 1 2 5 10 20] [--out benchmarks/results/real_data.json]
    python benchmarks/real_data.py --only microscopy [--microscopy-steps 300]

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
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from sei.data.sources import SAMPLE_SPLITS, sample_image
from sei.physics import make_physics
from sei.physics.noise_estimation import estimate_gaussian, estimate_poisson_gaussian

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
    sei(["restore", str(stack_path), str(workdir / "sei"), "--weights", str(run), "--quiet"])
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


def format_row(row: dict) -> str:
    text = (f"| {row['task']} | {row['noise_level']:g} | {row['estimate']:.2f} | {100 * row['set_error']:.1f} % | "
            f"{100 * row['image_mean_error']:.1f} % | {100 * row['image_worst_error']:.1f} % |")
    if "deepinv_set_error" in row:
        text += (f" {100 * row['deepinv_set_error']:.1f} % | {100 * row['deepinv_image_mean_error']:.1f} % | "
                 f"{100 * row['deepinv_image_worst_error']:.1f} % |")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sigmas", type=float, nargs="+", default=[1, 2, 5, 10, 20])
    parser.add_argument("--no-deepinv", action="store_true", help="skip deepinv's estimator")
    parser.add_argument("--out", default="benchmarks/results/real_data.json")
    parser.add_argument("--only", choices=("estimator", "microscopy"), help="run one part (default: both)")
    parser.add_argument("--microscopy-steps", type=int, default=300,
                        help="training steps of the 16-bit case (default 300: a short budget; the laptop recipe defaults to 2400)")
    parser.add_argument("--workdir", default="runs/real_data_16bit", help="where the 16-bit case writes its files")
    args = parser.parse_args()
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {}  # a part run alone keeps the other's numbers
    if args.only != "microscopy":
        images = [sample_image(name) for split in ("train", "val") for name in SAMPLE_SPLITS[split]]
        print("| task | noise level | set estimate | set error | per-image mean error | per-image worst |"
              + ("" if args.no_deepinv else " deepinv set | deepinv mean | deepinv worst |"))
        results["estimator_accuracy"] = gaussian_rows(images, args.sigmas, not args.no_deepinv)
        results["poisson_gaussian_estimator"] = poisson_gaussian_rows(images, [(30.0, 2.0), (50.0, 1.0), (200.0, 2.0)])
        results["images"] = len(images)
    if args.only != "estimator":
        workdir = Path(args.workdir)
        if workdir.exists():
            shutil.rmtree(workdir)  # a fresh run folder: sei train never overwrites one
        print("| 16-bit Gaussian_R2, noise 600 counts | output | PSNR (dB, clean range) | PSNR (dB, 65535) | mean counts |")
        results["microscopy_16bit"] = microscopy_rows(args.microscopy_steps, workdir)
    results.update(machine=platform.platform(), torch_threads=torch.get_num_threads())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
