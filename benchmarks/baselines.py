"""Benchmark the reconstruction baselines: PSNR/SSIM and seconds per 256x256 image.

    python benchmarks/baselines.py [--kinds identity,bicubic,wiener,tv,bm3d,pnp,dip] [--dip-iterations N]
                                   [--dip-channels C] [--device cpu]

On the sample validation photographs (chelsea, coffee, camera), centre-cropped to 256x256, for Gaussian_R2
deblurring and x2 super-resolution at noise level 5. Prints a table and writes benchmarks/results/baselines.json.
A kind that cannot run here (missing weights or package) is recorded with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from sei.baselines import build_baseline
from sei.data.pairs import MeasurementSet
from sei.data.sources import load_image_set
from sei.errors import SEIError
from sei.evaluation import evaluate
from sei.physics import make_physics

TASKS = {"Gaussian_R2": dict(task="deblurring", kernel="Gaussian_R2"), "SR x2": dict(task="sr", sr_factor=2)}


def centre_crops(size: int = 256):
    images = load_image_set("sample", "val")
    for index, image in enumerate(images.images):
        top, left = (image.shape[1] - size) // 2, (image.shape[2] - size) // 2
        images.images[index] = image[:, top:top + size, left:left + size].contiguous()
    return images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", default="identity,bicubic,wiener,tv,bm3d,pnp,dip")
    parser.add_argument("--dip-iterations", type=int, help="DIP iterations (default: the reference's per task)")
    parser.add_argument("--dip-channels", type=int, default=256, help="DIP decoder width (default 256)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="benchmarks/results/baselines.json")
    args = parser.parse_args()
    images = centre_crops()
    device = torch.device(args.device)
    results = []
    for task_name, settings in TASKS.items():
        physics = make_physics(noise_level=5, **settings)
        measurements = MeasurementSet(images, physics)
        physics.to(device)
        for kind in args.kinds.split(","):
            options = {"dip_iterations": args.dip_iterations, "dip_channels": args.dip_channels, "progress": False}
            record = {"task": task_name, "kind": kind}
            try:
                reconstructor = build_baseline(kind, physics, options).to(device)
                started = time.perf_counter()
                summary = evaluate(reconstructor, measurements, device, progress=False).summary
                record.update(psnr=summary["psnr"], psnr_std=summary["psnr_std"], ssim=summary["ssim"],
                              seconds_per_image=(time.perf_counter() - started) / len(measurements))
                if kind == "dip":
                    record["dip"] = {"iterations": reconstructor.iterations, "channels": reconstructor.channels}
            except SEIError as error:
                record["unavailable"] = str(error)
            results.append(record)
            shown = (f"{record['psnr']:6.2f} ± {record['psnr_std']:.2f}  {record['ssim']:.4f}  "
                     f"{record['seconds_per_image']:8.2f} s" if "psnr" in record else f"n/a: {record['unavailable'][:70]}")
            print(f"{task_name:<12}{kind:<10}{shown}", flush=True)
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"results": results, "images": images.names, "crop": 256, "noise_level": 5,
                                "device": str(device), "cpu_count": os.cpu_count(), "platform": platform.platform(),
                                "torch": torch.__version__}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
