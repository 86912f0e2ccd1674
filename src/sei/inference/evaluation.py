"""The paper's evaluation protocol on whole images: per-image PSNR/SSIM (and LPIPS), mean and std.

Each clean image gets its fixed measurement (noise seeded by its index), the reconstruction runs on the whole
measurement, and the metrics compare the 8-bit-quantised estimate and reference (see :mod:`sei.metrics`).
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

from sei.data.pairs import MeasurementSet
from sei.files import atomic_write_text
from sei.intensity import IntensityMap
from sei.io import write_image
from sei.metrics import psnr, ssim

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
) -> Evaluation:
    """Reconstruct every measurement of a set with ground truth and score it.

    :param reconstruct: ``(1, C, h, w)`` measurement -> ``(1, C, h r, w r)`` estimate.
    :param lpips: optional LPIPS metric (see :class:`sei.metrics.LPIPS`).
    :param image_dir: if given, write ``<name>_input.png``, ``<name>_estimate.png``, ``<name>_reference.png``.
    :param data_range: PSNR/SSIM peak in network units: ``None`` for the paper's protocol (8-bit quantised
        photographs), ``1.0`` for 16-bit or float data (no 8-bit rounding; see :func:`metric_data_range`).
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
        row: dict[str, Any] = {"index": index, "name": measurements.names[index],
                               "height": x.shape[-2], "width": x.shape[-1],
                               "psnr": psnr(estimate, x, data_range).item(),
                               "ssim": ssim(estimate, x, data_range).item()}
        if lpips is not None:
            row["lpips"] = lpips(estimate, x).item()
        rows.append(row)
        if image_dir is not None:
            name = measurements.names[index]
            write_image(Path(image_dir) / f"{name}_input.png", y[0])
            write_image(Path(image_dir) / f"{name}_estimate.png", estimate[0])
            write_image(Path(image_dir) / f"{name}_reference.png", x[0])
    return Evaluation(rows, summarise(rows, settings))


def write_evaluation(evaluation: Evaluation, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``metrics.csv`` (one row per image) and ``summary.json`` atomically; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(key for row in evaluation.rows for key in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows(evaluation.rows)
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
