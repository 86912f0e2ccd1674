"""Restoring the user's own image files: reading, intensity map, channel handling, reconstruction, writing.

Each file is read in its own channels and dtype, mapped to the network's units by :mod:`sei.io.intensity` (8- and
16-bit data by their dtype's full range, float data by the network's recorded map or the file's robust range),
restored, and written back in its dtype and units (16-bit in, 16-bit out, same scale; a float TIFF keeps its
negative or large values) unless ``bits`` asks for 8 or 16 bits of the network's [0, 1]. A multi-page TIFF is a
stack of 2-D images: each page is restored and the stack written back (resolution and ImageJ unit carried over).
The channels follow :mod:`sei.data.channels`; an alpha channel is set aside and reattached (enlarged for
super-resolution). A file that cannot be read or restored is recorded and the others go on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sei.core.errors import SEIError
from sei.io.intensity import IntensityMap, data_map, integer_map
from sei.core.defaults import STACK_CHUNK_OVERLAP, STACK_CHUNK_PLANES, STACK_SAMPLE_PLANES
from sei.inference.tiling import planes_by_chunks
from sei.io.images import (
    ImageFile, StackHeader, image_tensor, read_image_file, read_image_sample, read_stack_header, skipped_entries,
    write_image_file, write_stack_planes,
)
from sei.io.outputs import (
    FileReport, check_intensity_records, check_restore_records, output_paths, write_intensity_record,
    write_restore_record,
)
from sei.io.voxels import VoxelSize, check_psf_sampling, read_psf_voxel_size, stated_voxel_size
from sei.physics.spec import PhysicsSpec

__all__ = ["NOISE_SAMPLE_IMAGES", "estimate_inputs_noise", "file_intensity", "restore", "restore_file", "restore_files", "restore_image",
           "restore_stack_by_chunks", "RestoreResult"]


def restore_image(reconstruct: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """Restore a ``(C, H, W)`` image with 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA) channels, or a ``(C, D, H, W)``
    volume."""
    channels = image.shape[0]
    if image.ndim == 4 and channels <= 2:  # a gray volume stays one channel: three would triple the work
        colour = image[:1]
    else:
        colour = image[:3] if channels >= 3 else image[:1].expand(3, *image.shape[1:])
    alpha = image[-1:] if channels in (2, 4) else None
    estimate = reconstruct(colour[None].to(device))[0].float().cpu()
    if channels <= 2:
        estimate = estimate.mean(dim=0, keepdim=True)
    if alpha is not None:
        if alpha.shape[-2:] != estimate.shape[-2:]:
            alpha = F.interpolate(alpha[None], size=estimate.shape[-2:], mode="bicubic")[0].clamp(0, 1)
        estimate = torch.cat([estimate, alpha])
    return estimate


def file_intensity(file: ImageFile, recorded: IntensityMap | None = None, name: str = "image") -> IntensityMap:
    """The map of one file to network units: the ``recorded`` map (the network's training set) when it is of the
    file's kind (float for float files, in the file's own dtype; the same dtype for integer files), else the file's
    own (:func:`sei.io.intensity.data_map`: its dtype's full range, or its robust range for floats and dim integers)."""
    if recorded is not None and np.issubdtype(file.dtype, np.floating) and not recorded.is_integer:
        return dataclasses.replace(recorded, dtype=file.dtype.name)
    if recorded is not None and recorded.dtype == file.dtype.name:
        return recorded
    return data_map(file.pages, name)


def restore_file(reconstruct: Callable[[torch.Tensor], torch.Tensor], source: Path, target: Path,
                 device: torch.device | str = "cpu", bits: int | None = None, upscale: int = 1,
                 recorded: IntensityMap | None = None, max_pixels: int | None = None,
                 volumes: bool = False, sampling: VoxelSize | None = None,
                 chunk_bytes: int | None = None) -> tuple[IntensityMap, int]:
    """Restore every page of ``source`` into ``target`` in the input's dtype and units (or ``bits`` of [0, 1]).

    :param upscale: the super-resolution factor: the estimate's metadata says so (:meth:`ImageFile.resampled`:
        an image's pixels per unit, a z-stack's planes and their spacing).
    :param volumes: restore the file's pages as one z-stack (a ``(C, D, H, W)`` volume, for a 3-D PSF), written back
        as a stack with the input's voxel size.
    :param sampling: the voxel size the PSF was made for (:func:`sei.io.voxels.read_psf_voxel_size`): a stack that
        states other voxels is refused.
    :param recorded: the map the network was trained with, used for float files (see :func:`file_intensity`).
    :param max_pixels: the most pixels the file may hold (:func:`sei.io.images.check_pixel_count`).
    :param chunk_bytes: a z-stack whose float32 copy is larger (default :data:`STACK_CHUNK_BYTES`) is restored a
        chunk of planes at a time (:func:`restore_stack_by_chunks`).
    :return: the map of the file written (data units <-> network units), and its number of images (its pages; a
        z-stack restored as one volume counts once).
    :raises SEIError: for a file that cannot be read, mapped or written.
    """
    if volumes:
        header = read_stack_header(source, max_pixels)
        if header is not None and header.too_large_to_hold(chunk_bytes):
            return restore_stack_by_chunks(reconstruct, header, target, device, bits, upscale, recorded,
                                           sampling), 1
    file = read_image_file(source, max_pixels)
    into = file_intensity(file, recorded, str(source))
    out = into if bits is None else integer_map(f"uint{bits}")
    if volumes:
        volume = file.volume(into.to_network, source, "restore")
        if sampling is not None:
            check_psf_sampling(sampling, stated_voxel_size(source), source.name, upscale)
        estimate = restore_image(reconstruct, volume, device)
        pages = [out.from_network(estimate[:, plane].numpy().transpose(1, 2, 0))
                 for plane in range(estimate.shape[1])]
    else:
        pages = []
        for page in file.pages:
            estimate = restore_image(reconstruct, image_tensor(into.to_network(page), None, source), device)
            if estimate.shape[0] == 2:  # image files have no gray+alpha layout we can write: store it as RGBA
                estimate = torch.cat([estimate[:1].expand(3, -1, -1), estimate[1:]])
            pages.append(out.from_network(estimate.numpy().transpose(1, 2, 0)))
    write_image_file(target, file.resampled(pages, upscale, volumes))
    return out, 1 if volumes else len(pages)


def restore_stack_by_chunks(reconstruct: Callable[[torch.Tensor], torch.Tensor], header: StackHeader, target: Path,
                            device: torch.device | str = "cpu", bits: int | None = None, upscale: int = 1,
                            recorded: IntensityMap | None = None, sampling: VoxelSize | None = None,
                            chunk: int = STACK_CHUNK_PLANES, overlap: int = STACK_CHUNK_OVERLAP) -> IntensityMap:
    """Restore a z-stack too large to hold as :func:`restore_file` restores one volume, a chunk of planes at a time:
    each chunk read from the file, restored (tiled laterally as ``reconstruct`` does), blended with its neighbours
    along z (:func:`sei.inference.tiling.planes_by_chunks`) and written plane by plane, so that memory holds a few
    copies of one chunk, not the stack. Its intensity map comes from :data:`STACK_SAMPLE_PLANES` planes spread
    over it.

    :param chunk: the most planes restored at once; ``overlap``: the planes neighbouring chunks share.
    :return: the map of the file written.
    """
    source = header.path
    if sampling is not None:
        check_psf_sampling(sampling, stated_voxel_size(source), source.name, upscale)
    into = file_intensity(header.sample(STACK_SAMPLE_PLANES), recorded, str(source))
    out = into if bits is None else integer_map(f"uint{bits}")
    depth = header.shape[0]
    chunk = min(depth, chunk)

    def read(start: int, stop: int) -> torch.Tensor:
        planes = [image_tensor(into.to_network(plane), None, source) for plane in header.read_planes(start, stop)]
        return torch.stack(planes, dim=1)[None]

    estimates = planes_by_chunks(lambda volume: restore_image(reconstruct, volume[0], device)[None], read, depth,
                                 chunk, min(overlap, chunk - 1), upscale=upscale)
    pages = (out.from_network(plane[0].numpy().transpose(1, 2, 0)) for plane in estimates)
    write_stack_planes(target, pages, depth * upscale,
                       header.metadata.resampled([], upscale, volume=True, depth=depth * upscale), np.dtype(out.dtype))
    return out


def restore_files(reconstruct: Callable[[torch.Tensor], torch.Tensor], pairs: list[tuple[Path, Path]],
                  device: torch.device | str = "cpu", bits: int | None = None, progress: bool = True,
                  upscale: int = 1, recorded: IntensityMap | None = None,
                  max_pixels: int | None = None, volumes: bool = False,
                  sampling: VoxelSize | None = None) -> FileReport:
    """Restore each input file into its output file (:func:`restore_file`); failures are recorded, not raised.

    :param bits: ``None`` to write each file in its input's dtype and units, 8 or 16 for that many bits of the
        network's [0, 1].
    """
    from tqdm.auto import tqdm

    report = FileReport()
    for source, target in tqdm(pairs, desc="restoring", unit="image", disable=not progress):
        try:
            report.intensity[target], images = restore_file(reconstruct, source, target, device, bits, upscale,
                                                            recorded, max_pixels, volumes, sampling)
            report.images += images
            report.written.append(target)
        except (SEIError, RuntimeError, OSError) as error:
            report.failed.append((source, str(error)))
    return report


@dataclass
class RestoreResult:
    """What ``sei restore`` did: the files, the operator and where it came from, the precision and why."""

    report: FileReport
    pairs: list[tuple[Path, Path]]
    physics: PhysicsSpec | None
    origin: str
    precision: str
    precision_reason: str | None
    records: list[Path]
    noise_estimate: str | None = None
    ensemble: int = 0  # the flips and rotations a network's estimates were averaged over (0: none)


def _precision_for(precision: str, kind: str, pairs: list[tuple[Path, Path]], bits: int | None,
                   device: torch.device) -> tuple[str, str | None]:
    """The precision a restore runs in, and why when it was ``auto`` for a network (None otherwise)."""
    from sei.config.recipe import AUTO, resolve_inference_precision
    from sei.io.images import holds_8bit_pixels

    if precision != AUTO:
        return precision, None
    if kind != "network":
        return "32-true", None  # the baselines compute in their own precision
    eight_bit = bits in (None, 8) and all(holds_8bit_pixels(path) for path, _ in pairs)
    precision = resolve_inference_precision(precision, device, eight_bit)
    why = ("8-bit data, native bf16" if precision == "bf16-mixed" else
           f"no native bf16 on {device}" if eight_bit else "inputs or outputs not all 8-bit")
    return precision, why


# At most this many images (files, or pages of stacks) are read to estimate an ``auto`` noise level.
NOISE_SAMPLE_IMAGES = 32


def estimate_inputs_noise(spec: PhysicsSpec, sources: list[Path], recorded: IntensityMap | None = None,
                          max_pixels: int | None = None) -> tuple[PhysicsSpec, str]:
    """``spec`` with its ``"auto"`` noise level (and gain) estimated from the files to restore, and a line that
    says so in the data's own units.

    Up to :data:`NOISE_SAMPLE_IMAGES` images, spread evenly over the files, are read in network units (the map
    each file is restored with) and estimated as a training run's measurements are
    (:func:`sei.physics.noise_estimation.estimate_spec_noise`).

    :raises ConfigError: for ``learn``, which only training can do.
    :raises ImageError: when no file can be read or their noise cannot be estimated.
    """
    from sei.core.errors import ConfigError, ImageError
    from sei.physics.noise_estimation import estimate_spec_noise
    from sei.physics.spec import LEARNED
    from sei.io.intensity import noise_level_text

    if spec.noise_level == LEARNED:
        raise ConfigError("--noise-level learn is learned while training; to restore, give a number or auto")
    sampled = sources[::max(1, len(sources) // NOISE_SAMPLE_IMAGES)]
    pages_per_file = max(1, NOISE_SAMPLE_IMAGES // len(sampled))
    images, maps, failures = [], set(), []
    for path in sampled:
        try:
            file = read_image_sample(path, max_pixels)  # a stack too large to hold: planes spread over it
            into = file_intensity(file, recorded, str(path))
        except SEIError as error:
            failures.append(str(error))
            continue
        maps.add(into)
        for page in file.pages[:pages_per_file]:
            images.append(image_tensor(into.to_network(page), None, path))
        if len(images) >= NOISE_SAMPLE_IMAGES:
            break
    if not images:
        raise ImageError(f"no input could be read to estimate the noise level: {failures[0] if failures else ''}")
    estimated = estimate_spec_noise(spec, images)
    gain = f", gain {estimated.gain:.4g}" if estimated.gain is not None else ""
    intensity = maps.pop() if len(maps) == 1 else None
    return estimated, (f"noise estimated from {len(images)} input image(s): level "
                       f"{noise_level_text(estimated.noise_level, intensity)}{gain}")


def restore(source: str | Path, destination: str | Path, model_kind: str = "network", weights: str | None = None,
            physics: PhysicsSpec | None = None, backbone: str | None = None,
            baseline_options: dict[str, Any] | None = None, tile: int = 0, overlap: int = 32,
            ensemble: bool | None = None, precision: str = "auto", bits: int | None = None, suffix: str | None = None,
            device: str = "auto", download: bool = False, progress: bool = True,
            overwrite: bool = False, max_pixels: int | None = None) -> RestoreResult:
    """Restore an image file or a folder of them with a trained network or a baseline (``sei restore``).

    :param weights: a weights file, a run folder, a zoo package ``sei export`` wrote, or a published name
        (``model_kind="network"``).
    :param physics: the operator options given (``None`` fields where not given); what they leave open comes from
        the network's record, else the input folder's ``degradation.yaml``; baselines need one of the three.
    :param ensemble: average a network's estimates over the flips and rotations the operator allows; ``None``: for
        images whose operator allows any (:func:`sei.inference.ensemble.ensemble_by_default`), not for volumes.
    :param suffix: the output format (``png``, ``tif``); ``None``: TIFF stays TIFF, the rest becomes PNG.
    :param precision: ``auto`` (:func:`sei.config.recipe.resolve_inference_precision`), ``32-true`` or
        ``bf16-mixed``.
    :param overwrite: outputs that already exist may be replaced (otherwise they are refused before anything is
        written: :func:`sei.io.outputs.check_replaceable`).
    :param max_pixels: the most pixels one file may hold (:func:`sei.io.images.check_pixel_count`).
    :raises ConfigError: for options that do not fit together; a file that fails is recorded in the report.
    :raises OutputExistsError: for outputs that exist when ``overwrite`` is not set.
    """
    from sei.config.sources import choose_physics, locate_network
    from sei.core.devices import torch_device
    from sei.inference.baselines import canonical_kind
    from sei.inference.reconstructors import open_reconstructor

    target = torch_device(device)
    kind = canonical_kind(model_kind)
    network = locate_network(weights, download=download) if weights and kind == "network" else None
    spec, origin = choose_physics(physics or PhysicsSpec(), network, source, required=kind != "network")
    pairs = output_paths(Path(source), Path(destination), suffix, overwrite)
    check_intensity_records([target for _, target in pairs], overwrite)
    check_restore_records([target for _, target in pairs], overwrite)
    # float data go through the map the network was trained with, when its run (or package) recorded one
    recorded = IntensityMap.from_dict(network.intensity) if network is not None and network.intensity else None
    if recorded is None:  # dim integer inputs share one map: the one sei degrade recorded, else their set's
        from sei.data.degradation import files_intensity, recorded_intensity

        folder = Path(source) if Path(source).is_dir() else Path(source).parent
        recorded = recorded_intensity(folder) or files_intensity([path for path, _ in pairs], max_pixels)
    estimated = None
    if spec is not None and spec.needs_estimate:
        spec, estimated = estimate_inputs_noise(spec, [path for path, _ in pairs], recorded, max_pixels)
        origin = f"{origin}; the noise level from the inputs"
    operator = spec.build().to(target) if spec is not None else None
    precision, why = _precision_for(precision, kind, pairs, bits, target)
    if ensemble is None:
        from sei.inference.ensemble import ensemble_by_default

        ensemble = kind == "network" and ensemble_by_default(operator)
    reconstructor = open_reconstructor(kind, operator, network, baseline_options, backbone=backbone, tile=tile,
                                       overlap=overlap, ensemble=ensemble, precision=precision).to(target)
    upscale = spec.upscale if spec is not None else getattr(reconstructor, "upscale", 1)
    volumes = spec is not None and spec.dimensionality == 3
    report = restore_files(reconstructor, pairs, target, bits=bits, progress=progress, upscale=upscale,
                           recorded=recorded, max_pixels=max_pixels, volumes=volumes,
                           sampling=read_psf_voxel_size(spec.kernel) if volumes else None)
    if Path(source).is_dir():  # broken links and the like are named with the files that failed
        report.failed += skipped_entries(Path(source))
    how = {"model_kind": kind, "weights": str(network.weights) if network is not None else None,
           "physics": spec.to_dict() if spec is not None else None}
    try:
        records = write_intensity_record(report)
        write_restore_record(report, pairs, how)
    except SEIError as error:  # a full disk: reported beside the files that failed, which are named too
        report.failed.append((Path(destination), str(error)))
        records = []
    return RestoreResult(report, pairs, spec, origin, precision, why, records, estimated,
                         len(getattr(reconstructor, "transforms", ())))
