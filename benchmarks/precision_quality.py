"""Does bf16 mixed precision keep training quality? fp32 against bf16-mixed, same runs otherwise.

    python benchmarks/precision_quality.py [--device cpu|cuda] [--backbones unet-small:1000,swinir:300]
                                          [--methods sei,supervised] [--precisions 32-true,bf16-mixed]
                                          [--images chelsea,coffee,...] [--threads 2]

Each (backbone, method, precision) trains from the same seed on the embedded sample photographs (Gaussian_R2,
noise level 5, the laptop recipe's batch, crop and learning rate) for the given steps, then is scored on the
held-out photographs of ``benchmarks/laptop_quality.py`` with the paper's protocol. bf16 runs keep the SURE
divergence's finite difference and the loss reductions in float32 (the network's output is compared in float32
by the losses). Prints a table with each bf16 run's PSNR gap to fp32 and writes
benchmarks/results/precision_quality.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from laptop_quality import HELD_OUT, held_out_images  # benchmarks/ is on the path when run as a script
from recording import Table, record
KERNEL, NOISE_LEVEL = "Gaussian_R2", 5.0


def train_and_score(backbone: str, steps: int, method: str, precision: str, device: str, measurements,
                    workdir: Path) -> dict:
    from sei.config.schema import from_flat
    from sei.inference.evaluation import evaluate
    from sei.models import load_backbone
    from sei.inference.reconstructors import NetworkReconstructor
    from sei.training import train

    config = from_flat({"data.dataset": "sample", "physics.kernel": KERNEL, "physics.noise_level": NOISE_LEVEL,
                        "model.backbone": backbone, "loss.method": method, "train.steps": steps,
                        "train.precision": precision, "train.device": device, "train.progress": False,
                        "out_dir": str(workdir / f"{backbone}-{method}-{precision}")})
    started = time.perf_counter()
    result = train(config)
    seconds = time.perf_counter() - started
    network = load_backbone(result.weights).to(device).eval()
    with torch.inference_mode():
        summary = evaluate(NetworkReconstructor(network), measurements, device, progress=False).summary
    return {"backbone": backbone, "steps": steps, "method": method, "precision": precision, "psnr": summary["psnr"],
            "psnr_std": summary["psnr_std"], "ssim": summary["ssim"], "train_s": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backbones", default="unet-small:1000", help="backbone:steps pairs")
    parser.add_argument("--methods", default="sei,supervised")
    parser.add_argument("--precisions", default="32-true,bf16-mixed")
    parser.add_argument("--images", default=",".join(HELD_OUT))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from sei.data.pairs import MeasurementSet
    from sei.physics import make_physics

    measurements = MeasurementSet(held_out_images(args.images.split(",")),
                                  make_physics("deblurring", kernel=KERNEL, noise_level=NOISE_LEVEL), 0)
    rows = []

    def save(echo: bool) -> None:
        table = Table(f"{KERNEL}, noise {NOISE_LEVEL:g}, trained on the sample photographs, scored on "
                      f"{', '.join(args.images.split(','))}",
                      ["backbone", "steps", "method", "precision", "PSNR", "SSIM", "vs fp32 (dB)", "training s"],
                      [[r["backbone"], r["steps"], r["method"], r["precision"], r["psnr"], r["ssim"],
                        r["gap_to_fp32_db"], r["train_s"]] for r in rows])
        record("precision_quality", [table], {"rows": rows, "images": args.images.split(","), "kernel": KERNEL,
                                              "noise_level": NOISE_LEVEL}, device=args.device, echo=echo)
    with tempfile.TemporaryDirectory() as workdir:
        for pair in args.backbones.split(","):
            backbone, steps = pair.split(":")
            for method in args.methods.split(","):
                fp32 = None
                for precision in args.precisions.split(","):
                    row = train_and_score(backbone, int(steps), method, precision, args.device, measurements,
                                          Path(workdir))
                    fp32 = row["psnr"] if precision == "32-true" else fp32
                    row["gap_to_fp32_db"] = row["psnr"] - fp32 if fp32 is not None else None
                    rows.append(row)
                    print(f"{backbone} {steps} {method} {precision}: {row['psnr']:.2f} dB", flush=True)
                    save(echo=False)  # after every row: a stopped run keeps them
    save(echo=True)


if __name__ == "__main__":
    main()
