"""One self-contained HTML page for training runs, evaluations, scores and restorations.

Given folders, the report finds training runs (``config.yaml`` with ``logs/``), evaluations (``summary.json`` with
``metrics.csv``, and the ``images/`` that ``sei test --save-images`` writes), scores (``scores.json`` of
``sei score``; a folder or the file itself) and ``sei restore`` outputs (a folder with the restore record
:data:`RESTORE_RECORD`, or an ``intensity.json`` sei wrote). It draws each run's loss terms and learning rate,
tabulates the evaluations (best per metric in bold, the gain over the blurry input, and what PSNR and SSIM were
computed on, as each evaluation recorded it), shows the same crop of a few images for every evaluation side by side
with the measurement, the reference and the error maps, tabulates each score file with its stated data range, and
shows restored images beside their inputs. Plots use matplotlib; every image is embedded, so the page is a single
file.
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
from sei.core.errors import ConfigError, SEIError
from sei.core.files import atomic_write_text, read_yaml_mapping
from sei.core.units import duration_text
from sei.inference.evaluation import IMAGES_DIR, METRICS_FILE, SUMMARY_FILE, describe_scoring
from sei.inference.scoring import SCORES_JSON, is_score_record
from sei.io.outputs import INTENSITY_RECORD, RESTORE_RECORD
from sei.physics.spec import DEGRADATION_FILE

__all__ = ["DEVELOPER_QUANTITIES", "VOLUME_VIEWS", "check_report_path", "crops_figure", "describe_task",
           "discover", "EvaluationRecord", "find", "Findings", "is_report", "orthogonal_views", "read_series", "render",
           "Restoration", "Run", "ScoreRecord", "training_figure", "write_report"]

_CROP = 96  # output pixels shown per image crop
_LINE_COLOUR = "#1f5f8b"
_MAX_IMAGES = 3
_MAX_RESTORED = 6  # restored files shown beside their inputs
_THUMBNAIL = 320  # longest side of a restored image's thumbnail, in pixels
# Logged quantities about the machine rather than the learning: shown in a collapsed section, not plotted.
DEVELOPER_QUANTITIES = ("train/data_wait_fraction", "train/samples_per_s")
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

    @property
    def training_summary(self) -> dict[str, Any]:
        """What a finished run recorded in ``train_summary.json`` (steps, epochs, seconds, final metrics); ``{}`` when
        there is none or it cannot be read (the report shows the rest)."""
        path = RunFolder(self.path).summary_path
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def seconds(self) -> float | None:
        """The wall-clock training time the run recorded when it finished (``None``: not recorded)."""
        value = self.training_summary.get("seconds")
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


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
    def is_input(self) -> bool:
        """Whether this evaluation scores the measurement itself (the blurry input): ``sei test --model-kind
        identity``, or the demo's evaluation labelled ``input``."""
        settings = self.summary.get("settings", {})
        kind = settings.get("model_kind")
        return kind == "identity" or (kind is None and str(settings.get("label")) == "input")

    @property
    def scoring(self) -> str:
        """What PSNR and SSIM were computed on, as the evaluation recorded it (``scoring`` in its summary, or derived
        from the ``data_range`` and ``intensity`` of its settings)."""
        recorded = self.summary.get("scoring")
        if isinstance(recorded, str) and recorded.strip():
            return recorded
        settings = self.summary.get("settings", {})
        if "data_range" in settings:
            from sei.io.intensity import IntensityMap

            data_range, intensity = settings.get("data_range"), settings.get("intensity")
            try:
                mapping = IntensityMap.from_dict(intensity) if isinstance(intensity, dict) else None
                return describe_scoring(float(data_range) if data_range is not None else None, mapping)
            except (SEIError, TypeError, ValueError):
                pass
        return ("8-bit full-range luma (assumed: this evaluation's summary.json does not record its scoring; sei "
                "scored so before it recorded it)")

    @property
    def data(self) -> str:
        """The dataset and split; a folder's path alone (folders have no splits)."""
        from sei.data.sources import NAMED_DATASETS  # here: torch is not needed to read a report otherwise

        settings = self.summary.get("settings", {})
        dataset = str(settings.get("dataset", "?"))
        if dataset.lower() in NAMED_DATASETS:
            return f"{dataset}/{settings.get('split', '?')}"
        return dataset.rstrip("/\\") or dataset


