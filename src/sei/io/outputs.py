"""Commands that turn input files into output files (``sei restore``, ``sei degrade``): where each output goes, and
a report of what was written and what failed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sei.core.errors import ImageError
from sei.io.images import is_image_file, list_images

__all__ = ["TIFF_SUFFIXES", "FileReport", "output_paths"]

TIFF_SUFFIXES = (".tif", ".tiff")


@dataclass
class FileReport:
    """Files written, and files that failed with the reason."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def output_paths(source: Path, destination: Path, suffix: str | None = "png") -> list[tuple[Path, Path]]:
    """``(input, output)`` pairs: a folder maps to a folder of the same names, a file to a file or a folder.

    :param suffix: the output format; ``None``: TIFF inputs stay TIFF (they may hold floats or stacks, which
        only TIFF can hold), others become PNG.

    :raises ImageError: if the input does not exist, the output would overwrite an input, or two inputs would
        be written to one output (``b.jpg`` and ``b.jpeg`` both give ``b.png``).
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
    return pairs
