"""Real-data benchmark: how well the noise level is estimated from measurements alone.

    python benchmarks/real_data.py [--sigmas 1 2 5 10 20] [--out benchmarks/results/real_data.json]

For each task (Gaussian_R2 deblurring, x2 bicubic down-sampling) and each sigma (8-bit grey levels), every sample
photograph (14: train and validation) is measured with seeded Gaussian noise (float measurements, no 8-bit
rounding), and the noise level is estimated by ``sei``'s estimator (``sei.physics.noise_estimation``) and by
deepinv's ``PatchCovarianceNoiseEstimator`` (the same patch-covariance method without the weak-texture selection).
Reported: the relative error of the set's estimate (the median over images, what ``--noise-level auto`` uses) and
the mean and worst relative error of the per-image estimates. Also the Poisson-Gaussian estimator (gain and sigma)
on photon-limited deblurring measurements. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

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
    args = parser.parse_args()
    images = [sample_image(name) for split in ("train", "val") for name in SAMPLE_SPLITS[split]]
    print("| task | noise level | set estimate | set error | per-image mean error | per-image worst |"
          + ("" if args.no_deepinv else " deepinv set | deepinv mean | deepinv worst |"))
    rows = gaussian_rows(images, args.sigmas, not args.no_deepinv)
    pg_rows = poisson_gaussian_rows(images, [(30.0, 2.0), (50.0, 1.0), (200.0, 2.0)])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"estimator_accuracy": rows, "poisson_gaussian_estimator": pg_rows,
                               "images": len(images), "machine": platform.platform(),
                               "torch_threads": torch.get_num_threads()}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
