"""Benchmark the reconstruction baselines: PSNR/SSIM and seconds per 256x256 image, in evaluation and in
``sei restore``.

    python benchmarks/baselines.py [--kinds identity,bicubic,wiener,tv,bm3d,pnp,dip,network] [--weights W]
                                   [--dip-iterations N] [--dip-channels C] [--device cpu]

On the sample validation photographs (chelsea, coffee, camera), centre-cropped to 256x256, for Gaussian_R2
deblurring and x2 super-resolution at noise level 5. Each kind is timed twice, side by side: the reconstructor
called on the measurements (``sei test``'s path), and ``sei restore`` run on the measurements written as PNG
files, as users run it (command line parsing, operator, file reading and writing included), with the PSNR of
the files it writes. ``network`` is ``--weights`` (a weights file, run folder or published name), else an
untrained unet-small (its timing is a trained one's; its PSNR means nothing). Prints a table and records it in
benchmarks/results/baselines.json (or the name of --out). A kind that cannot run here (missing weights or
package) is recorded with the reason.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

import torch
from recording import Table, record

from sei.cli import main as sei_main
from sei.data.pairs import MeasurementSet
from sei.data.sources import load_image_set
from sei.core.errors import SEIError
from sei.inference.evaluation import evaluate
from sei.io.images import read_image, write_image
from sei.metrics import psnr
from sei.physics import make_physics
from sei.physics.base import physics_upscale
from sei.config.sources import locate_network
from sei.inference.reconstructors import open_reconstructor

TASKS = {"Gaussian_R2": dict(task="deblurring", kernel="Gaussian_R2"), "SR x2": dict(task="sr", sr_factor=2)}
# The same operators as sei restore's options, for the restore timing.
RESTORE_OPTIONS = {"Gaussian_R2": ["--kernel", "Gaussian_R2"], "SR x2": ["--task", "sr", "--sr-factor", "2"]}


def centre_crops(size: int = 256):
    images = load_image_set("sample", "val")
    for index, image in enumerate(images.images):
        top, left = (image.shape[1] - size) // 2, (image.shape[2] - size) // 2
        images.images[index] = image[:, top:top + size, left:left + size].contiguous()
    return images


def untrained_network(folder: Path, upscale: int) -> Path:
    """An untrained unet-small weights file: the network kind's timing without a trained run."""
    from sei.models.registry import build_backbone
    from sei.models.weights import save_weights

    torch.manual_seed(0)
    return save_weights(build_backbone("unet-small", upscale=upscale), folder / f"unet_small_x{upscale}.pt")


def time_restore(kind: str, task_name: str, measurements: MeasurementSet, folder: Path, options: list[str]) -> dict:
    """Seconds per image of ``sei restore`` on the measurements written as PNG files, and the PSNR of its output.

    :raises SEIError: when the command fails (a kind that cannot run here).
    """
    source, target = folder / "measurements", folder / f"restored_{kind}"
    if not source.is_dir():
        for name, measurement in zip(measurements.names, measurements.measurements):
            write_image(source / f"{name}.png", measurement)
    command = ["restore", str(source), str(target), "--model-kind", kind, *RESTORE_OPTIONS[task_name],
               "--noise-level", "5", "--device", "cpu", "--quiet", *options]
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # its operator and summary lines, not the table's
        status = sei_main(command)
    seconds = time.perf_counter() - started
    if status != 0:
        raise SEIError(f"sei {' '.join(command)} exited with status {status}")
    scores = [psnr(read_image(target / f"{name}.png")[None], clean[None]).item()
              for name, clean in zip(measurements.names, measurements.targets)]
    return {"restore_seconds_per_image": seconds / len(measurements), "restore_psnr": sum(scores) / len(scores)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", default="identity,bicubic,wiener,tv,bm3d,pnp,dip,network")
    parser.add_argument("--weights", help="the network kind's weights (default: an untrained unet-small, timing only)")
    parser.add_argument("--dip-iterations", type=int, help="DIP iterations (default: the reference's per task)")
    parser.add_argument("--dip-channels", type=int, default=256, help="DIP decoder width (default 256)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="benchmarks/results/baselines.json")
    args = parser.parse_args()
    images = centre_crops()
    device = torch.device(args.device)
    results = []
    workdir = Path(tempfile.mkdtemp(prefix="sei_baselines_"))
    for task_name, settings in TASKS.items():
        physics = make_physics(noise_level=5, **settings)
        measurements = MeasurementSet(images, physics)
        physics.to(device)
        folder = workdir / task_name.replace(" ", "_")
        for kind in args.kinds.split(","):
            options = {"dip_iterations": args.dip_iterations, "dip_channels": args.dip_channels, "progress": False}
            restore_options = [f"--{key.replace('_', '-')}={value}" for key, value in options.items()
                               if key.startswith("dip") and value is not None]
            row = {"task": task_name, "kind": kind}
            try:
                source = None
                if kind == "network":
                    weights = args.weights or untrained_network(workdir, physics_upscale(physics))
                    source = locate_network(weights)
                    row["weights"] = str(args.weights or "untrained unet-small (timing only)")
                    restore_options = ["--weights", str(weights)]
                reconstructor = open_reconstructor(kind, physics, source, options).to(device)
                started = time.perf_counter()
                summary = evaluate(reconstructor, measurements, device, progress=False).summary
                row.update(psnr=summary["psnr"], psnr_std=summary["psnr_std"], ssim=summary["ssim"],
                              seconds_per_image=(time.perf_counter() - started) / len(measurements))
                if kind == "dip":
                    row["dip"] = {"iterations": reconstructor.iterations, "channels": reconstructor.channels}
                row.update(time_restore(kind, task_name, measurements, folder, restore_options))
                row["restore_over_benchmark"] = row["restore_seconds_per_image"] / row["seconds_per_image"]
            except SEIError as error:
                row["unavailable"] = str(error)
            results.append(row)
            print(f"{task_name} {kind}: " + (f"{row['psnr']:.2f} dB" if "psnr" in row else row["unavailable"][:90]),
                  flush=True)
    rows = []
    for row in results:
        if "restore_psnr" in row:
            rows.append([row["task"], row["kind"], f"{row['psnr']:.2f} ± {row['psnr_std']:.2f}", row["ssim"],
                         row["seconds_per_image"], row["restore_seconds_per_image"], row["restore_psnr"]])
        else:
            reason = row["unavailable"].split("; ")[0].split(". ")[0]  # the first clause; the file keeps the rest
            rows.append([row["task"], row["kind"], f"not measured: {reason}", None, None, None, None])
    table = Table(f"Sample validation photographs ({', '.join(images.names)}), centre 256x256, noise level 5",
                  ["task", "kind", "PSNR (dB)", "SSIM", "s/image", "sei restore s/image", "sei restore PSNR"], rows)
    record(Path(args.out).stem, [table], {"results": results, "images": images.names, "crop": 256,
                                          "noise_level": 5}, device=str(device))


if __name__ == "__main__":
    main()
