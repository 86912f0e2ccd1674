"""Restoring the user's own image files: reading, channel handling, reconstruction, writing.

Each file is read in its own channels: RGB goes through the network as is, grayscale is repeated to RGB and
averaged back, and an alpha channel is set aside and reattached (enlarged for super-resolution). A file that
cannot be read or restored is recorded and the others go on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from sei.errors import ImageError, SEIError
from sei.io import is_image_file, list_images, read_image, write_image


@dataclass
class RestoreReport:
    """Files written and files that failed (with the reason)."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def output_paths(source: Path, destination: Path, suffix: str = "png") -> list[tuple[Path, Path]]:
    """``(input, output)`` pairs: a folder maps to a folder of the same names, a file to a file or a folder.

    :raises ImageError: if the input does not exist, the output would overwrite an input, or two inputs would
        be written to one output (``b.jpg`` and ``b.jpeg`` both give ``b.png``).
    """
    if source.is_dir():
        pairs = [(path, destination / f"{path.stem}.{suffix}") for path in list_images(source)]
    elif source.is_file():
        target = destination if is_image_file(destination) else destination / f"{source.stem}.{suffix}"
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


def restore_image(reconstruct: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """Restore a ``(C, H, W)`` image with 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA) channels."""
    channels = image.shape[0]
    colour = image[:3] if channels >= 3 else image[:1].expand(3, -1, -1)
    alpha = image[-1:] if channels in (2, 4) else None
    estimate = reconstruct(colour[None].to(device))[0].float().cpu()
    if channels <= 2:
        estimate = estimate.mean(dim=0, keepdim=True)
    if alpha is not None:
        if alpha.shape[-2:] != estimate.shape[-2:]:
            alpha = F.interpolate(alpha[None], size=estimate.shape[-2:], mode="bicubic")[0].clamp(0, 1)
        estimate = torch.cat([estimate, alpha])
    return estimate


def restore_files(reconstruct: Callable[[torch.Tensor], torch.Tensor], pairs: list[tuple[Path, Path]],
                  device: torch.device | str = "cpu", bits: int = 8, progress: bool = True) -> RestoreReport:
    """Restore each input file into its output file; failures are recorded, not raised."""
    from tqdm.auto import tqdm

    report = RestoreReport()
    for source, target in tqdm(pairs, desc="restoring", unit="image", disable=not progress):
        try:
            image = read_image(source, channels=None)
            estimate = restore_image(reconstruct, image, device)
            if estimate.shape[0] == 2:  # image files have no gray+alpha layout we can write: store it as RGBA
                estimate = torch.cat([estimate[:1].expand(3, -1, -1), estimate[1:]])
            write_image(target, estimate, bits=bits)
            report.written.append(target)
        except (SEIError, RuntimeError, OSError) as error:
            report.failed.append((source, str(error)))
    return report
