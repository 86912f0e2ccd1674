"""Laptop quality: is SEI, trained for a few minutes on two CPU cores, worth it against the classical restorers?

    python benchmarks/laptop_quality.py [--scenarios gaussian,box,sr,own] [--budget 240] [--rows ROW,...]
                                        [--baselines bm3d,tv,wiener,pnp] [--threads 2] [--seed 0]

Trains recipes through the Python API (``sei.config.schema.from_flat`` + ``sei.training.train``) for a fixed compute
budget each and evaluates them, with the paper's protocol (whole images, shorter side 256, noise level 5, one
measurement per image seeded by its index, 8-bit luma PSNR/SSIM), on natural photographs that no training
set of ``sei`` contains and that ship offline with installed packages (see HELD_OUT), next to BM3D, TV, Wiener
and DPIR (when its DRUNet weights are cached) on the same measurements.

Scenarios:

- ``gaussian``: Gaussian_R2 deblurring, trained on the embedded ``sample`` photographs (13 images), the full
  ablation (plain U-Net, unrolled, EMA, schedule, batch/crop, self-ensemble);
- ``box``: Box_R3 deblurring, the same training data;
- ``gaussian-photos``, ``box-photos``, ``sr-photos``: the default recipe trained on the ``photos`` dataset (the
  sample photographs and 25 photographs of Debian's wallpaper packages, downloaded once into ``datasets/``)
  instead; run with ``--baselines identity`` (the classical rows do not depend on the training data);
- ``sr``: x2 super-resolution, the same training data;
- ``own``: the own-measurements workflow: the held-out photographs are degraded (Gaussian_R2, noise 5, written as
  8-bit PNG as a camera would), SEI is trained on those blurry images alone (``data.kind="measurements"``) and
  restores the very same images; baselines restore the same 8-bit measurements;
- ``own-finetune``: the same, starting from the weights that ``gaussian-bf16`` trained on the sample photographs
  (``sei train --measurements DIR --weights RUN``): run ``gaussian-bf16`` first.

Budget: every recipe gets the same compute, ``--budget`` seconds of two idle cores. The machine is shared, so
wall-clock budgets would penalise whichever recipe ran while others were busy (and busy OpenMP threads inflate
CPU time too): each recipe's step cost is timed back to back with the reference recipe's (unet-small, batch 8,
48x48), and the ratio scales the reference's step time on an idle machine (REFERENCE_STEP_S, from the demo's
measured 1000 steps in 248 s). The table reports the wall-clock time each training actually took. EMA and self-ensemble do not change training
(the EMA callback leaves the raw weights untouched, which tests/test_ema.py checks), so one training gives the
raw, EMA and EMA + ensemble rows.

Writes ``benchmarks/results/laptop_quality.json`` (every row's per-image scores, its settings and timings),
merged with earlier runs, so scenarios can be run separately; trainings live in
``benchmarks/results/laptop_runs/`` and finished ones are reused.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import yaml
from recording import Table, record, recorded_data

from sei.inference.baselines import build_baseline
from sei.config.resolve import resolve
from sei.config.schema import from_flat
from sei.data.pairs import MeasurementSet
from sei.data.preprocess import resize_shorter_side
from sei.data.sources import ImageSet, sample_image
from sei.inference.ensemble import SelfEnsemble
from sei.core.errors import SEIError
from sei.inference.evaluation import evaluate
from sei.core.files import atomic_write_text
from sei.io.images import read_image, write_image
from sei.models.weights import load_backbone
from sei.physics import make_physics
from sei.inference.reconstructors import NetworkReconstructor
from sei.training import train
from sei.training.ema import EMA

RUNS = Path("benchmarks/results/laptop_runs")
RAW_WEIGHTS = "raw_weights.pt"
SHORTER_SIDE = 256
NOISE_LEVEL = 5.0


def _skimage(name: str) -> Callable[[], torch.Tensor]:
    return lambda: sample_image(name)


def _motorcycle() -> torch.Tensor:
    from skimage import data

    left = data.stereo_motorcycle()[0]  # the left view; the right one is the same scene and is not used
    return torch.from_numpy(np.asarray(left, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def _grace_hopper() -> torch.Tensor:
    import matplotlib.cbook

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as file:
        return read_image(Path(file.name))


# Natural photographs that ship inside installed wheels and are in no training set of sei (the ``sample``
# dataset trains on 11 other scikit-image images). Licences as their packages document them.
HELD_OUT: dict[str, tuple[Callable[[], torch.Tensor], str]] = {
    "chelsea": (_skimage("chelsea"), "scikit-image data.chelsea: Stefan van der Walt's cat; no copyright restrictions"),
    "coffee": (_skimage("coffee"), "scikit-image data.coffee: CC0 by the photographer (Rachel Michetti)"),
    "camera": (_skimage("camera"), "scikit-image data.camera: CC0 by the photographer (Lav Varshney); grayscale"),
    "motorcycle": (_motorcycle, "scikit-image data.stereo_motorcycle (left view): Middlebury 2014 stereo benchmark "
                                "(Scharstein et al.), distributed with scikit-image for research use"),
    "grace_hopper": (_grace_hopper, "matplotlib sample_data/grace_hopper.jpg: U.S. Navy photograph, public domain"),
}


def held_out_images(names: list[str]) -> ImageSet:
    """The held-out photographs, RGB (grayscale repeated), shorter side 256 as in the paper."""
    images = []
    for name in names:
        image = HELD_OUT[name][0]()
        image = image.expand(3, -1, -1).clone() if image.shape[0] == 1 else image[:3]
        images.append(resize_shorter_side(image, SHORTER_SIDE))
    return ImageSet("held_out", list(names), images, True)


# ---- recipes -----------------------------------------------------------------------------------------------
# Each recipe is a set of configuration overrides; the ablation rows say which weights and test-time options
# of which recipe they score.
RECIPES: dict[str, dict[str, Any]] = {
    "unet": {"model.backbone": "unet-small", "train.lr": 1e-3, "train.precision": "32-true"},
    "unet-bf16": {"model.backbone": "unet-small", "train.lr": 1e-3, "train.precision": "bf16-mixed"},
    # capacity: unet-base (4x unet-small's parameters and FLOPs) gets about a quarter of the steps; at lr 1e-3 it
    # diverged (infinite gradient norm at step 153)
    "unet-base-bf16": {"model.backbone": "unet-base", "train.lr": 5e-4, "train.precision": "bf16-mixed"},
    # the default recipe on the `photos` dataset (the sample photographs and 25 from Debian's wallpaper packages,
    # downloaded once into datasets/)
    "unet-bf16-photos": {"model.backbone": "unet-small", "train.lr": 1e-3, "train.precision": "bf16-mixed",
                         "data.dataset": "photos", "data.download": True},
    "unrolled": {"model.backbone": "unrolled-small", "train.lr": 1e-3},
    "unrolled-linear": {"model.backbone": "unrolled-small", "train.lr": 1e-3, "train.lr_decay_start": 0.0},
    "unrolled-lr2e-3": {"model.backbone": "unrolled-small", "train.lr": 2e-3},
    "unrolled-b16": {"model.backbone": "unrolled-small", "train.lr": 1e-3, "data.batch_size": 16},
    "unrolled-c64": {"model.backbone": "unrolled-small", "train.lr": 1e-3, "data.crop_size": 64},
    # fine-tuning on the user's own measurements from the weights the gaussian-bf16 scenario trained on the
    # sample photographs (run that scenario first): what `sei train --measurements DIR --weights RUN` does
    "unet-bf16-finetune": {"model.backbone": "unet-small", "train.lr": 1e-3, "train.precision": "bf16-mixed",
                           "model.weights": str(RUNS / "gaussian-bf16_unet-bf16_b600_s0" / "weights.pt")},
}
# row label -> (recipe, weights: "raw" or "ema", self-ensemble)
ROWS: dict[str, tuple[str, str, bool]] = {
    "SEI unet-small (current default)": ("unet", "raw", False),
    "SEI unet-small + EMA": ("unet", "ema", False),
    "SEI unet-small + EMA + ensemble": ("unet", "ema", True),
    "SEI unet-small bf16": ("unet-bf16", "raw", False),
    "SEI unet-small bf16 + EMA": ("unet-bf16", "ema", False),
    "SEI unet-small bf16 + EMA + ensemble": ("unet-bf16", "ema", True),
    "SEI unet-base bf16": ("unet-base-bf16", "raw", False),
    "SEI unet-base bf16 + EMA": ("unet-base-bf16", "ema", False),
    "SEI unet-base bf16 + EMA + ensemble": ("unet-base-bf16", "ema", True),
    "SEI unet-small bf16 on photos": ("unet-bf16-photos", "raw", False),
    "SEI unet-small bf16 on photos + EMA": ("unet-bf16-photos", "ema", False),
    "SEI unet-small bf16 on photos + EMA + ensemble": ("unet-bf16-photos", "ema", True),
    "SEI unrolled-small": ("unrolled", "raw", False),
    "SEI unrolled-small + EMA": ("unrolled", "ema", False),
    "SEI unrolled-small + EMA + ensemble": ("unrolled", "ema", True),
    "SEI unrolled + EMA (linear decay)": ("unrolled-linear", "ema", False),
    "SEI unrolled + EMA (lr 2e-3)": ("unrolled-lr2e-3", "ema", False),
    "SEI unrolled + EMA (batch 16)": ("unrolled-b16", "ema", False),
    "SEI unrolled + EMA (crop 64)": ("unrolled-c64", "ema", False),
    "SEI unet-small bf16 fine-tuned": ("unet-bf16-finetune", "raw", False),
    "SEI unet-small bf16 fine-tuned + EMA": ("unet-bf16-finetune", "ema", False),
    "SEI unet-small bf16 fine-tuned + EMA + ensemble": ("unet-bf16-finetune", "ema", True),
}
SCENARIO_ROWS = {
    "gaussian": ["SEI unrolled-small", "SEI unrolled-small + EMA", "SEI unrolled-small + EMA + ensemble",
                 "SEI unet-small (current default)", "SEI unet-small + EMA", "SEI unet-small + EMA + ensemble"],
    # the same task with a longer budget (run with --budget 300 --baselines identity; BM3D/TV are in "gaussian")
    "gaussian-long": ["SEI unet-small (current default)", "SEI unet-small + EMA", "SEI unet-small + EMA + ensemble"],
    # bf16 mixed precision: the same seconds buy about twice the steps on a CPU with native bf16
    "gaussian-bf16": ["SEI unet-small bf16", "SEI unet-small bf16 + EMA", "SEI unet-small bf16 + EMA + ensemble"],
    "box": ["SEI unrolled-small + EMA", "SEI unrolled-small + EMA + ensemble"],
    # the default recipe trained on the `photos` dataset instead of `sample`
    **{f"{task}-photos": ["SEI unet-small bf16 on photos", "SEI unet-small bf16 on photos + EMA",
                          "SEI unet-small bf16 on photos + EMA + ensemble"] for task in ("gaussian", "box", "sr")},
    "sr": ["SEI unrolled-small + EMA", "SEI unrolled-small + EMA + ensemble"],
    "own": ["SEI unrolled-small + EMA", "SEI unrolled-small + EMA + ensemble"],
    # own measurements, starting from the sample run's weights (gaussian-bf16) instead of from scratch
    "own-finetune": ["SEI unet-small bf16 fine-tuned", "SEI unet-small bf16 fine-tuned + EMA",
                     "SEI unet-small bf16 fine-tuned + EMA + ensemble"],
}
SCENARIO_PHYSICS = {
    "gaussian": {"physics.task": "deblurring", "physics.kernel": "Gaussian_R2"},
    "gaussian-long": {"physics.task": "deblurring", "physics.kernel": "Gaussian_R2"},
    "gaussian-bf16": {"physics.task": "deblurring", "physics.kernel": "Gaussian_R2"},
    "box": {"physics.task": "deblurring", "physics.kernel": "Box_R3"},
    "sr": {"physics.task": "sr", "physics.sr_factor": 2},
    "gaussian-photos": {"physics.task": "deblurring", "physics.kernel": "Gaussian_R2"},
    "box-photos": {"physics.task": "deblurring", "physics.kernel": "Box_R3"},
    "sr-photos": {"physics.task": "sr", "physics.sr_factor": 2},
    "own": {"physics.task": "deblurring", "physics.kernel": "Gaussian_R2"},
    "own-finetune": {"physics.task": "deblurring", "physics.kernel": "Gaussian_R2"},
}
BASELINES = {"deblurring": ["identity", "wiener", "tv", "bm3d", "pnp"], "sr": ["bicubic", "wiener", "tv", "pnp"]}


def scenario_physics(scenario: str):
    spec = SCENARIO_PHYSICS[scenario]
    return make_physics(spec["physics.task"], spec.get("physics.kernel"), spec.get("physics.sr_factor"), NOISE_LEVEL)


# ---- training ----------------------------------------------------------------------------------------------
class RawWeights(L.Callback):
    """Saves the optimiser's last iterate (before an EMA callback placed after it swaps in the average)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        torch.save({"params": {k: v.detach().cpu().clone() for k, v in pl_module.backbone.state_dict().items()},
                    "sei_architecture": pl_module.backbone.sei_architecture}, self.path)


