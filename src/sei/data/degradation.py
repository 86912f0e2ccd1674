"""Simulated measurements of clean image files, and the ``degradation.yaml`` that records how they were made.

The record is the physics spec (plus the seed, resizing and bit depth), with a kernel file copied into the output
folder, so the folder is self-contained: ``sei train --measurements`` and ``sei restore`` read the operator from
it and need no physics options.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import torch
import yaml

from sei.core.errors import SEIError
from sei.core.scaling import decimable
from sei.core.files import atomic_write_text
from sei.io.images import (
    ImageFile, image_tensor, read_image_file, read_image_sample, skipped_entries, write_image_file,
)
from sei.io.intensity import IntensityMap, combined_map, data_map, integer_map
from sei.io.outputs import FileReport, write_intensity_record
from sei.physics.spec import DEGRADATION_FILE, PhysicsSpec

__all__ = ["degrade", "degrade_file", "degrade_files", "write_degradation_record"]


def write_degradation_record(folder: str | Path, spec: PhysicsSpec, **details) -> Path:
    """Write ``folder/degradation.yaml`` for resolved ``spec``, a kernel file or tensor copied into the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    values = spec.to_dict()
    copy = spec.copy_kernel(folder)
    if copy is not None:
        values["kernel"] = copy.name
    values.pop("operator", None)
    return atomic_write_text(folder / DEGRADATION_FILE, yaml.safe_dump({**values, **details}, sort_keys=False))


def files_intensity(paths: Sequence[Path], max_pixels: int | None = None) -> IntensityMap | None:
    """One map for a set of integer files that are dim (:mod:`sei.io.intensity`): the robust range of all their
    pages, so that one noise level and one photon gain hold for every file. ``None`` when the files are float,
    mixed, or fill their dtype's range (each file's own map is then the same as the set's, or its float range).
    Unreadable files are left out (they fail where they are used)."""
    maps = []
    for path in paths:
        try:
            maps.append(data_map(read_image_sample(path, max_pixels).pages, str(path)))
        except SEIError:
            continue
    combined = combined_map(maps)
    if combined is None or not combined.is_integer or combined == integer_map(combined.dtype):
        return None
    return combined


def recorded_intensity(folder: str | Path) -> IntensityMap | None:
    """The map ``sei degrade`` wrote a folder's dim integer measurements with (``intensity`` in its
    ``degradation.yaml``), in whose units the record's noise level and gain are; ``None`` if it records none."""
    path = Path(folder) / DEGRADATION_FILE
    if not path.is_file():
        return None
    from sei.core.files import read_yaml_mapping

    values = read_yaml_mapping(path, DEGRADATION_FILE).get("intensity")
    return IntensityMap.from_dict(values) if isinstance(values, dict) else None


def _measured_page(physics: torch.nn.Module, spec: PhysicsSpec, image: torch.Tensor, resize: int | None,
                   generator: torch.Generator, name: str, max_pixels: int | None = None) -> torch.Tensor:
    """The measurement of one ``(C, H, W)`` page in network units: resized, cropped to the factor, measured."""
    from sei.data.preprocess import resize_shorter_side
    from sei.physics.noise import check_photon_data, measure

    if image.shape[0] in (2, 4):  # alpha is not measured
        image = image[:-1]
    if resize:
        image = resize_shorter_side(image, resize, name, max_pixels)
        if spec.noise == "poisson-gaussian":  # bicubic undershoot near edges is no negative light
            image = image.clamp_min(0)
    image = decimable(image, spec.upscale)
    if spec.noise == "poisson-gaussian":
        check_photon_data(image, name)
    with torch.no_grad():
        return measure(physics, image[None], generator)[0]