@dataclass
class ScoreRecord:
    """A ``scores.json`` that ``sei score`` wrote: the rule, border, per-file rows and the means."""

    path: Path
    data: dict[str, Any]

    @property
    def label(self) -> str:
        estimates = Path(str(self.data.get("estimates", "?"))).name or "?"
        references = Path(str(self.data.get("references", "?"))).name or "?"
        return f"{estimates} against {references}"


@dataclass
class Restoration:
    """A ``sei restore`` output folder: its restored files, each with its input when the folder records it.

    :ivar record: the folder's :data:`RESTORE_RECORD` (``{}`` when it has none).
    :ivar pairs: ``(output, input or None)``, sorted by output name.
    """

    path: Path
    record: dict[str, Any]
    pairs: list[tuple[Path, Path | None]]

    @property
    def source(self) -> str | None:
        source = self.record.get("source")
        return str(source) if source else None


def _restoration(folder: Path) -> Restoration | None:
    """The restore outputs in ``folder``: recognised by its :data:`RESTORE_RECORD`, or by an ``intensity.json`` sei
    wrote without the ``degradation.yaml`` of ``sei degrade`` beside it (outputs alone, their inputs unknown);
    ``None`` for any other folder."""
    from sei.io.images import is_image_file

    record: dict[str, Any] = {}
    if (folder / RESTORE_RECORD).is_file():
        record = _read_mapping(folder / RESTORE_RECORD, "json")
        files = record.get("files")
        inputs: dict[str, Path | None] = {}
        if isinstance(files, dict):
            inputs = {str(name): folder / str(source) for name, source in files.items() if source}
        elif record.get("source") and (folder / str(record["source"])).is_dir():
            by_stem = {path.stem: path for path in sorted((folder / str(record["source"])).iterdir())
                       if is_image_file(path)}
            inputs = {path.name: by_stem.get(path.stem) for path in folder.iterdir() if is_image_file(path)}
        elif record.get("source") and (folder / str(record["source"])).is_file():
            outputs = [path for path in folder.iterdir() if is_image_file(path)]
            inputs = {outputs[0].name: folder / str(record["source"])} if len(outputs) == 1 else {}
    elif (folder / INTENSITY_RECORD).is_file() and not (folder / DEGRADATION_FILE).is_file():  # not sei degrade's
        try:
            maps = json.loads((folder / INTENSITY_RECORD).read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            return None
        if not (isinstance(maps, dict) and maps and all(isinstance(v, dict) and "scale" in v for v in maps.values())):
            return None
        inputs = {str(name): None for name in maps}
    else:
        return None
    pairs = [(folder / name, source if source is None or source.is_file() else None)
             for name, source in sorted(inputs.items()) if (folder / name).is_file()]
    return Restoration(folder, record, pairs) if pairs else None


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


@dataclass
class Findings:
    """Everything reportable found in the folders given to the report."""

    runs: list[Run] = field(default_factory=list)
    evaluations: list[EvaluationRecord] = field(default_factory=list)
    scores: list[ScoreRecord] = field(default_factory=list)
    restorations: list[Restoration] = field(default_factory=list)


def _score_record(path: Path) -> ScoreRecord | None:
    """The scores in ``path`` if it is a ``scores.json`` that ``sei score`` wrote."""
    data = _read_mapping(path, "json")
    return ScoreRecord(path, data) if is_score_record(data) else None


def find(paths: list[str | Path], depth: int = 3) -> Findings:
    """Training runs, evaluations, scores and restore outputs in ``paths`` and their sub-folders (down to ``depth``
    levels); a ``scores.json`` may also be given as a file.

    :raises ConfigError: if a path does not exist, a record is malformed, or nothing reportable is found.
    """
    found = Findings()
    seen: set[Path] = set()
    partial: list[str] = []  # near misses, named when nothing else is found

    def add_score(record: ScoreRecord) -> None:
        if record.path.resolve() not in {known.path.resolve() for known in found.scores}:
            found.scores.append(record)

    def visit(folder: Path, level: int) -> None:
        folder = folder.resolve()
        if folder in seen or not folder.is_dir():
            return
        seen.add(folder)
        run = RunFolder(folder)
        # a run killed before its first logged step has a config and a logs folder, but no metrics.csv yet
        if run.has_config() and (run.metrics_log.is_file() or run.log_dir.is_dir()):
            config = _read_mapping(run.config_path, "yaml")
            found.runs.append(Run(folder, config, read_series(run.metrics_log) if run.metrics_log.is_file() else {}))
        if (folder / SUMMARY_FILE).is_file() and (folder / METRICS_FILE).is_file():
            try:
                with open(folder / METRICS_FILE, newline="") as file:
                    rows = list(csv.DictReader(file))
            except (csv.Error, UnicodeDecodeError) as error:
                raise ConfigError(f"{folder / METRICS_FILE} is malformed ({error})") from error
            summary = _read_mapping(folder / SUMMARY_FILE, "json")
            if not isinstance(summary.get("settings", {}), dict):
                raise ConfigError(f"{folder / SUMMARY_FILE} is malformed: its settings are not a mapping")
            found.evaluations.append(EvaluationRecord(folder, summary, rows))
        elif (folder / SUMMARY_FILE).is_file():
            partial.append(f"{folder / SUMMARY_FILE} has no {METRICS_FILE} beside it")
        elif run.has_config() and not run.is_sei_run():
            partial.append(f"{run.config_path} is not a configuration sei wrote")
        if (folder / SCORES_JSON).is_file():  # a file of that name that sei did not write is passed over
            try:
                record = _score_record(folder / SCORES_JSON)
            except ConfigError as error:
                record = None
                partial.append(str(error))
            else:
                if record is None:
                    partial.append(f"{folder / SCORES_JSON} is not a score file sei wrote")
            if record is not None:
                add_score(record)
        restoration = _restoration(folder)
        if restoration is not None:
            found.restorations.append(restoration)
        if level < depth:
            for child in sorted(p for p in folder.iterdir() if p.is_dir() and p.name not in run.own_folders):
                visit(child, level + 1)

    for path in paths:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"{path} does not exist")
        if path.is_file() and path.suffix.lower() == ".json":
            record = _score_record(path)
            if record is None:
                raise ConfigError(f"{path} is not a score file sei wrote (sei score's {SCORES_JSON}); give folders, "
                                  "or a scores.json")
            add_score(record)
            continue
        visit(path, 0)
    if not (found.runs or found.evaluations or found.scores or found.restorations):
        raise ConfigError(f"found no training run ({CONFIG_FILE} + logs) or evaluation ({SUMMARY_FILE} + "
                          f"{METRICS_FILE}), nor scores ({SCORES_JSON}) or restored images ({RESTORE_RECORD} or "
                          f"{INTENSITY_RECORD}) in {', '.join(map(str, paths))}"
                          + (f" ({'; '.join(partial[:3])})" if partial else ""))
    return found