# Seconds per SEI step of the reference recipe (unet-small, batch 8, 48x48 crops, Gaussian_R2) on two idle cores
# of this project's machine: `sei demo` ran 1000 such steps in 248 s (README, "What the main job gives").
REFERENCE_STEP_S = 0.248
REFERENCE = {"model.backbone": "unet-small", "train.lr": 1e-3, "train.precision": "32-true"}


def _step_function(overrides: dict[str, Any]) -> Callable[[int], None]:
    """One SEI training step of the recipe on random crops of its batch and crop size, as a function of a seed."""
    from sei.training.module import SEIModule

    config = resolve(from_flat(overrides))
    torch.manual_seed(0)
    module = SEIModule(config.to_dict())
    optimizer = torch.optim.Adam(module.backbone.parameters(), lr=config.train.lr)
    size = config.data.crop_size
    y = torch.rand(config.data.batch_size, 3, size, size, generator=torch.Generator().manual_seed(0))

    bf16 = config.train.precision == "bf16-mixed"

    def step(seed: int) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            output = module.method(module.backbone, module.physics, y, None,
                                   generator=torch.Generator().manual_seed(seed))
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()

    return step


def calibrate_step_seconds(overrides: dict[str, Any], pairs: int = 6) -> float:
    """Seconds per training step of a recipe on two idle cores.

    The machine is shared, so absolute timings drift with the load: steps of the recipe and of the reference
    recipe alternate (same load), the median ratio of their times scales :data:`REFERENCE_STEP_S`, measured on
    an idle machine.
    """
    reference = {**overrides, **REFERENCE, "physics.task": "deblurring", "physics.kernel": "Gaussian_R2",
                 "physics.sr_factor": None, "data.batch_size": 8, "data.crop_size": 48}
    recipe_step, reference_step = _step_function(overrides), _step_function(reference)
    ratios = []
    for index in range(pairs + 1):
        started = time.perf_counter()
        recipe_step(index)
        middle = time.perf_counter()
        reference_step(index)
        if index:  # the first pair warms up
            ratios.append((middle - started) / (time.perf_counter() - middle))
    return REFERENCE_STEP_S * float(np.median(ratios))


