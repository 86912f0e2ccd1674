"""The main job on the embedded sample photographs: SEI against the blurry input, the classical restorers a user
would run instead (TV, BM3D) and a supervised network; and the network that ships with sei, as it is and
fine-tuned on the blurry photographs themselves.

Trains SEI and, with the same backbone and budget, a supervised network on the 13 training photographs for
Gaussian_R2 deblurring (noise level 5); fine-tunes the shipped network (:data:`~sei.core.defaults.DEMO_PRETRAINED`)
for a few hundred steps on the 3 blurry validation photographs alone, as a user fine-tunes it on their own
measurements; evaluates them all, TV, BM3D and the blurry input on the 3 validation photographs with the paper's
protocol, and writes a comparison table and an HTML report. Finished trainings are reused and interrupted ones
resumed, so running the demo again loses nothing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sei.config.resolve import resolve
from sei.config.schema import ExperimentConfig, from_flat
from sei.core.defaults import DEMO_FINETUNE_STEPS, DEMO_PRETRAINED, DEMO_STEPS
from sei.core.files import atomic_write_text
from sei.physics.spec import DEFAULT_KERNEL, DEFAULT_NOISE_LEVEL

__all__ = ["DEMO_STEPS", "QUICK", "classical_restorers", "demo_config", "DemoResult", "run_demo"]

# The demo's budget: DEMO_STEPS (sei.core.defaults).
# A budget that fits in a couple of minutes for tests, with the tiny backbone.
QUICK = {"model.backbone": "unet-tiny", "train.steps": 6, "data.batch_size": 2, "data.crop_size": 32,
         "data.samples_per_epoch": 4}


@dataclass
class DemoResult:
    """Scores of the demo's three reconstructions, where they were written, and how long each phase took."""

    out_dir: Path
    summaries: dict[str, dict[str, Any]]
    report: Path
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def sei_gain_over_input(self) -> float:
        return self.summaries["sei"]["psnr"] - self.summaries["input"]["psnr"]

    @property
    def sei_gap_to_supervised(self) -> float:
        return self.summaries["supervised"]["psnr"] - self.summaries["sei"]["psnr"]

    @property
    def finetuning_gain(self) -> float:
        """What fine-tuning the shipped network on the blurry photographs themselves adds to it, in dB."""
        return self.summaries["sei-finetuned"]["psnr"] - self.summaries["shipped"]["psnr"]

    @property
    def best_classical(self) -> str:
        """The classical restorer (TV, BM3D) with the highest mean PSNR."""
        return max((k for k in ("tv", "bm3d") if k in self.summaries), key=lambda k: self.summaries[k]["psnr"])

    @property
    def sei_gain_over_classical(self) -> float:
        """SEI's PSNR minus the best classical restorer's: what training buys over not training."""
        return self.summaries["sei"]["psnr"] - self.summaries[self.best_classical]["psnr"]


def demo_config(method: str, out_dir: Path, quick: bool = False, steps: int | None = None,
                device: str = "auto", kernel: str = DEFAULT_KERNEL, noise_level: float = DEFAULT_NOISE_LEVEL,
                progress: bool = True, measurements: Path | None = None) -> ExperimentConfig:
    """A demo training: ``method`` on the sample photographs, or, given a folder of ``measurements``, the shipped
    network fine-tuned on them (``DEMO_FINETUNE_STEPS`` steps unless ``steps``)."""
    label = "sei-finetuned" if measurements is not None else method
    values: dict[str, Any] = {"data.dataset": "sample", "physics.task": "deblurring", "physics.kernel": kernel,
                              "physics.noise_level": noise_level, "loss.method": method, "train.device": device,
                              "train.progress": progress, "out_dir": str(out_dir / label), "name": f"demo_{label}"}
    if measurements is not None:
        values.update({"data.dataset": str(measurements), "data.kind": "measurements",
                       "data.samples_per_epoch": 200, "model.weights": DEMO_PRETRAINED})
    if quick:  # the shipped network keeps its own backbone
        values.update({k: v for k, v in QUICK.items() if measurements is None or k != "model.backbone"})
    default = DEMO_FINETUNE_STEPS if measurements is not None else DEMO_STEPS
    values["train.steps"] = steps if steps is not None else values.get("train.steps", default)
    return resolve(from_flat(values))


def classical_restorers(physics, quick: bool = False) -> dict:
    """The restorers a user would run instead of training (no training, seconds per image): TV, and BM3D when its
    optional package is installed; a quick demo (an installation check) runs TV alone, with fewer iterations."""
    from sei.inference.baselines import build_baseline
    from sei.core.errors import OptionalDependencyError

    restorers = {"tv": build_baseline("tv", physics, {"tv_iterations": 10} if quick else None)}
    if not quick:
        try:
            restorers["bm3d"] = build_baseline("bm3d", physics)
        except OptionalDependencyError:  # `pip install 'sei[bm3d]'` adds it to the table
            pass
    return restorers


