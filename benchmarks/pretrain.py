"""Train and pack the networks that ship with sei (``--weights pretrained:NAME``; :mod:`sei.models.pretrained`).

    python benchmarks/pretrain.py train NAME          # runs the recorded `sei train` command into runs/pretrain-NAME
    python benchmarks/pretrain.py pack NAME [RUN]     # bf16 copy into the package, its SHA-256 and manifest entry

``train`` runs :data:`RECIPES` ``[NAME]``'s command: SEI from measurements only (the clean photographs are only
ever measured, never a target), on the ``photos`` dataset, for far longer than a laptop run. ``pack`` takes the run's
weights (the EMA average the run saved), stores every floating tensor in bfloat16 with the architecture and
physics records, measures ``sei test --weights FILE --dataset sample`` (the score a test re-measures), and writes
the network's entry in ``manifest.json``: file, SHA-256, operator, both commands, steps and hours, data, licences
and the score.
"""

from __future__ import annotations

import argparse
import json
import shlex
import tempfile
from pathlib import Path

import torch
import yaml
from commands import sei

from sei.core.files import atomic_torch_save, atomic_write_text
from sei.io.download import file_digest
from sei.models.pretrained import MANIFEST

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "sei" / "models" / "pretrained"
PHOTOS_DATA = ("the photos dataset: the 13 training photographs of the sample set (scikit-image and scikit-learn "
               "sample images) and 25 photographs of Debian's lomiri-wallpapers-16.04 and mate-backgrounds packages, "
               "shorter side 256; measurements simulated with noise 5, which the network restores")
PHOTOS_LICENCES = ("per photograph in sei.data.sources.SAMPLE_SPLITS / SCIKIT_LEARN_PHOTOS and "
                   "sei.data.photos.PHOTO_PACKAGES: CC0, public domain, CC BY 2.0, CC BY 4.0, CC BY-SA 4.0, GPL-2+")
RECIPES = {
    "photos-gaussian-r2": {
        "description": "Gaussian_R2 deblurring of photographs, noise 5 (unet-small, RGB)",
        "flags": ["--dataset", "photos", "--download", "--task", "deblurring", "--kernel", "Gaussian_R2",
                  "--noise-level", "5", "--model", "unet-small", "--ema", "0.999", "--time", "50m"],
    },
    "photos-box-r3": {
        "description": "Box_R3 deblurring of photographs, noise 5 (unet-small, RGB)",
        "flags": ["--dataset", "photos", "--download", "--task", "deblurring", "--kernel", "Box_R3",
                  "--noise-level", "5", "--model", "unet-small", "--ema", "0.999", "--time", "40m"],
    },
    "photos-sr-x2": {
        "description": "x2 super-resolution of photographs (bicubic), noise 5 (unet-small, RGB)",
        "flags": ["--dataset", "photos", "--download", "--task", "sr", "--sr-factor", "2",
                  "--noise-level", "5", "--model", "unet-small", "--ema", "0.999", "--time", "40m"],
    },
}


def run_folder(name: str) -> Path:
    return Path("runs") / f"pretrain-{name}"


def train_command(name: str) -> list[str]:
    return ["sei", "train", *RECIPES[name]["flags"], "--out-dir", str(run_folder(name)), "--name", f"pretrain-{name}"]


def pack(name: str, run: Path) -> dict:
    """Write ``NAME.pt`` into the package and return its manifest entry."""
    payload = torch.load(run / "weights.pt", map_location="cpu", weights_only=True)
    payload["params"] = {key: value.to(torch.bfloat16) if value.is_floating_point() else value
                         for key, value in payload["params"].items()}
    target = PACKAGE / f"{name}.pt"
    atomic_torch_save(payload, target)
    config = yaml.safe_load((run / "config.yaml").read_text())
    summary = json.loads((run / "train_summary.json").read_text())
    with tempfile.TemporaryDirectory() as scratch:
        sei("test", "--weights", target, "--dataset", "sample", "--out-dir", scratch, "--quiet", "--no-lpips")
        result = json.loads((Path(scratch) / "summary.json").read_text())
    physics = config["physics"]
    return {
        "name": name, "file": target.name, "sha256": file_digest(target), "task": physics["task"],
        "kernel": physics["kernel"], "sr_factor": physics["sr_factor"], "noise_level": float(physics["noise_level"]),
        "backbone": config["model"]["backbone"], "description": RECIPES[name]["description"],
        "train_command": shlex.join(train_command(name)),
        "pack_command": shlex.join(["python", "benchmarks/pretrain.py", "pack", name, str(run)]),
        "steps": int(summary["steps"]), "train_hours": round(float(summary["seconds"]) / 3600, 2),
        "data": PHOTOS_DATA, "licences": PHOTOS_LICENCES,
        "val_psnr": round(float(result["psnr"]), 4), "val_ssim": round(float(result["ssim"]), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=("train", "pack"))
    parser.add_argument("name", choices=sorted(RECIPES))
    parser.add_argument("run", nargs="?", type=Path, help="the run folder to pack (default runs/pretrain-NAME)")
    args = parser.parse_args()
    if args.action == "train":
        seconds = sei(*train_command(args.name)[1:])
        print(f"trained {run_folder(args.name)} in {seconds / 3600:.2f} h")
        return
    entry = pack(args.name, args.run or run_folder(args.name))
    manifest_path = PACKAGE / MANIFEST
    entries = json.loads(manifest_path.read_text()) if manifest_path.is_file() else []
    entries = [e for e in entries if e["name"] != args.name] + [entry]
    atomic_write_text(manifest_path, json.dumps(sorted(entries, key=lambda e: e["name"]), indent=2) + "\n")
    print(json.dumps(entry, indent=2))


if __name__ == "__main__":
    main()