def train_recipe(scenario: str, recipe: str, data: dict[str, Any], budget: float, threads: int, seed: int,
                 ema_decay: float) -> dict[str, Any]:
    """Train (or reuse) one recipe for one scenario; return its folder, steps and timings."""
    out_dir = RUNS / f"{scenario}_{recipe}_b{int(budget)}_s{seed}"
    info_file = out_dir / "benchmark_training.json"
    if info_file.is_file():
        return json.loads(info_file.read_text())
    overrides = {**SCENARIO_PHYSICS[scenario], "physics.noise_level": NOISE_LEVEL, **data, **RECIPES[recipe],
                 "train.seed": seed, "train.progress": False, "train.checkpoint_every": 0}
    resume = (out_dir / "checkpoints" / "last.ckpt").is_file() and (out_dir / "config.yaml").is_file()
    if resume:  # an interrupted training continues exactly where it stopped (EMA state included)
        step_seconds = None
        steps = int(yaml.safe_load((out_dir / "config.yaml").read_text())["train"]["steps"])
    else:
        if out_dir.exists():
            shutil.rmtree(out_dir)
        step_seconds = calibrate_step_seconds(overrides)
        steps = max(int(budget / step_seconds), 10)
    overrides.update({"train.steps": steps, "out_dir": str(out_dir)})
    out_dir.mkdir(parents=True, exist_ok=True)
    wall, cpu = time.perf_counter(), time.process_time()
    result = train(from_flat(overrides), resume=resume,
                   callbacks=[RawWeights(out_dir / RAW_WEIGHTS), EMA(ema_decay)])
    info = {"recipe": recipe, "overrides": overrides, "steps": steps, "calibrated_step_s": step_seconds,
            "train_wall_s": time.perf_counter() - wall, "train_cpu_s": time.process_time() - cpu,
            "resumed": resume, "ema_decay": ema_decay, "weights": str(result.weights),
            "raw_weights": str(out_dir / RAW_WEIGHTS)}
    atomic_write_text(info_file, json.dumps(info, indent=2))
    return info