def degrade_file(physics: torch.nn.Module, spec: PhysicsSpec, source: Path, target: Path, seed: int, index: int,
                 resize: int | None = None, bits: int | None = None, max_pixels: int | None = None,
                 intensity: IntensityMap | None = None) -> IntensityMap:
    """Write the measurement ``A x + e`` of every page of ``source`` to ``target``, in the input's dtype and units.

    The file goes to the network's units by its map (:func:`sei.io.intensity.data_map`: 8- and 16-bit data by
    their dtype's range, float data by their robust range), is measured there, and comes back through the same
    map: a float TIFF gives a float TIFF of the same units, a 16-bit file a 16-bit file on the same scale; a stack
    gives a stack. The noise of file ``index`` is seeded by ``("measurement", seed, index)`` (and the page, for a
    stack's pages); a TIFF's resolution (pixels per unit) shrinks with the super-resolution factor.

    :param bits: 8 or 16 bits of the network's [0, 1] instead of the input's dtype and units.
    :param intensity: the set's map (:func:`files_intensity`), used for files of its dtype.
    :return: the map of the file written (data units <-> network units).
    :raises SEIError: for a file that cannot be read, mapped, measured or written.
    """
    from sei.core.rng import make_generator

    file = read_image_file(source, max_pixels)
    into = intensity if intensity is not None and intensity.dtype == file.dtype.name else data_map(file.pages,
                                                                                                     str(source))
    out = into if bits is None else integer_map(f"uint{bits}")
    if spec.dimensionality == 3:
        return _degrade_volume(physics, spec, file, source, target, into, out, make_generator("measurement", seed,
                                                                                              index), resize)
    pages = []
    for page_index, page in enumerate(file.pages):
        keys = ("measurement", seed, index, page_index) if file.is_stack else ("measurement", seed, index)
        image = image_tensor(into.to_network(page), None, source)  # grayscale stays one channel: one noise draw
        measurement = _measured_page(physics, spec, image, resize, make_generator(*keys), str(source), max_pixels)
        pages.append(out.from_network(measurement.numpy().transpose(1, 2, 0)))
    measured = file.resampled(pages, 1 / spec.upscale)  # pixels per unit shrink with the decimation
    if resize:  # a resized image's pixels no longer have the file's size
        measured = dataclasses.replace(measured, resolution=None)
    write_image_file(target, measured)
    return out


def _degrade_volume(physics: torch.nn.Module, spec: PhysicsSpec, file: ImageFile, source: Path, target: Path,
                    into: IntensityMap, out: IntensityMap, generator: torch.Generator, resize: int | None
                    ) -> IntensityMap:
    """A z-stack measured as one volume through a 3-D PSF, written as a stack with its voxel size: the same ``z``
    spacing for deblurring, ``r`` times it when every ``r``-th plane is kept (the stack is cut to a multiple of
    ``r`` planes first)."""
    from sei.core.errors import ImageError
    from sei.io.voxels import check_psf_sampling, read_psf_voxel_size, stated_voxel_size
    from sei.physics.noise import check_photon_data, measure

    if resize:
        raise ImageError(f"{source}: --resize resizes images, not z-stacks; resample the stack beforehand")
    volume = decimable(file.volume(into.to_network, source, "degrade"), spec.upscale)
    if spec.kernel_is_file:
        check_psf_sampling(read_psf_voxel_size(spec.kernel), stated_voxel_size(source), source.name)
    if spec.noise == "poisson-gaussian":
        check_photon_data(volume, str(source))
    with torch.no_grad():
        measurement = measure(physics, volume[None], generator)[0]
    pages = [out.from_network(measurement[:, plane].numpy().transpose(1, 2, 0))
             for plane in range(measurement.shape[1])]
    write_image_file(target, file.resampled(pages, 1 / spec.upscale, volume=True))
    return out


