"""The paper's evaluation protocol on whole images: per-image PSNR/SSIM (and LPIPS), mean and std; ``sei test``.

Each clean image gets its fixed measurement (noise seeded by its index), the reconstruction runs on the whole
measurement, and the metrics compare the 8-bit-quantised estimate and reference (see :mod:`sei.metrics`).
:func:`run_test` is the whole of ``sei test``; an evaluation folder holds ``metrics.csv`` (one row per image),
``summary.json`` (means, standard deviations, settings) and, when asked, ``images/``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sei.core.errors import ConfigError
from sei.core.files import atomic_write_text
from sei.core.units import plural
from sei.data.pairs import MeasurementSet
from sei.data.sources import ImageSet
from sei.io.images import ImageFile, write_image, write_image_file
from sei.io.outputs import check_replaceable
from sei.io.intensity import IntensityMap, integer_map
from sei.metrics import psnr, ssim
from sei.physics.spec import PhysicsSpec

__all__ = ["IMAGES_DIR", "METRICS_FILE", "RESULTS_DIR", "SUMMARY_FILE", "describe_scoring", "evaluate", "Evaluation",
           "format_table", "metric_data_range", "open_lpips", "Reconstructor", "run_test", "summarise", "TestResult",
           "write_evaluation"]

METRICS_FILE = "metrics.csv"
SUMMARY_FILE = "summary.json"

Reconstructor = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Evaluation:
    """Per-image rows (``name``, ``psnr``, ``ssim``, optionally ``lpips``) and their summary."""

    rows: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)


def _mean_std(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return float("nan"), float("nan")
    mean = sum(finite) / len(finite)
    std = math.sqrt(sum((v - mean) ** 2 for v in finite) / len(finite))
    return mean, std


def summarise(rows: list[dict[str, Any]], settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Mean and standard deviation of each metric over images, with the number of images and the settings."""
    summary: dict[str, Any] = {"n": len(rows)}
    for metric in ("psnr", "ssim", "lpips"):
        values = [row[metric] for row in rows if row.get(metric) is not None]
        if values:
            summary[metric], summary[f"{metric}_std"] = _mean_std(values)
    summary["settings"] = settings or {}
    return summary


def metric_data_range(intensity: IntensityMap | None) -> float | None:
    """The ``data_range`` that scores a set in its own precision: ``None`` (the paper's 8-bit protocol) for 8-bit
    photographs and the named datasets, ``1.0`` for 16-bit and float data, whose full range the network's [0, 1]
    holds (PSNR is the same in data units with the map's range as peak), so 8-bit rounding hides nothing."""
    if intensity is None or np.dtype(intensity.dtype).itemsize == 1:
        return None
    return 1.0


def describe_scoring(data_range: float | None, intensity: IntensityMap | None = None) -> str:
    """What PSNR and SSIM were computed on, for a given ``data_range`` (:func:`metric_data_range`): the words that
    follow "PSNR and SSIM on" in ``sei test``'s output, in ``summary.json`` (``scoring``) and in ``sei report``.

    >>> describe_scoring(None)
    '8-bit full-range luma (estimates and references rounded to 8 bits, peak 255), as in the paper'
    >>> describe_scoring(1.0, IntensityMap(0.0, 65535.0, "uint16"))
    'uint16 data, its full range (65535) as peak, no 8-bit rounding (luma)'
    """
    if data_range is None:
        return "8-bit full-range luma (estimates and references rounded to 8 bits, peak 255), as in the paper"
    if intensity is None:
        return f"luma with peak {data_range:g} in the network's units, no 8-bit rounding"
    peak = intensity.data_range * data_range  # data_range is in network units, where the map's range is 1
    if intensity.is_integer:
        return f"{intensity.dtype} data, its full range ({peak:g}) as peak, no 8-bit rounding (luma)"
    return (f"{intensity.dtype} data, the range of its intensity map ({peak:.6g} units) as peak, no 8-bit "
            "rounding (luma)")