# ---- evaluation --------------------------------------------------------------------------------------------
def score(reconstruct, measurements: MeasurementSet) -> dict[str, Any]:
    started = time.perf_counter()
    evaluation = evaluate(reconstruct, measurements, progress=False)
    seconds = (time.perf_counter() - started) / len(measurements)
    summary = evaluation.summary
    return {"psnr": summary["psnr"], "psnr_std": summary["psnr_std"], "ssim": summary["ssim"],
            "ssim_std": summary["ssim_std"], "n": summary["n"], "s_per_image": seconds,
            "per_image": {row["name"]: {"psnr": row["psnr"], "ssim": row["ssim"]} for row in evaluation.rows}}


def network_row(info: dict[str, Any], weights: str, ensemble: bool, physics, measurements: MeasurementSet
                ) -> dict[str, Any]:
    network = load_backbone(info["weights"] if weights == "ema" else info["raw_weights"], physics=physics).eval()
    reconstruct: Any = NetworkReconstructor(network)
    if ensemble:
        reconstruct = SelfEnsemble(reconstruct, physics)
    with torch.inference_mode():
        row = score(reconstruct, measurements)
    row.update({"recipe": info["recipe"], "weights": weights, "ensemble": ensemble, "steps": info["steps"],
                "train_wall_s": info["train_wall_s"], "train_cpu_s": info["train_cpu_s"]})
    return row


