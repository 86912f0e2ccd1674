"""Commands that write files (``sei restore``, ``sei degrade``, ``sei test``, ``sei psf``): where each output goes,
the one policy for outputs that are already there, and a report of what was written and what failed.

The policy: **nothing is replaced unless it was asked for** (``--overwrite``). A command checks all its outputs
before it writes the first, so a refusal loses nothing and writes nothing; every file is then written under a
temporary name and renamed (:func:`sei.core.files.atomic_path`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from sei.core.errors import ImageError, OutputExistsError
from sei.core.files import atomic_write_text
from sei.io.images import is_image_file, list_images
from sei.io.intensity import IntensityMap, integer_map

__all__ = ["INTENSITY_RECORD", "RESTORE_RECORD", "TIFF_SUFFIXES", "FileReport", "check_intensity_records",
           "check_replaceable", "check_restore_records", "output_paths", "write_intensity_record",
           "write_restore_record"]

TIFF_SUFFIXES = (".tif", ".tiff")


# The record beside the outputs of ``sei restore`` and ``sei degrade``: each file's map between its values and the
# network's [0, 1] (sei.io.intensity), for every file that is not plain 8-bit.
INTENSITY_RECORD = "intensity.json"
# The record beside the outputs of ``sei restore``: which input each output came from, and how it was restored
# (read by ``sei report`` to show inputs and outputs side by side).
RESTORE_RECORD = "restore.json"
RESTORE_KIND = "sei restore"


@dataclass
class FileReport:
    """Files written, files that failed (with the reason), the intensity map of each file written, and how many
    images (a stack's pages) the written files hold."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    intensity: dict[Path, IntensityMap] = field(default_factory=dict)
    images: int = 0

    def summary(self, verb: str, total: int, destination: Path) -> str:
        """``"restored 1 of 1 file (6 images) into out"``: what was written, counting pages where files hold more
        than one image."""
        files = f"{len(self.written)} of {total} file{'s' if total != 1 else ''}"
        pages = f" ({self.images} images)" if self.images > len(self.written) else ""
        return f"{verb} {files}{pages} into {destination}"

    def failures(self, listed: int = 3) -> str:
        """The failures on one line: ``"2 failed: a.png: reason; b.tif: reason"`` (the first ``listed`` named)."""
        named = "; ".join(reason if path.name in reason else f"{path.name}: {reason}"
                          for path, reason in self.failed[:listed])
        more = f"; and {len(self.failed) - listed} more" if len(self.failed) > listed else ""
        return f"{len(self.failed)} failed: {named}{more}"


def check_replaceable(paths: list[Path], overwrite: bool) -> None:
    """The output-collision policy: refuse files that exist, unless ``overwrite``.

    >>> check_replaceable([Path("no/such/file.png")], overwrite=False)

    :raises OutputExistsError: naming the first few, and how to proceed.
    """
    existing = [path for path in paths if path.exists() or path.is_symlink()]
    if existing and not overwrite:
        names = ", ".join(str(path) for path in existing[:3]) + (f" and {len(existing) - 3} more"
                                                                 if len(existing) > 3 else "")
        raise OutputExistsError(f"{len(existing)} output file(s) already exist ({names}); nothing was written: "
                                "choose another output, or pass --overwrite to replace them")


def output_paths(source: Path, destination: Path, suffix: str | None = "png",
                 overwrite: bool = False) -> list[tuple[Path, Path]]:
    """``(input, output)`` pairs: a folder maps to a folder of the same names, a file to a file or a folder.

    :param suffix: the output format; ``None``: TIFF inputs stay TIFF (they may hold floats or stacks, which
        only TIFF can hold), others become PNG.
    :param overwrite: outputs that already exist may be replaced (see :func:`check_replaceable`).

    :raises ImageError: if the input does not exist, the output would overwrite an input, or two inputs would
        be written to one output (``b.jpg`` and ``b.jpeg`` both give ``b.png``).
    :raises OutputExistsError: if outputs exist and ``overwrite`` is not set.
    """
    def name(path: Path) -> str:
        if suffix is None:
            return path.stem + (path.suffix if path.suffix.lower() in TIFF_SUFFIXES else ".png")
        return f"{path.stem}.{suffix}"

    if source.is_dir():
        pairs = [(path, destination / name(path)) for path in list_images(source)]
    elif source.is_file():
        target = destination if is_image_file(destination) else destination / name(source)
        pairs = [(source, target)]
    else:
        raise ImageError(f"input not found: {source}")
    by_output: dict[Path, list[Path]] = {}
    for path, out in pairs:
        by_output.setdefault(out.resolve(), []).append(path)
    shared = [(out, paths) for out, paths in by_output.items() if len(paths) > 1]
    if shared:
        out, paths = shared[0]
        raise ImageError(f"{len(paths)} inputs would be written to the same file {out.name} "
                         f"({', '.join(p.name for p in paths)}"
                         + (f", and {len(shared) - 1} more such clash(es)" if len(shared) > 1 else "")
                         + "); rename them or restore them into separate folders")
    inputs = {path.resolve() for path, _ in pairs}
    clashes = [str(out) for _, out in pairs if out.resolve() in inputs]
    if clashes:
        raise ImageError(f"restoring would overwrite input file(s) {', '.join(clashes[:3])}; choose another output")
    check_replaceable([out for _, out in pairs], overwrite)
    return pairs


def _json_mapping(path: Path) -> dict | None:
    """The JSON object in ``path``, or ``None`` when it is unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _is_intensity_record(path: Path) -> bool:
    """Whether ``path`` holds a record sei wrote: a JSON mapping of file names to intensity maps."""
    data = _json_mapping(path)
    return data is not None and all(isinstance(v, dict) and "scale" in v for v in data.values())


def _refuse_foreign_records(targets: list[Path], name: str, is_ours, overwrite: bool) -> None:
    """Refuse (unless ``overwrite``) a record ``name`` beside the targets that ``is_ours`` does not recognise."""
    foreign = sorted({target.parent / name for target in targets
                      if (target.parent / name).exists() and not is_ours(target.parent / name)})
    check_replaceable(foreign, overwrite)


def check_intensity_records(targets: list[Path], overwrite: bool = False) -> None:
    """Refuse (unless ``overwrite``) to merge into an ``intensity.json`` that is not a record sei wrote.

    :raises OutputExistsError: naming the file.
    """
    _refuse_foreign_records(targets, INTENSITY_RECORD, _is_intensity_record, overwrite)


def write_intensity_record(report: FileReport) -> list[Path]:
    """Write, next to the outputs, ``intensity.json``: each output file's map between its values and the network's
    [0, 1] (``{name: {offset, scale, dtype}}``), in every output folder where a file is not plain 8-bit; merged
    with a record sei wrote there before (anything else there was refused or allowed by
    :func:`check_intensity_records` before the outputs were written).

    :return: the records written.
    :raises StorageError: when a record cannot be written (naming it).
    """
    plain = integer_map("uint8")
    by_folder: dict[Path, dict[str, dict]] = {}
    for target, mapping in report.intensity.items():
        by_folder.setdefault(target.parent, {})[target.name] = mapping.to_dict()
    written = []
    for folder, maps in by_folder.items():
        if all(IntensityMap.from_dict(m) == plain for m in maps.values()):
            continue
        path = folder / INTENSITY_RECORD
        previous = json.loads(path.read_text()) if _is_intensity_record(path) else {}
        atomic_write_text(path, json.dumps({**previous, **maps}, indent=2, sort_keys=True))
        written.append(path)
    return written


def _is_restore_record(path: Path) -> bool:
    """Whether ``path`` holds a record ``sei restore`` wrote."""
    data = _json_mapping(path)
    return data is not None and data.get("kind") == RESTORE_KIND


def check_restore_records(targets: list[Path], overwrite: bool = False) -> None:
    """Refuse (unless ``overwrite``) to merge into a ``restore.json`` that is not a record ``sei restore`` wrote.

    :raises OutputExistsError: naming the file.
    """
    _refuse_foreign_records(targets, RESTORE_RECORD, _is_restore_record, overwrite)


def write_restore_record(report: FileReport, pairs: list[tuple[Path, Path]], how: dict) -> list[Path]:
    """Write, next to the outputs, ``restore.json``: ``{"kind", "files": {output name: input path}, **how}`` for
    the outputs written (merged with a record ``sei restore`` wrote there before).

    :param how: what restored them (model kind, weights, operator), JSON-safe.
    :return: the records written.
    :raises StorageError: when a record cannot be written (naming it).
    """
    written_files = set(report.written)
    by_folder: dict[Path, dict[str, str]] = {}
    for source, target in pairs:
        if target in written_files:
            by_folder.setdefault(target.parent, {})[target.name] = str(source.resolve())
    written = []
    for folder, files in by_folder.items():
        path = folder / RESTORE_RECORD
        previous = json.loads(path.read_text()).get("files", {}) if _is_restore_record(path) else {}
        atomic_write_text(path, json.dumps({**how, "kind": RESTORE_KIND, "files": {**previous, **files}}, indent=2))
        written.append(path)
    return written