def run_demo(out_dir: str | Path = "runs/demo", quick: bool = False, steps: int | None = None,
             device: str = "auto", progress: bool = True) -> DemoResult:
    """Train, evaluate, tabulate and report; see the module docstring."""
    from sei.config.sources import locate_network
    from sei.data.pairs import MeasurementSet
    from sei.io.images import write_image
    from sei.data.sources import load_image_set
    from sei.core.devices import torch_device
    from sei.inference.evaluation import IMAGES_DIR, evaluate, write_evaluation
    from sei.models.weights import load_backbone
    from sei.training.run import train_or_reuse
    from sei.inference.baselines.classical import Identity
    from sei.inference.reconstructors import NetworkReconstructor
    from sei.report import write_report
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    seconds: dict[str, float] = {}
    weights = {}
    say = print if progress else (lambda *_: None)
    what = {"sei": "SEI, from the blurry measurements only", "supervised": "the supervised network, from clean images"}
    for number, method in enumerate(what, start=1):
        say(f"[{number}/4] training {what[method]}")
        started = time.perf_counter()
        config = demo_config(method, out_dir, quick, steps, device, progress=progress)
        weights[method] = train_or_reuse(config)
        seconds[f"train_{method}"] = time.perf_counter() - started

    spec = config.physics
    physics = spec.build()
    images = load_image_set("sample", "val")
    if quick:
        images.names, images.images = images.names[:1], images.images[:1]
    measurements = MeasurementSet(images, physics, config.data.noise_seed)

    say(f"[3/4] fine-tuning the shipped network {DEMO_PRETRAINED} on the {len(images)} blurry validation photographs")
    started = time.perf_counter()
    blurry = out_dir / "blurry_validation_photographs"
    for name, measurement in zip(measurements.names, measurements.measurements):
        if not (blurry / f"{name}.png").is_file():  # 8-bit, as a camera writes them
            write_image(blurry / f"{name}.png", measurement)
    finetune = demo_config("sei", out_dir, quick, None, device, progress=progress, measurements=blurry)
    weights["sei-finetuned"] = train_or_reuse(finetune)
    weights["shipped"] = locate_network(DEMO_PRETRAINED).weights
    seconds["train_sei-finetuned"] = time.perf_counter() - started

    started = time.perf_counter()
    target = torch_device(device)
    networks = {label: NetworkReconstructor(load_backbone(weights[label], physics=physics).to(target))
                for label in ("sei", "supervised", "shipped", "sei-finetuned")}
    reconstructors = {"input": Identity(physics.upscale), **classical_restorers(physics, quick), **networks}
    summaries = {}
    say(f"[4/4] evaluating {len(reconstructors)} restorations of {len(images)} held-out photographs")
    for label, reconstruct in tqdm(reconstructors.items(), desc="evaluating", unit="restorer", disable=not progress):
        settings = {"label": label, "dataset": "sample", "split": "val", "physics": spec.to_dict(),
                    "weights": str(weights.get(label, ""))}
        evaluation = evaluate(reconstruct, measurements, target, image_dir=out_dir / "eval" / label / IMAGES_DIR,
                              settings=settings, progress=False)
        write_evaluation(evaluation, out_dir / "eval" / label)
        summaries[label] = evaluation.summary
    seconds["evaluate"] = time.perf_counter() - started

    started = time.perf_counter()
    report = write_report([out_dir], out_dir / "report.html",
                          title=f"SEI demo: {spec.describe()}, on the sample photographs")
    seconds["report"] = time.perf_counter() - started
    result = DemoResult(out_dir, summaries, report, seconds)
    atomic_write_text(out_dir / "demo_summary.json", json.dumps({
        "psnr": {k: v["psnr"] for k, v in summaries.items()}, "ssim": {k: v["ssim"] for k, v in summaries.items()},
        "sei_gain_over_input_db": result.sei_gain_over_input,
        "sei_gap_to_supervised_db": result.sei_gap_to_supervised,
        "sei_gain_over_best_classical_db": result.sei_gain_over_classical, "best_classical": result.best_classical,
        "finetuning_gain_db": result.finetuning_gain, "pretrained": DEMO_PRETRAINED,
        "finetune_steps": finetune.train.steps,
        "seconds": seconds, "quick": quick, "steps": config.train.steps, "backbone": config.model.backbone,
    }, indent=2))
    return result