def baseline_row(kind: str, physics, measurements: MeasurementSet) -> dict[str, Any] | str:
    try:
        reconstructor = build_baseline(kind, physics, {"progress": False})
    except SEIError as error:  # BM3D not installed, DRUNet weights not cached, ...
        return f"not available: {error}"
    with torch.inference_mode():
        return score(reconstructor, measurements)


def own_measurements(images: ImageSet, physics, folder: Path) -> tuple[MeasurementSet, Path]:
    """Degrade the held-out photographs, write them as 8-bit PNG, and read them back: the user's blurry images.

    :return: the evaluation set (the 8-bit measurements with their clean images) and the folder to train on.
    """
    simulated = MeasurementSet(images, physics, noise_seed=0)
    folder.mkdir(parents=True, exist_ok=True)
    measurements = []
    for name, measurement in zip(simulated.names, simulated.measurements):
        path = folder / f"{name}.png"
        write_image(path, measurement)
        measurements.append(read_image(path))
    simulated.measurements = measurements
    return simulated, folder


# ---- report ------------------------------------------------------------------------------------------------
TITLES = {"gaussian": "Gaussian_R2 deblurring, trained on the sample photographs",
         "gaussian-long": "Gaussian_R2 deblurring, trained on the sample photographs, longer budget",
         "gaussian-bf16": "Gaussian_R2 deblurring, trained on the sample photographs, bf16 mixed precision",
         "box": "Box_R3 deblurring, trained on the sample photographs",
         "gaussian-photos": "Gaussian_R2 deblurring, trained on the photos dataset",
         "box-photos": "Box_R3 deblurring, trained on the photos dataset",
         "sr-photos": "x2 super-resolution, trained on the photos dataset",
         "sr": "x2 super-resolution, trained on the sample photographs",
         "own": "own measurements: Gaussian_R2, trained on the blurry held-out images themselves",
         "own-finetune": "own measurements: Gaussian_R2, the gaussian-bf16 run fine-tuned on the blurry "
                         "held-out images themselves"}


