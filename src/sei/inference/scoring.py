"""Scoring a user's own restorations against their own reference images (``sei score``).

Files are paired by name: the same stem in the estimates folder and the references folder (``cell_03.tif`` with
``cell_03.png``), or two single files, or one estimate file and the file of its stem in a references folder. Files
with no partner are named in one warning; no pair at all is an :class:`~sei.core.errors.ImageError`.

**What is computed**, the one statement of it (:func:`describe_rule`; printed by the command and recorded in
``scores.json``):

- in each file's own units, in float64: 16-bit counts stay counts, float data stay as stored; no conversion to 8 bits,
  no clamping;
- gray against gray, RGB against RGB (an alpha channel is left out); RGB is scored on the full-range luma
  ``Y = 0.299 R + 0.587 G + 0.114 B``, as ``sei test`` does (:mod:`sei.metrics`); any other difference of shape
  (size, channels, pages) fails that file, naming both shapes;
- ``border`` pixels are cut from each side of every page before anything is measured;
- the PSNR peak and SSIM's ``L`` (the *data range*) are, by ``data_range``:
  ``"reference"`` (default) each reference's own range, max − min of its scored pixels (all channels and pages),
  so 16-bit data with values 100..3000 get 2900, not 65535; ``"dtype"`` the full range of the reference's integer
  dtype (255 for 8-bit, 65535 for 16-bit; float data have none, and fail); or a number, the same for every file;
- multi-page TIFF stacks: PSNR from the mean squared error over all pages together, SSIM the mean over pages;
- SSIM is Wang et al.'s (Gaussian window 11, sigma 1.5, ``K1 = 0.01``, ``K2 = 0.03``, see :func:`sei.metrics.ssim`);
  pages smaller than the window have no SSIM (``None``, said in the row's note).

The means (± population standard deviation) are over the files scored; identical files (infinite PSNR) are left out
of the PSNR mean and counted.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sei.core.errors import ConfigError, ImageError, SEIError, SEIWarning
from sei.core.files import atomic_write_text
from sei.inference.evaluation import spreadsheet_safe
from sei.io.images import is_image_file, list_images, read_image_file
from sei.io.outputs import check_replaceable
from sei.metrics import LUMA_WEIGHTS, SSIM_SIGMA, SSIM_WINDOW, psnr, ssim

__all__ = ["DATA_RANGE_RULES", "SCORE_KIND", "SCORES_CSV", "SCORES_JSON", "FileScore", "ScoreResult",
           "default_out_dir", "describe_rule", "format_scores", "is_score_record", "pair_files", "peak_of",
           "score_arrays", "score_file", "score_files", "summarise_scores", "write_scores", "run_score"]

SCORES_CSV = "scores.csv"
SCORES_JSON = "scores.json"
SCORE_KIND = "sei score"  # the "kind" of a scores.json, by which `sei report` recognises it
DATA_RANGE_RULES = ("reference", "dtype")  # besides a number
_FORMAT = 1  # the layout of scores.json
_LISTED = 3  # file names listed in one line of a warning or an error


@dataclass
class FileScore:
    """One pair's scores, or why it could not be scored.

    :ivar shape: the scored shape, ``"64x80"``, ``"64x80 RGB"``, ``"5 pages of 64x80"`` (after the border is cut).
    :ivar peak: the data range used, in the file's own units.
    :ivar psnr: dB; ``inf`` for identical files; ``None`` when the file failed.
    :ivar ssim: ``None`` when the file failed or its pages are smaller than the SSIM window.
    :ivar error: why the pair could not be scored (``None`` when it was).
    """

    name: str
    estimate: str
    reference: str
    shape: str = ""
    dtype: str = ""
    peak: float | None = None
    psnr: float | None = None
    ssim: float | None = None
    note: str = ""
    error: str | None = None


@dataclass
class ScoreResult:
    """What ``sei score`` measured and where it wrote it."""

    rows: list[FileScore]
    summary: dict[str, Any]
    rule: str
    data_range: str | float
    border: int
    estimates: Path
    references: Path
    only_estimates: list[Path] = field(default_factory=list)
    only_references: list[Path] = field(default_factory=list)
    csv_path: Path | None = None
    json_path: Path | None = None

    @property
    def failed(self) -> list[FileScore]:
        return [row for row in self.rows if row.error is not None]


# -- pairing -------------------------------------------------------------------------------------------------------

def _by_stem(files: list[Path], folder: Path) -> dict[str, Path]:
    stems: dict[str, list[Path]] = {}
    for path in files:
        stems.setdefault(path.stem, []).append(path)
    clashes = {stem: paths for stem, paths in stems.items() if len(paths) > 1}
    if clashes:
        stem, paths = next(iter(clashes.items()))
        raise ImageError(f"{folder} holds {len(paths)} files named {stem} ({', '.join(p.name for p in paths)}); "
                         "pairing by name needs one per name: move the others away")
    return {stem: paths[0] for stem, paths in stems.items()}


def _names(paths: list[Path]) -> str:
    more = f" and {len(paths) - _LISTED} more" if len(paths) > _LISTED else ""
    return ", ".join(p.name for p in paths[:_LISTED]) + more


def pair_files(estimates: str | Path, references: str | Path) -> tuple[list[tuple[str, Path, Path]], list[Path],
                                                                       list[Path]]:
    """``(name, estimate, reference)`` pairs by stem, and the files of each side with no partner.

    Two folders pair their image files of the same stem; two files are one pair whatever their names; an estimate
    file pairs with the file of its stem in a references folder.

    :raises ImageError: if a path does not exist, a folder holds no image or two of one stem, or no pair is found.
    :raises ConfigError: for a folder of estimates against a single reference file.
    """
    estimates, references = Path(estimates), Path(references)
    for role, path in (("estimates", estimates), ("references", references)):
        if not path.exists():
            raise ImageError(f"{role} not found: {path}")
        if path.is_file() and not is_image_file(path):
            raise ImageError(f"{role} {path} is not an image file (expected a folder or an image file)")
    if estimates.is_file() and references.is_file():
        return [(estimates.stem, estimates, references)], [], []
    if estimates.is_dir() and references.is_file():
        raise ConfigError(f"estimates {estimates} is a folder and references {references} a single file; give two "
                          "folders (files paired by name), two files, or an estimate file and a references folder")
    ours = [estimates] if estimates.is_file() else list_images(estimates)
    theirs = _by_stem(list_images(references), references)
    mine = _by_stem(ours, estimates.parent if estimates.is_file() else estimates)
    pairs = [(stem, path, theirs[stem]) for stem, path in sorted(mine.items()) if stem in theirs]
    only_estimates = [path for stem, path in sorted(mine.items()) if stem not in theirs]
    only_references = [path for stem, path in sorted(theirs.items()) if stem not in mine]
    if not pairs:
        raise ImageError(f"no estimate has a reference of the same name (estimates in {estimates}: "
                         f"{_names(ours)}; references in {references}: {_names(sorted(theirs.values()))}); files "
                         "are paired by name without the extension")
    return pairs, only_estimates if estimates.is_dir() else [], only_references if estimates.is_dir() else []


# -- the measurement -------------------------------------------------------------------------------------------

def _stack(pages: list[np.ndarray]) -> np.ndarray:
    """Pages as one ``(P, H, W, C)`` float64 array, an alpha channel left out (gray+alpha -> gray, RGBA -> RGB)."""
    array = np.stack([page if page.ndim == 3 else page[:, :, None] for page in pages]).astype(np.float64)
    if array.shape[-1] in (2, 4):
        array = array[..., :-1]
    return array


def _describe_shape(array: np.ndarray) -> str:
    pages, height, width, channels = array.shape
    colour = {1: "", 3: " RGB"}.get(channels, f" {channels} channels")
    return (f"{pages} pages of " if pages > 1 else "") + f"{height}x{width}{colour}"


def peak_of(data_range: str | float, reference: np.ndarray, dtype: np.dtype | str) -> float:
    """The data range (PSNR peak, SSIM's ``L``) for one reference, in its own units.

    :param data_range: ``"reference"``: the reference's max − min; ``"dtype"``: its integer dtype's full range
        (255, 65535); a number: that number.
    :param reference: the scored pixels, any shape.
    :param dtype: the reference file's dtype.
    :raises ImageError: for a constant reference under ``"reference"``, or float data under ``"dtype"``.
    :raises ConfigError: for an unknown rule or a number that is not finite and > 0.

    >>> peak_of("reference", np.array([100.0, 3000.0]), "uint16"), peak_of("dtype", np.zeros(2), "uint16")
    (2900.0, 65535.0)
    """
    dtype = np.dtype(dtype)
    if data_range == "reference":
        low, high = float(reference.min()), float(reference.max())
        if not high > low:
            raise ImageError(f"the reference is constant (every value {low:g}), so its own range is 0; give "
                             "--data-range dtype or a number")
        return high - low
    if data_range == "dtype":
        if not np.issubdtype(dtype, np.integer):
            raise ImageError(f"the reference holds {dtype.name} data, which have no dtype range; give --data-range "
                             "reference (its own max - min) or a number")
        info = np.iinfo(dtype)
        return float(info.max) - float(info.min)
    if isinstance(data_range, str):
        raise ConfigError(f"unknown data range {data_range!r}; expected reference, dtype or a number")
    if not (math.isfinite(data_range) and data_range > 0):
        raise ConfigError(f"a data range must be a finite number > 0, got {data_range:g}")
    return float(data_range)


def score_arrays(estimate: np.ndarray, reference: np.ndarray, peak: float) -> tuple[float, float | None]:
    """PSNR (dB) and SSIM of two ``(P, H, W, C)`` stacks (``C`` 1 or 3) in the same units, with ``peak`` as the data
    range: PSNR from the mean squared error over all pages, SSIM the mean over pages (``None`` for pages smaller
    than the SSIM window). RGB is scored on its luma (:func:`sei.metrics.psnr`)."""
    x = torch.from_numpy(np.ascontiguousarray(estimate.transpose(0, 3, 1, 2)))
    y = torch.from_numpy(np.ascontiguousarray(reference.transpose(0, 3, 1, 2)))
    pages, channels, height, width = x.shape
    # the pages stacked one above the other make one image whose mean squared error is the whole stack's
    def tall(t: torch.Tensor) -> torch.Tensor:
        return t.permute(1, 0, 2, 3).reshape(1, channels, pages * height, width)

    value = float(psnr(tall(x), tall(y), peak).item())
    if min(height, width) < SSIM_WINDOW:
        return value, None
    values = [float(ssim(x[page:page + 1], y[page:page + 1], peak).item()) for page in range(pages)]
    return value, sum(values) / len(values)


def score_file(name: str, estimate: Path, reference: Path, data_range: str | float = "reference", border: int = 0,
               max_pixels: int | None = None) -> FileScore:
    """Score one pair (see the module for what is computed); a pair that cannot be scored is returned with its
    ``error``, not raised.

    :param border: pixels cut from each side of every page before scoring.
    :param max_pixels: the most pixels each file may hold (:func:`sei.io.images.check_pixel_count`).
    """
    row = FileScore(name, str(estimate), str(reference))
    try:
        ours, theirs = read_image_file(estimate, max_pixels), read_image_file(reference, max_pixels)
        x, y = _stack(ours.pages), _stack(theirs.pages)
        if x.shape != y.shape:
            raise ImageError(f"shapes differ: estimate {_describe_shape(x)}, reference {_describe_shape(y)}")
        both_integer = np.issubdtype(ours.dtype, np.integer) and np.issubdtype(theirs.dtype, np.integer)
        if both_integer and ours.dtype.itemsize != theirs.dtype.itemsize:
            raise ImageError(f"estimate {ours.dtype.name} and reference {theirs.dtype.name} are in different units; "
                             "write estimates in the references' dtype (sei restore keeps the input's dtype unless "
                             "--bits)")
        if border:
            height, width = x.shape[1:3]
            if 2 * border >= min(height, width):
                raise ImageError(f"a {border}-pixel border leaves nothing of {height}x{width}")
            x, y = x[:, border:-border, border:-border], y[:, border:-border, border:-border]
        row.shape, row.dtype = _describe_shape(y), theirs.dtype.name
        if y.shape[-1] not in (1, 3):
            raise ImageError(f"{y.shape[-1]} channels; only gray and RGB (with or without alpha) are scored")
        row.peak = peak_of(data_range, y, theirs.dtype)
        row.psnr, row.ssim = score_arrays(x, y, row.peak)
        if row.ssim is None:
            row.note = f"no SSIM: smaller than its {SSIM_WINDOW}x{SSIM_WINDOW} window"
        elif math.isinf(row.psnr):
            row.note = "identical to the reference"
    except (SEIError, OSError) as error:
        row.error = " ".join(str(error).split())
    return row


def _mean_std(values: list[float]) -> tuple[float, float] | None:
    if not values:
        return None
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def summarise_scores(rows: list[FileScore]) -> dict[str, Any]:
    """``n`` (files scored), ``failed``, ``identical`` (infinite PSNR, left out of the PSNR mean), and the mean and
    population standard deviation of ``psnr`` and ``ssim`` over the files that have them (absent when none)."""
    scored = [row for row in rows if row.error is None]
    summary: dict[str, Any] = {"n": len(scored), "failed": len(rows) - len(scored),
                               "identical": sum(1 for row in scored if row.psnr is not None and math.isinf(row.psnr))}
    for metric in ("psnr", "ssim"):
        values = [getattr(row, metric) for row in scored if getattr(row, metric) is not None]
        statistics = _mean_std([v for v in values if math.isfinite(v)])
        if statistics is not None:
            summary[metric], summary[f"{metric}_std"] = statistics
            summary[f"{metric}_n"] = sum(1 for v in values if math.isfinite(v))
    return summary


def describe_rule(data_range: str | float, border: int = 0) -> str:
    """The one sentence that says what the scores are (printed, and recorded in ``scores.json``)."""
    if data_range == "reference":
        peak = "each reference's own range (the max - min of its scored pixels) as peak"
    elif data_range == "dtype":
        peak = "the full range of each reference's dtype as peak (255 for 8-bit, 65535 for 16-bit)"
    else:
        peak = f"peak {float(data_range):g} (in the files' units) for every file"
    cut = f"{border}-pixel border excluded" if border else "no border excluded"
    luma = " + ".join(f"{weight:g} {channel}" for weight, channel in zip(LUMA_WEIGHTS, "RGB"))
    return (f"PSNR and SSIM with {peak}; {cut}; in each file's own units (float64); RGB on the luma Y = {luma}; "
            f"stacks: PSNR over all pages together, SSIM the mean over pages; SSIM window {SSIM_WINDOW}, "
            f"sigma {SSIM_SIGMA:g}, K1 0.01, K2 0.03")


def score_files(pairs: list[tuple[str, Path, Path]], data_range: str | float = "reference", border: int = 0,
                max_pixels: int | None = None, progress: bool = False) -> list[FileScore]:
    """:func:`score_file` for each ``(name, estimate, reference)`` pair."""
    from tqdm.auto import tqdm

    return [score_file(name, estimate, reference, data_range, border, max_pixels)
            for name, estimate, reference in tqdm(pairs, desc="scoring", unit="image", disable=not progress)]


# -- output ----------------------------------------------------------------------------------------------------------

def default_out_dir(estimates: str | Path) -> Path:
    """Where ``sei score`` writes when not told: ``<ESTIMATES>-scores`` beside the estimates folder (or beside an
    estimate file, named after its stem).

    >>> default_out_dir("/data/restored/").as_posix(), default_out_dir("/data/cell.tif").as_posix()
    ('/data/restored-scores', '/data/cell-scores')
    """
    path = Path(os.path.abspath(estimates))
    return path.parent / f"{path.stem if is_image_file(path) and not path.is_dir() else path.name}-scores"


def _finite_or_none(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def is_score_record(data: Any) -> bool:
    """Whether ``data`` (a parsed JSON file) is a ``scores.json`` that ``sei score`` wrote."""
    return isinstance(data, dict) and data.get("kind") == SCORE_KIND and isinstance(data.get("rows"), list)


def write_scores(result: ScoreResult, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``scores.csv`` (one row per pair; text a spreadsheet would run as a formula is quoted) and ``scores.json``
    (the rule, border, rows and means; infinite PSNR as ``null`` with the note ``identical to the reference``)
    atomically into ``out_dir``; return their paths. The collision policy is the caller's (:func:`run_score`)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [asdict(row) for row in result.rows]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(asdict(FileScore("", "", ""))))
    writer.writeheader()
    writer.writerows({key: spreadsheet_safe(value) for key, value in row.items()} for row in rows)
    csv_path = atomic_write_text(out_dir / SCORES_CSV, text.getvalue())
    import sei

    record = {
        "kind": SCORE_KIND, "format": _FORMAT, "sei": sei.__version__,
        "estimates": str(result.estimates), "references": str(result.references),
        "data_range": result.data_range, "border": result.border, "rule": result.rule,
        "summary": result.summary,
        "rows": [{**row, "psnr": _finite_or_none(row["psnr"])} for row in rows],
        "only_estimates": [str(p) for p in result.only_estimates],
        "only_references": [str(p) for p in result.only_references],
    }
    json_path = atomic_write_text(out_dir / SCORES_JSON, json.dumps(record, indent=2))
    return csv_path, json_path


def _cell(value: float | None, digits: int) -> str:
    if value is None:
        return "n/a"
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def format_scores(result: ScoreResult) -> str:
    """The terminal table: the rule, one line per pair (failures with their reason) and the mean ± std."""
    width = max([len(row.name) for row in result.rows] + [12]) + 2
    header = f"{'file':<{width}}{'PSNR (dB)':>12}{'SSIM':>10}{'peak':>12}  shape"
    lines = [result.rule, "", header, "-" * len(header)]
    for row in result.rows:
        if row.error is not None:
            lines.append(f"{row.name:<{width}}failed: {row.error}")
            continue
        note = f" ({row.note})" if row.note else ""
        lines.append(f"{row.name:<{width}}{_cell(row.psnr, 2):>12}{_cell(row.ssim, 4):>10}"
                     f"{row.peak:>12.6g}  {row.shape}{note}")
    summary = result.summary
    lines.append("-" * len(header))
    psnr_cell = f"{summary['psnr']:.2f} ± {summary['psnr_std']:.2f}" if "psnr" in summary else "n/a"
    ssim_cell = f"{summary['ssim']:.4f} ± {summary['ssim_std']:.4f}" if "ssim" in summary else "n/a"
    identical = f", {summary['identical']} identical (left out of the PSNR mean)" if summary["identical"] else ""
    lines.append(f"mean ± std over {summary['n']} file(s){identical}: PSNR {psnr_cell} dB, SSIM {ssim_cell}")
    return "\n".join(lines)


def run_score(estimates: str | Path, references: str | Path, out_dir: str | Path | None = None,
              data_range: str | float = "reference", border: int = 0, max_pixels: int | None = None,
              overwrite: bool = False, progress: bool = False) -> ScoreResult:
    """Pair, score and write (``sei score``): ``scores.csv`` and ``scores.json`` in ``out_dir`` (default
    :func:`default_out_dir`).

    :param data_range: ``"reference"``, ``"dtype"`` or a number (see the module).
    :param border: pixels excluded on each side (>= 0).
    :raises ImageError: if nothing can be paired, or no pair could be scored (the reasons named).
    :raises ConfigError: for a bad rule or border.
    :raises OutputExistsError: if the output files exist and ``overwrite`` is not set (checked before scoring).
    """
    if border < 0:
        raise ConfigError(f"the border must be 0 or more pixels, got {border}")
    if not isinstance(data_range, str):
        peak_of(data_range, np.zeros(1), "float64")  # a bad number is refused before anything is read
    elif data_range not in DATA_RANGE_RULES:
        raise ConfigError(f"unknown data range {data_range!r}; expected reference, dtype or a number")
    pairs, only_estimates, only_references = pair_files(estimates, references)
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(estimates)
    check_replaceable([out_dir / SCORES_CSV, out_dir / SCORES_JSON], overwrite)
    if only_estimates or only_references:
        sides = [f"{len(paths)} in {folder} ({_names(paths)})" for paths, folder in
                 ((only_estimates, estimates), (only_references, references)) if paths]
        warnings.warn(f"files with no partner of the same name, not scored: {'; '.join(sides)}", SEIWarning,
                      stacklevel=2)
    rows = score_files(pairs, data_range, border, max_pixels, progress)
    result = ScoreResult(rows, summarise_scores(rows), describe_rule(data_range, border), data_range, border,
                         Path(estimates), Path(references), only_estimates, only_references)
    if not any(row.error is None for row in rows):
        reasons = "; ".join(f"{row.name}: {row.error}" for row in rows[:_LISTED])
        more = f"; and {len(rows) - _LISTED} more" if len(rows) > _LISTED else ""
        raise ImageError(f"no pair could be scored ({reasons}{more})")
    result.csv_path, result.json_path = write_scores(result, out_dir)
    return result