@torch.no_grad()
def evaluate(
    reconstruct: Reconstructor,
    measurements: MeasurementSet,
    device: torch.device | str = "cpu",
    lpips: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    image_dir: str | Path | None = None,
    settings: dict[str, Any] | None = None,
    progress: bool = True,
    data_range: float | None = None,
    scoring: str | None = None,
) -> Evaluation:
    """Reconstruct every measurement of a set with ground truth and score it.

    Volumes (``(C, D, H, W)`` images) are scored as the benchmarks score them: PSNR over every voxel, SSIM averaged
    over the planes; their rows also give the ``depth``.

    :param reconstruct: ``(1, C, h, w)`` measurement -> ``(1, C, h r, w r)`` estimate (``(1, C, d, h, w)`` volumes).
    :param lpips: optional LPIPS metric (see :class:`sei.metrics.LPIPS`), for images.
    :param image_dir: if given, write ``<name>_input.png``, ``<name>_estimate.png``, ``<name>_reference.png`` (for
        volumes, 16-bit ``.tif`` z-stacks).
    :param data_range: PSNR/SSIM peak in network units: ``None`` for the paper's protocol (8-bit quantised
        photographs), ``1.0`` for 16-bit or float data (no 8-bit rounding; see :func:`metric_data_range`).
    :param scoring: what that means, recorded in the summary as ``scoring`` (default: :func:`describe_scoring` of
        ``data_range`` alone), so that a report says what this evaluation used.
    """
    from tqdm.auto import tqdm

    if not measurements.has_ground_truth:
        raise ValueError("evaluation needs clean reference images")
    rows = []
    indices = tqdm(range(len(measurements)), desc="evaluating", unit="image", disable=not progress)
    for index in indices:
        y = measurements.measurements[index][None].to(device)
        x = measurements.targets[index][None].to(device)
        estimate = reconstruct(y).float()
        volume = x.ndim == 5
        row: dict[str, Any] = {"index": index, "name": measurements.names[index],
                               **({"depth": x.shape[-3]} if volume else {}), "height": x.shape[-2],
                               "width": x.shape[-1]}
        if volume:  # PSNR of the planes side by side (one error over every voxel); SSIM of the planes as a batch
            side_by_side = [t.reshape(1, t.shape[1], -1, t.shape[-1]) for t in (estimate, x)]
            row["psnr"] = psnr(*side_by_side, data_range).item()
            row["ssim"] = ssim(*(t[0].transpose(0, 1) for t in (estimate, x)), data_range).mean().item()
        else:
            row["psnr"] = psnr(estimate, x, data_range).item()
            row["ssim"] = ssim(estimate, x, data_range).item()
        if lpips is not None and not volume:
            row["lpips"] = lpips(estimate, x).item()
        rows.append(row)
        if image_dir is not None:
            name = measurements.names[index]
            for part, tensor in (("input", y[0]), ("estimate", estimate[0]), ("reference", x[0])):
                if volume:
                    _write_volume(Path(image_dir) / f"{name}_{part}.tif", tensor)
                else:
                    write_image(Path(image_dir) / f"{name}_{part}.png", tensor)
    summary = summarise(rows, settings)
    summary["scoring"] = scoring or describe_scoring(data_range)
    return Evaluation(rows, summary)


def _write_volume(path: Path, volume: torch.Tensor) -> None:
    """A gray ``(1, D, H, W)`` volume in [0, 1] as a 16-bit z-stack."""
    pages = list(integer_map("uint16").from_network(volume[0].cpu().numpy()))
    write_image_file(path, ImageFile(pages, stack_axes="Z", stack_shape=(len(pages),)))