def scenario_table(scenario: str, payload: dict[str, Any]) -> Table:
    """A scenario's rows as a table, each against the best classical restorer measured (BM3D, else TV)."""
    rows = payload.get("rows", {})
    reference = "bm3d" if isinstance(rows.get("bm3d"), dict) else ("tv" if "tv" in rows else None)
    ref_psnr = rows[reference]["psnr"] if reference and isinstance(rows.get(reference), dict) else None
    table = Table(f"{TITLES.get(scenario, scenario)}; noise 5; budget {payload.get('budget_s', '-')} s per training",
                  ["row", "PSNR (dB)", "SSIM", f"vs {reference or '-'}", "training s", "steps", "s/image"])
    for label, row in rows.items():
        if not isinstance(row, dict):
            table.rows.append([label, str(row), None, None, None, None, None])
            continue
        delta = f"{row['psnr'] - ref_psnr:+.2f}" if ref_psnr is not None else None
        table.rows.append([label, f"{row['psnr']:.2f} ± {row['psnr_std']:.2f}", row["ssim"], delta,
                           row.get("train_wall_s"), row.get("steps"), row["s_per_image"]])
    return table
def format_rows(rows: dict[str, Any], reference: str | None) -> str:
    header = (f"{'':<40}{'PSNR (dB)':>15}{'SSIM':>16}{'min..max PSNR':>16}{'vs ' + (reference or '-'):>10}"
              f"{'train s':>9}{'steps':>7}{'s/img':>7}")
    lines = [header, "-" * len(header)]
    ref = rows.get(reference) if reference else None
    ref_psnr = ref["psnr"] if isinstance(ref, dict) else None
    for label, row in rows.items():
        if not isinstance(row, dict):
            lines.append(f"{label:<40}{row}")
            continue
        per = [image["psnr"] for image in row["per_image"].values()]
        delta = f"{row['psnr'] - ref_psnr:+.2f}" if ref_psnr is not None else "-"
        train_s = f"{row['train_wall_s']:.0f}" if "train_wall_s" in row else "-"
        steps = str(row.get("steps", "-"))
        lines.append(f"{label:<40}{row['psnr']:>8.2f} ± {row['psnr_std']:.2f}{row['ssim']:>9.4f} ± {row['ssim_std']:.3f}"
                     f"{min(per):>9.2f}..{max(per):.2f}{delta:>10}{train_s:>9}{steps:>7}{row['s_per_image']:>7.2f}")
    return "\n".join(lines)