def discover(paths: list[str | Path], depth: int = 3) -> tuple[list[Run], list[EvaluationRecord]]:
    """The training runs and evaluations that :func:`find` finds in ``paths``.

    :raises ConfigError: if a path does not exist or nothing reportable is found.
    """
    found = find(paths, depth)
    return found.runs, found.evaluations


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

    keys = [k for k in run.series if k.startswith(("train/", "val/")) and k not in DEVELOPER_QUANTITIES]
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
    """Measurement, each estimate, the reference and each error map, same crop, side by side (PNG data URI).

    The blurry input's evaluation (:attr:`EvaluationRecord.is_input`) is the measurement itself: it is shown once,
    as the measurement, with its error map beneath it.
    """
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
    inputs = [e for e in available if e.is_input]
    shown = [e for e in available if not e.is_input]
    title = "measurement" + (f" = {inputs[0].label}" if inputs else "")
    panels = [(title, measured[top:top + side, left:left + side])]
    estimates = [(e.label, _read_rgb(e.image_dir / f"{name}_estimate.png")[top:top + side, left:left + side])
                 for e in shown]
    truth = reference[top:top + side, left:left + side]
    panels += estimates + [("reference", truth)]
    errors = [(f"|error| {label}", np.abs(_luma(crop) - _luma(truth))) for label, crop in estimates]
    input_error = None
    if inputs:  # what the input's evaluation scored: its own estimate (the measurement, enlarged for SR)
        crop = _read_rgb(inputs[0].image_dir / f"{name}_estimate.png")[top:top + side, left:left + side]
        input_error = (f"|error| {inputs[0].label}", np.abs(_luma(crop) - _luma(truth)))
    every_error = errors + ([input_error] if input_error else [])
    vmax = max(max(float(np.percentile(err, 99)) for _, err in every_error), 1e-3)
    columns = len(panels)
    # constrained layout keeps every title clear of the row above it (tight_layout let the "|error|" titles
    # overlap the crops when the first panel of the second row is hidden)
    figure, axes = plt.subplots(2, columns, figsize=(2.3 * columns, 5.2), squeeze=False, layout="constrained")
    for axis, (label, crop) in zip(axes[0], panels):
        axis.imshow(np.clip(crop, 0, 1), interpolation="nearest")
        axis.set_title(label, fontsize=9)
    for axis in axes[1]:
        axis.set_visible(False)
    beneath = ([(axes[1][0], input_error)] if input_error else []) + list(zip(axes[1][1:], errors))
    for axis, (label, error) in beneath:
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