def degrade_files(spec: PhysicsSpec, pairs: Sequence[tuple[Path, Path]], seed: int = 0, resize: int | None = None,
                  bits: int | None = None, progress: bool = True, max_pixels: int | None = None,
                  intensity: IntensityMap | None = None) -> FileReport:
    """Write the measurement of each input file to its output file (:func:`degrade_file`); a file that fails is
    recorded in the report (with the reason) and the others go on.

    Images are cropped at the bottom/right to a multiple of the super-resolution factor.

    :param bits: ``None`` to write each file in its input's dtype and units, 8 or 16 for that many bits of the
        network's [0, 1].
    :param intensity: one map for the files of its dtype (:func:`files_intensity` of dim integer files).
    """
    from tqdm.auto import tqdm

    physics = spec.build()
    report = FileReport()
    for index, (source, target) in enumerate(tqdm(pairs, desc="degrading", unit="image", disable=not progress)):
        try:
            report.intensity[target] = degrade_file(physics, spec, source, target, seed, index, resize, bits,
                                                    max_pixels, intensity)
            report.written.append(target)
        except (SEIError, OSError) as error:
            report.failed.append((source, str(error)))
    return report


def degrade(source: str | Path, destination: str | Path, physics: PhysicsSpec | None = None, seed: int = 0,
            resize: int | None = None, bits: int | None = None, progress: bool = True, overwrite: bool = False,
            max_pixels: int | None = None) -> tuple[PhysicsSpec, FileReport, Path]:
    """Simulate measurements of an image file or a folder of clean images (``sei degrade``) and record how.

    Outputs keep their input's dtype and units (:func:`degrade_file`), TIFF stays TIFF and the rest becomes PNG;
    ``intensity.json`` records the maps of files that are not plain 8-bit, ``degradation.yaml`` the operator.
    Nothing that exists is replaced unless ``overwrite`` (checked before the first file is written).

    :param physics: the operator in the user's words (the paper's kernel where none is given); its noise must be
        numbers: ``auto`` is for measurements one already has.
    :return: the resolved spec, the report of files written and failed, and the folder of ``degradation.yaml``.
    :raises ConfigError: for an operator that does not resolve, or a noise level or gain to estimate.
    :raises OutputExistsError: for outputs (or a ``degradation.yaml``) that exist when ``overwrite`` is not set.
    :raises ImageError: when no file could be degraded (no ``degradation.yaml`` is then written).
    """
    from sei.core.errors import ConfigError, ImageError
    from sei.io.outputs import check_intensity_records, check_replaceable, output_paths
    from sei.physics.spec import DEFAULT_KERNEL, resolve_spec

    spec = resolve_spec(physics or PhysicsSpec(), DEFAULT_KERNEL)
    if spec.needs_estimate:
        raise ConfigError("sei degrade simulates the noise, so it needs numbers: --noise-level NUMBER (and --gain "
                          "NUMBER for poisson-gaussian); auto is for measurements you already have")
    source, destination = Path(source), Path(destination)
    pairs = output_paths(source, destination, "png" if bits == 8 else None, overwrite)
    folder = pairs[0][1].parent
    kernel_copy = spec.kernel_copy_target(folder)
    check_replaceable([folder / DEGRADATION_FILE] + ([kernel_copy] if kernel_copy else []), overwrite)
    check_intensity_records([target for _, target in pairs], overwrite)
    # dim integer files share one map, recorded: the noise level and gain hold in its units for every file
    intensity = files_intensity([source for source, _ in pairs], max_pixels) if bits is None else None
    report = degrade_files(spec, pairs, seed, resize, bits, progress, max_pixels, intensity)
    if source.is_dir():
        report.failed += skipped_entries(source)
    if not report.written:
        raise ImageError(f"no image could be degraded ({report.failures()})")
    try:
        write_intensity_record(report)
        details = {"intensity": intensity.to_dict()} if intensity is not None else {}
        write_degradation_record(folder, spec, seed=seed, resize=resize, bits=bits or "input's",
                                 images=len(report.written), **details)
    except SEIError as error:  # a full disk: reported beside the files that failed, which are named too
        report.failed.append((folder, str(error)))
    return spec, report, folder