def saved_rows(scenario: str) -> dict[str, Any]:
    """Rows an earlier run of this benchmark measured for ``scenario`` (reused: baselines do not change)."""
    return dict(recorded_data("laptop_quality").get("scenarios", {}).get(scenario, {}).get("rows", {}))


def save(scenario: str, payload: dict[str, Any]) -> None:
    """Merge ``payload`` into the recorded results: rows of earlier runs of the scenario are kept unless re-measured."""
    scenarios = recorded_data("laptop_quality").get("scenarios", {})
    previous = scenarios.get(scenario, {})
    scenarios[scenario] = {**previous, **payload, "rows": {**previous.get("rows", {}), **payload.get("rows", {})}}
    record("laptop_quality", [scenario_table(name, values) for name, values in scenarios.items()],
           {"scenarios": scenarios}, echo=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenarios", default="gaussian,box,sr,own")
    parser.add_argument("--budget", type=float, default=240.0, help="seconds of compute per training")
    parser.add_argument("--rows", default=None, help="comma-separated row labels (default: the scenario's)")
    parser.add_argument("--baselines", default="identity,bicubic,wiener,tv,bm3d,pnp")
    parser.add_argument("--images", default=",".join(HELD_OUT))
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads; 1 when the machine is oversubscribed (OpenMP barriers stall otherwise)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ema-decay", type=float, default=0.995)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = held_out_images(args.images.split(","))
    wanted_baselines = args.baselines.split(",")
    for scenario in args.scenarios.split(","):
        physics = scenario_physics(scenario)
        task = SCENARIO_PHYSICS[scenario]["physics.task"]
        data: dict[str, Any] = {"data.dataset": "sample"}
        if scenario.startswith("own"):
            measurements, folder = own_measurements(images, physics, RUNS / "own_measurements")
            data = {"data.dataset": str(folder), "data.kind": "measurements", "data.samples_per_epoch": 200}
        else:
            measurements = MeasurementSet(images, physics, noise_seed=0)
        previous = saved_rows(scenario)
        rows: dict[str, Any] = {}
        for kind in BASELINES[task]:
            if kind in wanted_baselines:
                if isinstance(previous.get(kind), dict) and previous[kind]["n"] == len(images):
                    rows[kind] = previous[kind]
                    continue
                rows[kind] = baseline_row(kind, physics, measurements)
                print(f"[{scenario}] {kind}: {rows[kind] if isinstance(rows[kind], str) else round(rows[kind]['psnr'], 2)}",
                      flush=True)
        save(scenario, {"rows": rows})  # baselines are slow (BM3D, TV): keep them even if training is stopped
        labels = args.rows.split(",") if args.rows else SCENARIO_ROWS[scenario]
        for label in labels:
            recipe, weights, ensemble = ROWS[label]
            info = train_recipe(scenario, recipe, data, args.budget, args.threads, args.seed, args.ema_decay)
            rows[label] = network_row(info, weights, ensemble, physics, measurements)
            print(f"[{scenario}] {label}: {rows[label]['psnr']:.2f} dB ({info['steps']} steps, "
                  f"{info['train_wall_s']:.0f} s)", flush=True)
            save(scenario, {"rows": rows, "budget_s": args.budget, "images": args.images.split(","),
                            "licences": {n: HELD_OUT[n][1] for n in args.images.split(",")}, "seed": args.seed})
        rows = {**rows, **{k: v for k, v in previous.items() if k not in rows}}
        reference = "bm3d" if isinstance(rows.get("bm3d"), dict) else ("tv" if "tv" in rows else None)
        title = TITLES[scenario]
        print(f"\n== {title}; noise 5; {len(images)} held-out photographs; budget {args.budget:g} s per training ==")
        print(format_rows(rows, reference), flush=True)
        save(scenario, {"rows": rows, "budget_s": args.budget, "images": args.images.split(","),
                        "licences": {n: HELD_OUT[n][1] for n in args.images.split(",")}, "seed": args.seed})


if __name__ == "__main__":
    main()