def _cell(summary: dict[str, Any], metric: str, digits: int, best: bool = False) -> str:
    if metric not in summary:
        return "n/a"
    if metric + "_std" not in summary:
        text = _number(summary[metric], digits)
    else:
        text = f"{_number(summary[metric], digits)} ± {_number(summary[metric + '_std'], digits)}"
    return f"<strong>{text}</strong>" if best else text


def _value(summary: dict[str, Any], metric: str) -> float | None:
    """A metric's mean as a finite number, or ``None``."""
    value = summary.get(metric)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


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


def _time_text(run: Run) -> str:
    """The run's training time, from what its folder records (``train_summary.json``, written when it finished)."""
    seconds = run.seconds
    if seconds is None:
        return ("training time: not recorded" if run.finished else
                "training time: not recorded (train_summary.json is written when training finishes)")
    steps = run.training_summary.get("steps")
    per_step = f", {seconds / steps:.3g} s per step" if isinstance(steps, int) and steps > 0 else ""
    count = f" for {steps} steps" if isinstance(steps, int) else ""
    return (f"training time: {duration_text(seconds)}{count}{per_step} (wall clock, recorded when training "
            "finished; a resumed run counts its last session only)")


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 1em 0; } th, td { padding: 0.3em 0.9em; border-bottom: 1px solid #ddd; }
th { text-align: left; background: #f3f5f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.unfinished { color: #a33; font-weight: 600; } tr.input td { color: #556; }
img { max-width: 100%; } .muted { color: #667; font-size: 0.9em; } figure { margin: 1em 0; }
details { margin: 1em 0; } summary { cursor: pointer; color: #445; }
td.thumb img { width: 320px; image-rendering: pixelated; }
"""


def _evaluation_section(evaluations: list[EvaluationRecord]) -> list[str]:
    """The metrics table: grouped by task and data, methods by PSNR (best first) with the blurry input last, the
    best of each metric in bold, the gain over the input, and what the scores were computed on."""
    groups: dict[tuple[str, str], list[EvaluationRecord]] = {}
    for record in evaluations:  # deblurring and super-resolution numbers, or two datasets', are not comparable
        groups.setdefault((record.task, record.data), []).append(record)
    scorings = list(dict.fromkeys(record.scoring for record in evaluations))
    parts = ["<h2>Metrics</h2><table><tr><th>evaluation</th><th>task</th><th>data</th><th>PSNR (dB)</th>"
             "<th>gain over input (dB)</th><th>SSIM</th><th>LPIPS</th><th>images</th></tr>"]
    for key in sorted(groups):
        records = groups[key]
        methods = sorted((r for r in records if not r.is_input),
                         key=lambda r: -(_value(r.summary, "psnr") if _value(r.summary, "psnr") is not None
                                         else -math.inf))
        inputs = [r for r in records if r.is_input]
        ordered = methods + inputs
        best: dict[str, float] = {}
        if len(ordered) > 1:  # "best" of one is no news
            for metric, pick in (("psnr", max), ("ssim", max), ("lpips", min)):
                values = [v for v in (_value(r.summary, metric) for r in ordered) if v is not None]
                if values:
                    best[metric] = pick(values)
        baseline = _value(inputs[0].summary, "psnr") if inputs else None
        for record in ordered:
            psnr = _value(record.summary, "psnr")
            if record.is_input:
                gain = "(the input)"
            elif psnr is not None and baseline is not None:
                gain = f"{psnr - baseline:+.2f}"
            else:
                gain = "n/a"
            marks = {metric: _value(record.summary, metric) == value for metric, value in best.items()}
            note = f"<sup>{scorings.index(record.scoring) + 1}</sup>" if len(scorings) > 1 else ""
            row_class = " class='input'" if record.is_input else ""
            parts.append(f"<tr{row_class}><td>{html.escape(record.label)}{note}</td>"
                         f"<td>{html.escape(record.task)}</td><td>{html.escape(record.data)}</td>"
                         f"<td class='num'>{_cell(record.summary, 'psnr', 2, marks.get('psnr', False))}</td>"
                         f"<td class='num'>{gain}</td>"
                         f"<td class='num'>{_cell(record.summary, 'ssim', 4, marks.get('ssim', False))}</td>"
                         f"<td class='num'>{_cell(record.summary, 'lpips', 4, marks.get('lpips', False))}</td>"
                         f"<td class='num'>{html.escape(str(record.summary.get('n', len(record.rows))))}</td></tr>")
    parts.append("</table>")
    if len(scorings) == 1:
        scoring = f"PSNR and SSIM on {html.escape(scorings[0])}"
    else:
        scoring = "PSNR and SSIM on " + "; ".join(f"<sup>{index}</sup> {html.escape(text)}"
                                                  for index, text in enumerate(scorings, start=1))
    parts.append("<p class='muted'>Mean ± standard deviation over images; " + scoring + "; LPIPS (AlexNet) on "
                 "RGB. Within each task and dataset, methods by PSNR (best first) and the blurry input last; the "
                 "best value of each metric in bold; gain over input: PSNR minus the blurry input's on the same "
                 "images.</p>")
    return parts


def _is_developer_quantity(key: str) -> bool:
    return key in DEVELOPER_QUANTITIES


def _run_section(run: Run) -> list[str]:
    """A run's settings, status and training time, its loss (first) and other learning quantities at their last
    step, its curves, and the machine's quantities (data loading, throughput) collapsed at the end."""
    parts = [f"<h2>Training: {html.escape(run.label)}</h2>",
             f"<p class='muted'>{html.escape(_settings_text(run.config))}</p>",
             f"<p class='{'muted' if run.finished else 'unfinished'}'>{html.escape(_status_text(run))}</p>",
             f"<p>{html.escape(_time_text(run))}</p>"]
    finals = {key: values[max(values)] for key, values in run.series.items() if values}
    learning = sorted((key for key in finals if not _is_developer_quantity(key)),
                      key=lambda k: (k != "train/loss", k.startswith("val/"), k == "train/lr", k))
    developer = sorted(key for key in finals if _is_developer_quantity(key))

    def table(keys: list[str]) -> str:
        rows = []
        for key in keys:
            value = html.escape(f"{finals[key]:.5g}")
            if key == "train/loss":
                value = f"<strong>{value}</strong>"
            rows.append(f"<tr><td>{html.escape(key)}</td><td class='num'>{value}</td>"
                        f"<td class='num'>{max(run.series[key])}</td></tr>")
        header = "<tr><th>logged quantity</th><th>last value</th><th>at step</th></tr>"
        return "<table>" + header + "".join(rows) + "</table>"

    if learning:
        parts.append(table(learning))
    if any(key.startswith(("train/", "val/")) and not _is_developer_quantity(key) for key in run.series):
        parts.append(f"<figure><img alt='training curves of {html.escape(run.label)}' "
                     f"src='{training_figure(run)}'></figure>")
    if developer:
        parts.append("<details><summary>machine quantities (data loading, throughput)</summary>"
                     + table(developer) + "<p class='muted'>data_wait_fraction: the share of step time spent "
                     "waiting for data; samples_per_s: training samples per second of compute.</p></details>")
    return parts


def _score_section(record: ScoreRecord) -> list[str]:
    """One ``scores.json``: its stated rule, one row per file (failures with their reason) and the mean ± std."""
    data = record.data
    parts = [f"<h2>Scores: {html.escape(record.label)}</h2>",
             f"<p class='muted'>{html.escape(str(data.get('rule', 'scoring rule not recorded')))}</p>",
             f"<p class='muted'>estimates {html.escape(str(data.get('estimates')))} · references "
             f"{html.escape(str(data.get('references')))} · {html.escape(str(record.path))}</p>",
             "<table><tr><th>file</th><th>PSNR (dB)</th><th>SSIM</th><th>peak</th><th>shape</th><th>note</th></tr>"]
    for row in data.get("rows", []):
        if not isinstance(row, dict):
            continue
        name = html.escape(str(row.get("name", "?")))
        if row.get("error"):
            parts.append(f"<tr><td>{name}</td><td colspan='5' class='unfinished'>failed: "
                         f"{html.escape(str(row['error']))}</td></tr>")
            continue
        psnr = _number(row["psnr"], 2) if row.get("psnr") is not None else "∞"  # recorded as null when infinite
        ssim = _number(row["ssim"], 4) if row.get("ssim") is not None else "n/a"
        peak = html.escape(f"{row['peak']:.6g}") if isinstance(row.get("peak"), (int, float)) else "?"
        parts.append(f"<tr><td>{name}</td><td class='num'>{psnr}</td><td class='num'>{ssim}</td>"
                     f"<td class='num'>{peak}</td><td>{html.escape(str(row.get('shape', '')))}</td>"
                     f"<td>{html.escape(str(row.get('note') or ''))}</td></tr>")
    summary = data.get("summary") if isinstance(data.get("summary"), dict) else {}
    parts.append(f"<tr><th>mean ± std ({html.escape(str(summary.get('n', '?')))} files)</th>"
                 f"<td class='num'><strong>{_cell(summary, 'psnr', 2)}</strong></td>"
                 f"<td class='num'><strong>{_cell(summary, 'ssim', 4)}</strong></td><td colspan='3'></td></tr>"
                 "</table>")
    unpaired = [Path(str(p)).name for key in ("only_estimates", "only_references") for p in data.get(key) or []]
    if unpaired:
        parts.append(f"<p class='muted'>not scored (no partner of the same name): "
                     f"{html.escape(', '.join(unpaired))}</p>")
    return parts


# How a z-stack is shown: sections through its centre, or maximum projections (sei.report.orthogonal_views).
VOLUME_VIEWS = ("section", "max")


def orthogonal_views(volume: np.ndarray, view: str = "section", z_scale: int = 1) -> np.ndarray:
    """A ``(D, H, W)`` volume as one image: xy at the top left, yz to its right (z across), xz below it (z down),
    each the section through the volume's centre (``view="section"``) or the maximum projection along the third
    axis (``"max"``); planes repeated ``z_scale`` times so that the z axis has its physical length; the corner and the
    one-pixel gaps hold the volume's minimum.

    >>> orthogonal_views(np.arange(24.0).reshape(2, 3, 4), "max", z_scale=2).shape  # (3 + 1 + 2*2, 4 + 1 + 2*2)
    (8, 9)
    """
    if view not in VOLUME_VIEWS:
        raise ConfigError(f"volume view must be one of {VOLUME_VIEWS}, got {view!r}")
    depth, height, width = volume.shape
    if view == "max":
        xy, xz, yz = volume.max(0), volume.max(1), volume.max(2)
    else:
        xy, xz, yz = volume[depth // 2], volume[:, height // 2], volume[:, :, width // 2]
    xz, yz = np.repeat(xz, z_scale, axis=0), np.repeat(yz, z_scale, axis=0).T  # (D', W) and (H, D')
    planes = xz.shape[0]
    montage = np.full((height + 1 + planes, width + 1 + planes), volume.min(), dtype=np.float64)
    montage[:height, :width] = xy
    montage[:height, width + 1:] = yz
    montage[height + 1:, :width] = xz
    return montage


def _shown_array(path: Path, view: str | None = None) -> tuple[np.ndarray, str]:
    """The first page of an image file, alpha left out, in its own units; and its dtype's name. With ``view``, a
    stack's :func:`orthogonal_views` (z stretched by its voxels' anisotropy where the file records it)."""
    from sei.io.images import read_image_file

    file = read_image_file(path)
    if view is not None and file.is_stack and all(page.ndim == 2 for page in file.pages):
        from sei.io.voxels import read_voxel_size

        try:
            anisotropy = read_voxel_size(path).anisotropy
        except SEIError:
            anisotropy = None
        z_scale = max(1, round(anisotropy)) if anisotropy else 1
        return orthogonal_views(np.stack(file.pages).astype(np.float64), view, min(z_scale, 8)), file.dtype.name
    page = file.pages[0]
    if page.ndim == 3:
        page = page[..., :3] if page.shape[2] >= 3 else page[..., 0]
    return page, file.dtype.name


def _restored_pair(output: Path, source: Path | None, view: str | None = None) -> tuple[str, str | None, bool]:
    """PNG data URIs of a restored file and its input (same display size, same intensity scale), and whether the
    scale was stretched (16-bit and float data: the input's 0.5-99.5 percentiles, else the output's); ``view``: how a
    z-stack is shown (:data:`VOLUME_VIEWS`), ``None`` for its first page."""
    from PIL import Image

    out, dtype = _shown_array(output, view)
    inp, in_dtype = _shown_array(source, view) if source is not None else (None, None)
    stretched = not (dtype == "uint8" and in_dtype in (None, "uint8"))
    if stretched:
        basis = (inp if inp is not None else out).astype(np.float64)
        low, high = (float(v) for v in np.percentile(basis, [0.5, 99.5]))
        if not high > low:
            low, high = float(basis.min()), float(basis.max())
        high = high if high > low else low + 1
    else:
        low, high = 0.0, 255.0
    height, width = out.shape[:2]
    scale = min(1.0, _THUMBNAIL / max(height, width))
    size = (max(round(width * scale), 1), max(round(height * scale), 1))

    def encode(array: np.ndarray) -> str:
        pixels = np.clip((array.astype(np.float64) - low) / (high - low), 0, 1) * 255
        image = Image.fromarray(np.round(pixels).astype(np.uint8))
        image = image.resize(size, Image.NEAREST if size[0] >= image.size[0] else Image.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")

    return encode(out), encode(inp) if inp is not None else None, stretched


def _restoration_section(restoration: Restoration) -> list[str]:
    """A ``sei restore`` output folder: its first files beside their inputs (outputs alone when the folder does not
    record its inputs)."""
    record = restoration.record
    known = any(source is not None for _, source in restoration.pairs)
    if restoration.source:
        origin = f"restored from {restoration.source}"
    else:
        origin = f"the inputs are not recorded in this folder ({RESTORE_RECORD}): outputs alone"
    details = [f"{key} {record[key]}" for key in ("model_kind", "weights") if record.get(key)]
    if isinstance(record.get("physics"), dict):
        details.append(describe_task(record["physics"]))
    parts = [f"<h2>Restored: {html.escape(restoration.path.name)}</h2>",
             f"<p class='muted'>{html.escape(' · '.join([str(restoration.path), origin, *details]))}</p>",
             "<table><tr><th>file</th>" + ("<th>input</th>" if known else "") + "<th>restored</th></tr>"]
    stretched_any = False
    physics = record.get("physics")
    volumes = isinstance(physics, dict) and physics.get("spatial_dims") == 3
    views = VOLUME_VIEWS if volumes else (None,)
    for output, source in restoration.pairs[:_MAX_RESTORED]:
        for view in views:
            name = html.escape(output.name + {"section": " (sections)", "max": " (max projections)"}.get(view, ""))
            try:
                restored, original, stretched = _restored_pair(output, source, view)
            except (SEIError, OSError) as error:
                parts.append(f"<tr><td>{name}</td><td colspan='2' class='unfinished'>cannot show: "
                             f"{html.escape(' '.join(str(error).split()))}</td></tr>")
                continue
            stretched_any |= stretched
            cells = ""
            if known:
                cells += (f"<td class='thumb'><img alt='input of {name}' src='{original}'></td>" if original else
                          "<td class='muted'>input not found</td>")
            cells += f"<td class='thumb'><img alt='{name} restored' src='{restored}'></td>"
            parts.append(f"<tr><td>{name}</td>{cells}</tr>")
    parts.append("</table>")
    shown = ("z-stacks as orthogonal views: xy, yz to the right, xz below, through the centre and as maximum "
             "projections" if volumes else "first page of stacks")
    notes = [f"{min(len(restoration.pairs), _MAX_RESTORED)} of {len(restoration.pairs)} file(s) shown; {shown}"]
    if stretched_any:
        notes.append("16-bit and float images shown with one contrast stretch per pair (the input's 0.5-99.5 "
                     "percentiles)")
    parts.append(f"<p class='muted'>{html.escape('; '.join(notes))}.</p>")
    return parts


def render(paths: list[str | Path], title: str = "SEI report") -> str:
    """The report's HTML for the runs, evaluations, scores and restore outputs found in ``paths`` (:func:`find`)."""
    import sei

    found = find(paths)
    runs, evaluations = found.runs, found.evaluations
    counts = f"{len(runs)} training run(s), {len(evaluations)} evaluation(s)"
    if found.scores:
        counts += f", {len(found.scores)} score file(s)"
    if found.restorations:
        counts += f", {len(found.restorations)} restore output folder(s)"
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'>{_GENERATOR}<title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
             f"<p class='muted'>sei {sei.__version__} · {datetime.now():%Y-%m-%d %H:%M} · {counts}</p>"]
    if evaluations:
        parts += _evaluation_section(evaluations)
    for record in found.scores:
        parts += _score_section(record)
    for run in runs:
        parts += _run_section(run)
    with_images = [e for e in evaluations if e.image_dir.is_dir()]
    if with_images:
        parts.append("<h2>Images</h2>")
        names = [str(row.get("name")) for row in with_images[0].rows if row.get("name")][:_MAX_IMAGES]
        for name in names:
            uri = crops_figure(name, with_images)
            if uri:
                parts.append(f"<figure><img alt='crops of {html.escape(name)}' src='{uri}'></figure>")
    for restoration in found.restorations:
        parts += _restoration_section(restoration)
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
