"""One self-contained HTML page for training runs and evaluations: curves, metrics table, image crops.

Given folders, the report finds training runs (``config.yaml`` with ``logs/``) and evaluations
(``summary.json`` with ``metrics.csv``, and the ``images/`` that ``sei test --save-images`` writes). It draws each
run's loss terms and learning rate, tabulates the evaluations, and shows the same crop of a few images for every
evaluation side by side with the measurement, the reference and the error maps. Plots use matplotlib; every
image is embedded, so the page is a single file.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from sei.config.run_folder import CONFIG_FILE, RunFolder
from sei.core.errors import ConfigError
from sei.core.files import atomic_write_text, read_yaml_mapping
from sei.inference.evaluation import IMAGES_DIR, METRICS_FILE, SUMMARY_FILE

__all__ = ["check_report_path", "crops_figure", "describe_task", "discover", "EvaluationRecord", "is_report",
           "read_series", "render", "Run", "training_figure", "write_report"]

_CROP = 96  # output pixels shown per image crop
_LINE_COLOUR = "#1f5f8b"
_MAX_IMAGES = 3
# Marks the pages sei writes, so that `sei report --out` replaces its own reports and nothing else.
_GENERATOR = "<meta name='generator' content='sei report'>"


@dataclass
class Run:
    """A training run: its folder, settings and logged series (step -> value per metric)."""

    path: Path
    config: dict[str, Any]
    series: dict[str, dict[int, float]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return str(self.config.get("name") or self.path.name)

    @property
    def finished(self) -> bool:
        """Whether training ended normally: it writes ``weights.pt`` and ``train_summary.json`` last."""
        folder = RunFolder(self.path)
        return folder.weights_path.is_file() and folder.summary_path.is_file()

    @property
    def last_step(self) -> int | None:
        """The last step the log records, or None for a run killed before logging anything."""
        steps = [step for values in self.series.values() for step in values]
        return max(steps) if steps else None


@dataclass
class EvaluationRecord:
    """An evaluation: its folder, summary, per-image rows, and saved images (if any)."""

    path: Path
    summary: dict[str, Any]
    rows: list[dict[str, str]]

    @property
    def label(self) -> str:
        settings = self.summary.get("settings", {})
        if settings.get("label"):
            return str(settings["label"])
        return self.path.name if not self.path.name.startswith("test_") else self.path.parent.name

    @property
    def image_dir(self) -> Path:
        return self.path / IMAGES_DIR

    @property
    def task(self) -> str:
        """What the evaluation measured: the task, kernel or factor, and noise level."""
        physics = self.summary.get("settings", {}).get("physics") or {}
        return describe_task(physics) if isinstance(physics, dict) else "?"

    @property
    def data(self) -> str:
        """The dataset and split; a folder's path alone (folders have no splits)."""
        from sei.data.sources import NAMED_DATASETS  # here: torch is not needed to read a report otherwise

        settings = self.summary.get("settings", {})
        dataset = str(settings.get("dataset", "?"))
        if dataset.lower() in NAMED_DATASETS:
            return f"{dataset}/{settings.get('split', '?')}"
        return dataset.rstrip("/\\") or dataset


def describe_task(physics: dict[str, Any]) -> str:
    """``Gaussian_R2 deblurring, noise 5`` or ``x2 super-resolution, noise 5`` from a physics section."""
    kernel = physics.get("kernel")
    kernel = Path(str(kernel)).name if kernel is not None else None  # a kernel file: its name, not its folder
    if physics.get("task") == "sr":
        task = f"x{physics.get('sr_factor')} super-resolution" + (f" ({kernel})" if kernel else "")
    elif physics.get("task") is None:
        task = "?"
    else:
        task = f"{kernel} {physics.get('task')}"
    noise = physics.get("noise_level")
    return task + (f", noise {noise:g}" if isinstance(noise, (int, float)) else "")


def read_series(metrics_csv: Path) -> dict[str, dict[int, float]]:
    """Metric -> {step: value} from a Lightning CSV log; later rows win (a resumed run logs some steps twice).

    :raises ConfigError: naming the file if it is not such a log.
    """
    series: dict[str, dict[int, float]] = {}
    line = 1
    try:
        with open(metrics_csv, newline="") as file:
            for line, row in enumerate(csv.DictReader(file), start=2):
                step = int(float(row.get("step") or 0))
                for key, value in row.items():
                    if key in ("step", "epoch") or key is None or value in (None, ""):
                        continue
                    series.setdefault(key, {})[step] = float(value)
    except (ValueError, TypeError, csv.Error, UnicodeDecodeError) as error:
        raise ConfigError(f"{metrics_csv} is not a readable training log (line {line}: {error})") from error
    return series