# A spreadsheet evaluates a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """Text that a spreadsheet would run as a formula (an image named ``=1+2``), prefixed with ``'`` so that it is
    shown as text; anything else unchanged.

    >>> spreadsheet_safe("=HYPERLINK(1)"), spreadsheet_safe("cell_02"), spreadsheet_safe(-3.5)
    ("'=HYPERLINK(1)", 'cell_02', -3.5)
    """
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def is_evaluation_folder(out_dir: str | Path) -> bool:
    """Whether ``out_dir`` holds an evaluation sei wrote (its ``summary.json`` has the settings and the count)."""
    try:
        summary = json.loads((Path(out_dir) / SUMMARY_FILE).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(summary, dict) and isinstance(summary.get("settings"), dict) and "n" in summary


def check_evaluation_folder(out_dir: str | Path, overwrite: bool = False) -> None:
    """The output policy for an evaluation: an evaluation sei wrote in ``out_dir`` is replaced by a new one;
    anything else of those names is refused unless ``overwrite``.

    :raises OutputExistsError: naming the files.
    """
    if not is_evaluation_folder(out_dir):
        check_replaceable([Path(out_dir) / METRICS_FILE, Path(out_dir) / SUMMARY_FILE], overwrite)


def write_evaluation(evaluation: Evaluation, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``metrics.csv`` (one row per image; text that a spreadsheet would run as a formula is quoted) and
    ``summary.json`` atomically; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(key for row in evaluation.rows for key in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows({key: spreadsheet_safe(value) for key, value in row.items()} for row in evaluation.rows)
    metrics = atomic_write_text(out_dir / METRICS_FILE, text.getvalue())
    summary = atomic_write_text(out_dir / SUMMARY_FILE, json.dumps(evaluation.summary, indent=2, default=str))
    return metrics, summary


def format_table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """A plain-text table of summaries: one line per ``(label, summary)``."""
    header = f"{'':<24}{'PSNR (dB)':>16}{'SSIM':>18}{'LPIPS':>18}{'images':>8}"
    lines = [header, "-" * len(header)]
    for label, summary in rows:
        cells = []
        for metric, digits in (("psnr", 2), ("ssim", 4), ("lpips", 4)):
            if metric in summary:
                cells.append(f"{summary[metric]:.{digits}f} ± {summary[metric + '_std']:.{digits}f}")
            else:
                cells.append("n/a")
        lines.append(f"{label:<24}{cells[0]:>16}{cells[1]:>18}{cells[2]:>18}{summary.get('n', 0):>8}")
    return "\n".join(lines)


# Where `sei test` writes when it is not told: beside a run's weights, else results/<what was tested>/.
RESULTS_DIR = "results"
IMAGES_DIR = "images"  # inputs, estimates and references of an evaluation with images saved


@dataclass
class TestResult:
    """What ``sei test`` measured and where it wrote it.

    :ivar notes: lines for the user (e.g. why LPIPS was skipped).
    """

    evaluation: Evaluation
    label: str
    physics: PhysicsSpec
    images: ImageSet
    scoring: str
    metrics_path: Path
    summary_path: Path
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """``Gaussian_R2 deblurring, ...; sample (3 images); PSNR/SSIM on 8-bit full-range luma (...)``."""
        return (f"{self.physics.describe()}; {self.images.name} ({plural(len(self.images), 'image')}); PSNR/SSIM on "
                f"{self.scoring}")


def open_lpips(wanted: bool | None, download: bool, device, notes: list[str]):
    """The LPIPS metric when wanted and available; ``None`` (with a note) when optional and unavailable."""
    from sei.core.errors import ResourceUnavailableError
    from sei.metrics import LPIPS

    if wanted is False:
        return None
    try:
        return LPIPS(download=download).to(device)
    except ResourceUnavailableError as error:
        if wanted:
            raise
        notes.append(f"LPIPS skipped: {error}")
        return None


def run_test(model_kind: str = "network", weights: str | None = None, physics: PhysicsSpec | None = None,
             overrides: dict[str, Any] | None = None, split: str = "val", max_images: int | None = None,
             out_dir: str | Path | None = None, save_images: bool = False, label: str | None = None,
             lpips: bool | None = None, ensemble: bool = False, precision: str = "32-true",
             baseline_options: dict[str, Any] | None = None, progress: bool = True,
             strict: bool = False, overwrite: bool = False) -> TestResult:
    """Evaluate a network or a baseline with the paper's protocol on a dataset or folder of clean images (``sei
    test``): every image measured once with seeded noise, restored whole, scored, and written to ``metrics.csv`` and
    ``summary.json``.

    :param weights: a weights file, a run folder or a published name (``model_kind="network"``); a run folder's own
        settings (its validation set, resizing, noise seed) are the defaults.
    :param physics: the operator options given (``None`` fields where not given); what they leave open comes from
        the network's record, else the paper's kernel.
    :param overrides: dotted ``data.*``, ``model.backbone`` and ``train.device`` settings given.
    :param baseline_options: the baselines' settings (see :func:`sei.inference.baselines.build_baseline`).
    :param overwrite: replace files of the evaluation's names that sei did not write (:func:`check_evaluation_folder`).
    :raises ConfigError: for settings that do not fit together (a subclass names the kind of problem).
    :raises OutputExistsError: when the output folder holds such files and ``overwrite`` is not set.
    """
    import sei
    from sei.config.schema import ExperimentConfig, from_flat
    from sei.config.sources import choose_physics, locate_network
    from sei.core.devices import torch_device
    from sei.data.sources import load_image_set
    from sei.inference.baselines import canonical_kind
    from sei.inference.reconstructors import open_reconstructor
    from sei.physics.spec import DEFAULT_KERNEL

    overrides = dict(overrides or {})
    options = dict(baseline_options or {})
    download = bool(overrides.get("data.download", False))
    kind = canonical_kind(model_kind)
    source = locate_network(weights, download=download) if weights and kind == "network" else None
    base = (source.run_config if source else None) or ExperimentConfig()
    if source and source.run_config is not None and "data.dataset" not in overrides:
        overrides["data.dataset"] = base.data.val_dataset or base.data.dataset
    config = from_flat(overrides, base)
    spec, _ = choose_physics(physics or PhysicsSpec(), source, default_kernel=DEFAULT_KERNEL)
    device = torch_device(config.train.device)
    operator = spec.build()
    volumes = spec.dimensionality == 3  # a 3-D PSF: each file one z-stack
    images = load_image_set(config.data.dataset, split, config.data.datasets_dir, config.data.download, True,
                            config.data.resize, progress=progress, strict=strict, max_pixels=config.data.max_pixels,
                            volumes=volumes)
    if max_images:
        images.names, images.images = images.names[:max_images], images.images[:max_images]
    measurements = MeasurementSet(images, operator, config.data.noise_seed)  # simulated on the CPU, seeded
    data_range = metric_data_range(images.intensity)  # 16-bit and float data are scored without 8-bit rounding
    backbone = config.model.backbone if ("model.backbone" in overrides or (source and source.backbone)) else None
    reconstructor = open_reconstructor(kind, operator.to(device), source, options, backbone=backbone,
                                       ensemble=ensemble, precision=precision).to(device)
    notes: list[str] = []
    if volumes and lpips:
        raise ConfigError("LPIPS scores photographs, not z-stacks: leave out --lpips")
    metric = open_lpips(False if volumes else lpips, download, device, notes)
    if source is not None:
        label = label or (source.weights.parent.name if source.run_config else source.weights.stem)
        root = source.weights.parent if source.run_config else Path(RESULTS_DIR) / source.weights.stem
    else:
        label = label or kind
        root = Path(RESULTS_DIR) / f"{kind}_{spec.task}_{spec.short_name()}_noise{spec.noise_level:g}"
    out_dir = Path(out_dir) if out_dir else root / f"test_{Path(str(config.data.dataset)).name}_{split}"
    check_evaluation_folder(out_dir, overwrite)
    settings = {
        "label": label, "model_kind": kind, "ensemble": ensemble, "precision": precision,
        "weights": str(source.weights) if source else None,
        "backbone": getattr(getattr(reconstructor, "network", None), "sei_architecture", None),
        "baseline_options": {k: v for k, v in options.items() if v is not None and k != "progress"},
        "physics": spec.to_dict(), "dataset": str(config.data.dataset), "split": split,
        "resize": config.data.resize, "noise_seed": config.data.noise_seed, "device": str(device),
        "sei": sei.__version__, "torch": torch.__version__,
        "data_range": data_range, "intensity": images.intensity.to_dict() if images.intensity else None,
    }
    scoring = describe_scoring(data_range, images.intensity)
    evaluation = evaluate(reconstructor, measurements, device, metric,
                          image_dir=out_dir / IMAGES_DIR if save_images else None, settings=settings,
                          progress=progress, data_range=data_range, scoring=scoring)
    metrics_path, summary_path = write_evaluation(evaluation, out_dir)
    return TestResult(evaluation, label, spec, images, scoring, metrics_path, summary_path, notes)