def _read_mapping(path: Path, kind: str) -> dict[str, Any]:
    """The mapping in a YAML or JSON file, with an error naming the file if it is malformed."""
    advice = "fix or remove it, or leave its folder out"
    if kind == "yaml":
        try:
            return read_yaml_mapping(path)
        except ConfigError as error:
            reason = " ".join(str(error).split())
            raise ConfigError(f"{path} is malformed ({reason}); {advice}") from error
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        reason = " ".join(str(error).split())
        raise ConfigError(f"{path} is malformed ({reason}); {advice}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is malformed: it holds a {type(data).__name__}, not a mapping")
    return data


def discover(paths: list[str | Path], depth: int = 3) -> tuple[list[Run], list[EvaluationRecord]]:
    """Training runs and evaluations in ``paths`` and their sub-folders (down to ``depth`` levels).

    :raises ConfigError: if a path does not exist or nothing reportable is found.
    """
    runs: list[Run] = []
    evaluations: list[EvaluationRecord] = []
    seen: set[Path] = set()
    partial: list[str] = []  # near misses, named when nothing else is found

    def visit(folder: Path, level: int) -> None:
        folder = folder.resolve()
        if folder in seen or not folder.is_dir():
            return
        seen.add(folder)
        run = RunFolder(folder)
        # a run killed before its first logged step has a config and a logs folder, but no metrics.csv yet
        if run.has_config() and (run.metrics_log.is_file() or run.log_dir.is_dir()):
            config = _read_mapping(run.config_path, "yaml")
            runs.append(Run(folder, config, read_series(run.metrics_log) if run.metrics_log.is_file() else {}))
        if (folder / SUMMARY_FILE).is_file() and (folder / METRICS_FILE).is_file():
            try:
                with open(folder / METRICS_FILE, newline="") as file:
                    rows = list(csv.DictReader(file))
            except (csv.Error, UnicodeDecodeError) as error:
                raise ConfigError(f"{folder / METRICS_FILE} is malformed ({error})") from error
            summary = _read_mapping(folder / SUMMARY_FILE, "json")
            if not isinstance(summary.get("settings", {}), dict):
                raise ConfigError(f"{folder / SUMMARY_FILE} is malformed: its settings are not a mapping")
            evaluations.append(EvaluationRecord(folder, summary, rows))
        elif (folder / SUMMARY_FILE).is_file():
            partial.append(f"{folder / SUMMARY_FILE} has no {METRICS_FILE} beside it")
        elif run.has_config() and not run.is_sei_run():
            partial.append(f"{run.config_path} is not a configuration sei wrote")
        if level < depth:
            for child in sorted(p for p in folder.iterdir() if p.is_dir() and p.name not in run.own_folders):
                visit(child, level + 1)

    for path in paths:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"{path} does not exist")
        visit(path, 0)
    if not runs and not evaluations:
        raise ConfigError(f"found no training run ({CONFIG_FILE} + logs) or evaluation ({SUMMARY_FILE} + "
                          f"{METRICS_FILE}) in {', '.join(map(str, paths))}"
                          + (f" ({'; '.join(partial[:3])})" if partial else ""))
    return runs, evaluations


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")


def training_figure(run: Run) -> str:
    """A PNG data URI with one panel per logged training quantity (loss terms, learning rate, validation)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in run.series if k.startswith(("train/", "val/")) and k != "train/samples_per_s"]
    keys.sort(key=lambda k: (k.startswith("val/"), k == "train/lr", k != "train/loss", k))
    columns = min(3, max(len(keys), 1))
    rows = max(math.ceil(len(keys) / columns), 1)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 2.8 * rows), squeeze=False)
    for axis in axes.flat[len(keys):]:
        axis.set_visible(False)
    for axis, key in zip(axes.flat, keys):
        steps = np.array(sorted(run.series[key]))
        values = np.array([run.series[key][s] for s in steps])
        marker = "o" if len(values) < 5 else None
        smoothed = key.startswith("train/") and key != "train/lr" and len(values) >= 40
        axis.plot(steps, values, color="#9ab" if smoothed else _LINE_COLOUR, linewidth=0.8 if smoothed else 1.6,
                  marker=marker)
        if smoothed:  # the raw per-step values are noisy: overlay a moving average
            axis.plot(steps, _smooth(values, max(len(values) // 20, 1)), color=_LINE_COLOUR, linewidth=1.6)
        axis.set_title(key, fontsize=10)
        axis.set_xlabel("step", fontsize=8)
        axis.tick_params(labelsize=8)
        axis.grid(alpha=0.3)
        if key == "train/lr":
            axis.set_yscale("log")
    figure.suptitle(run.label, fontsize=11)
    figure.tight_layout()
    uri = _png(figure)
    plt.close(figure)
    return uri


def _read_rgb(path: Path) -> np.ndarray:
    from sei.io.images import read_image

    return read_image(path).permute(1, 2, 0).numpy()


def _luma(image: np.ndarray) -> np.ndarray:
    return image @ np.array([0.299, 0.587, 0.114])


def _crop_box(reference: np.ndarray, size: int) -> tuple[int, int, int]:
    """Top, left and side of the most textured ``size`` square of the reference (largest local variance)."""
    luma = _luma(reference)
    side = min(size, *luma.shape)
    best, best_box = -1.0, (0, 0)
    step = max(side // 4, 1)
    for top in range(0, luma.shape[0] - side + 1, step):
        for left in range(0, luma.shape[1] - side + 1, step):
            variance = float(luma[top:top + side, left:left + side].var())
            if variance > best:
                best, best_box = variance, (top, left)
    return best_box[0], best_box[1], side


def crops_figure(name: str, evaluations: list[EvaluationRecord]) -> str | None:
    """Measurement, each estimate, the reference and each error map, same crop, side by side (PNG data URI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    available = [e for e in evaluations if (e.image_dir / f"{name}_estimate.png").is_file()]
    if not available:
        return None
    reference = _read_rgb(available[0].image_dir / f"{name}_reference.png")
    measurement = _read_rgb(available[0].image_dir / f"{name}_input.png")
    top, left, side = _crop_box(reference, _CROP)
    ratio = reference.shape[0] // max(measurement.shape[0], 1)
    # measurements of super-resolution are smaller: show the matching region, enlarged
    measured = np.repeat(np.repeat(measurement, max(ratio, 1), 0), max(ratio, 1), 1)
    panels = [("measurement", measured[top:top + side, left:left + side])]
    estimates = [(e.label, _read_rgb(e.image_dir / f"{name}_estimate.png")[top:top + side, left:left + side])
                 for e in available]
    truth = reference[top:top + side, left:left + side]
    panels += estimates + [("reference", truth)]
    errors = [(f"|error| {label}", np.abs(_luma(crop) - _luma(truth))) for label, crop in estimates]
    vmax = max(max(float(np.percentile(err, 99)) for _, err in errors), 1e-3)
    columns = len(panels)
    # constrained layout keeps every title clear of the row above it (tight_layout let the "|error|" titles
    # overlap the crops when the first panel of the second row is hidden)
    figure, axes = plt.subplots(2, columns, figsize=(2.3 * columns, 5.2), squeeze=False, layout="constrained")
    for axis, (label, crop) in zip(axes[0], panels):
        axis.imshow(np.clip(crop, 0, 1), interpolation="nearest")
        axis.set_title(label, fontsize=9)
    for axis in axes[1]:
        axis.set_visible(False)
    for axis, (label, error) in zip(axes[1][1:], errors):
        axis.set_visible(True)
        axis.imshow(error, cmap="magma", vmin=0, vmax=vmax, interpolation="nearest")
        axis.set_title(label, fontsize=9)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(f"{name}: {side}x{side} px at ({top}, {left}); error scale 0-{vmax:.3f}", fontsize=10)
    uri = _png(figure)
    plt.close(figure)
    return uri


def _number(value: Any, digits: int) -> str:
    """A number with ``digits`` decimals, or the escaped text of anything else."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _cell(summary: dict[str, Any], metric: str, digits: int) -> str:
    if metric not in summary:
        return "n/a"
    if metric + "_std" not in summary:
        return _number(summary[metric], digits)
    return f"{_number(summary[metric], digits)} ± {_number(summary[metric + '_std'], digits)}"


def _settings_text(config: dict[str, Any]) -> str:
    physics, loss, model = config.get("physics", {}), config.get("loss", {}), config.get("model", {})
    train, data = config.get("train", {}), config.get("data", {})
    budget = f"{train.get('steps')} steps" if train.get("steps") else f"{train.get('epochs')} epochs"
    return (f"{loss.get('method')} · {describe_task(physics)} · {model.get('backbone')} · "
            f"{data.get('dataset')} · batch {data.get('batch_size')} · {budget} · lr {train.get('lr')}")


def _status_text(run: Run) -> str:
    if run.finished:
        return "finished"
    step = run.last_step
    return ("unfinished: stopped before its first logged step" if step is None else
            f"unfinished: stopped after step {step} (no weights.pt; resume it with sei train --resume)")


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 1em 0; } th, td { padding: 0.3em 0.9em; border-bottom: 1px solid #ddd; }
th { text-align: left; background: #f3f5f7; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.unfinished { color: #a33; font-weight: 600; }
img { max-width: 100%; } .muted { color: #667; font-size: 0.9em; } figure { margin: 1em 0; }
"""


def render(paths: list[str | Path], title: str = "SEI report") -> str:
    """The report's HTML for the runs and evaluations found in ``paths``."""
    import sei

    runs, evaluations = discover(paths)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'>{_GENERATOR}<title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
             f"<p class='muted'>sei {sei.__version__} · {datetime.now():%Y-%m-%d %H:%M} · "
             f"{len(runs)} training run(s), {len(evaluations)} evaluation(s)</p>"]
    if evaluations:
        parts.append("<h2>Metrics</h2><table><tr><th>evaluation</th><th>task</th><th>data</th><th>PSNR (dB)</th>"
                     "<th>SSIM</th><th>LPIPS</th><th>images</th></tr>")
        # grouped by task: deblurring and super-resolution numbers are not comparable
        for record in sorted(evaluations, key=lambda r: r.task):
            parts.append(f"<tr><td>{html.escape(record.label)}</td><td>{html.escape(record.task)}</td>"
                         f"<td>{html.escape(record.data)}</td>"
                         f"<td class='num'>{_cell(record.summary, 'psnr', 2)}</td>"
                         f"<td class='num'>{_cell(record.summary, 'ssim', 4)}</td>"
                         f"<td class='num'>{_cell(record.summary, 'lpips', 4)}</td>"
                         f"<td class='num'>{html.escape(str(record.summary.get('n', len(record.rows))))}</td></tr>")
        parts.append("</table><p class='muted'>Mean ± standard deviation over images; PSNR and SSIM on 8-bit "
                     "full-range luma, LPIPS (AlexNet) on RGB.</p>")
    for run in runs:
        parts.append(f"<h2>Training: {html.escape(run.label)}</h2>")
        status = _status_text(run)
        parts.append(f"<p class='muted'>{html.escape(_settings_text(run.config))}</p>"
                     f"<p class='{'muted' if run.finished else 'unfinished'}'>{html.escape(status)}</p>")
        finals = {key: values[max(values)] for key, values in sorted(run.series.items()) if values}
        if finals:
            parts.append("<table><tr><th>logged quantity</th><th>last value</th><th>at step</th></tr>" + "".join(
                f"<tr><td>{html.escape(key)}</td><td class='num'>{html.escape(f'{value:.5g}')}</td>"
                f"<td class='num'>{max(run.series[key])}</td></tr>" for key, value in finals.items()) + "</table>")
        if run.series:
            parts.append(f"<figure><img alt='training curves of {html.escape(run.label)}' "
                         f"src='{training_figure(run)}'></figure>")
    with_images = [e for e in evaluations if e.image_dir.is_dir()]
    if with_images:
        parts.append("<h2>Images</h2>")
        names = [str(row.get("name")) for row in with_images[0].rows if row.get("name")][:_MAX_IMAGES]
        for name in names:
            uri = crops_figure(name, with_images)
            if uri:
                parts.append(f"<figure><img alt='crops of {html.escape(name)}' src='{uri}'></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def is_report(path: Path) -> bool:
    """Whether ``path`` is an HTML report sei wrote (so that replacing it loses nothing)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            head = file.read(4096)
    except OSError:
        return False
    legacy = head.startswith("<!DOCTYPE html>") and "training run(s)," in head and "<p class='muted'>sei " in head
    return _GENERATOR in head or legacy


def check_report_path(out: str | Path) -> Path:
    """``out`` if a report may be written there: a new file, or a report sei wrote before.

    :raises ConfigError: for a folder, or an existing file that is not a sei report (it would be overwritten).
    """
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; name the HTML file to write, e.g. {out / 'report.html'}")
    if out.exists() and not is_report(out):
        raise ConfigError(f"--out {out} exists and is not a report sei wrote; it would be overwritten. "
                          "Choose another file name")
    return out


def write_report(paths: list[str | Path], out: str | Path, title: str = "SEI report") -> Path:
    """Render the report for ``paths`` and write it atomically to ``out``.

    :raises ConfigError: if ``out`` is a folder or a file sei did not write (see :func:`check_report_path`).
    """
    out = check_report_path(out)
    return atomic_write_text(out, render(paths, title))
