"""Simulated measurements of clean image files, and the ``degradation.yaml`` that records how they were made.

The record is the physics spec (plus the seed, resizing and bit depth), with a kernel file copied into the output
folder, so the folder is self-contained: ``sei train --measurements`` and ``sei restore`` read the operator from
it and need no physics options.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import yaml

from sei.core.errors import SEIError
from sei.core.files import atomic_write_text
from sei.physics.spec import DEGRADATION_FILE, PhysicsSpec
from sei.io.outputs import FileReport

__all__ = ["degrade", "degrade_files", "write_degradation_record"]


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


def degrade_files(spec: PhysicsSpec, pairs: Sequence[tuple[Path, Path]], seed: int = 0, resize: int | None = None,
                  bits: int | None = None, progress: bool = True) -> FileReport:
    """Write the measurement ``A x + e`` of each input file to its output file (noise seeded by (seed, index)).

    Images are cropped at the bottom/right to a multiple of the super-resolution factor. A file that cannot be
    read is recorded in the report and the others go on.

    :param bits: 8 or 16 bits of [0, 1] per output file; ``None``: 8 for 8-bit inputs, 16 for wider ones (16-bit
        and float files), so that a scientific image's measurement keeps its precision.
    """
    from tqdm.auto import tqdm

    from sei.data.preprocess import resize_shorter_side
    from sei.io.images import image_tensor, read_image_file, single_page_array, write_image
    from sei.physics.noise import check_photon_data, measure
    from sei.core.rng import make_generator

    physics = spec.build()
    report = FileReport()
    for index, (source, target) in enumerate(tqdm(pairs, desc="degrading", unit="image", disable=not progress)):
        try:
            file = read_image_file(source)
            image = image_tensor(single_page_array(file, source), None, source)  # grayscale: one noise draw
            if image.shape[0] in (2, 4):  # alpha is not measured
                image = image[:-1]
            if resize:
                image = resize_shorter_side(image, resize)
                if spec.noise == "poisson-gaussian":  # bicubic undershoot near edges is no negative light
                    image = image.clamp_min(0)
            r = spec.upscale
            image = image[:, : image.shape[1] - image.shape[1] % r, : image.shape[2] - image.shape[2] % r]
            if spec.noise == "poisson-gaussian":
                check_photon_data(image, str(source))
            with torch.no_grad():
                measurement = measure(physics, image[None], make_generator("measurement", seed, index))[0]
            write_image(target, measurement, bits=bits or (8 if file.dtype.itemsize == 1 else 16))
            report.written.append(target)
        except SEIError as error:
            report.failed.append((source, str(error)))
    return report


def degrade(source: str | Path, destination: str | Path, physics: PhysicsSpec | None = None, seed: int = 0,
            resize: int | None = None, bits: int | None = None, progress: bool = True
            ) -> tuple[PhysicsSpec, FileReport, Path]:
    """Simulate measurements of an image file or a folder of clean images (``sei degrade``) and record how.

    :param physics: the operator in the user's words (the paper's kernel where none is given); its noise must be
        numbers: ``auto`` is for measurements one already has.
    :return: the resolved spec, the report of files written and failed, and the folder of ``degradation.yaml``.
    :raises ConfigError: for an operator that does not resolve, or a noise level or gain to estimate.
    """
    from sei.core.errors import ConfigError
    from sei.io.outputs import output_paths
    from sei.physics.spec import DEFAULT_KERNEL, resolve_spec

    spec = resolve_spec(physics or PhysicsSpec(), DEFAULT_KERNEL)
    if spec.needs_estimate:
        raise ConfigError("sei degrade simulates the noise, so it needs numbers: --noise-level NUMBER (and --gain "
                          "NUMBER for poisson-gaussian); auto is for measurements you already have")
    destination = Path(destination)
    report = degrade_files(spec, output_paths(Path(source), destination, "png"), seed, resize, bits, progress)
    folder = destination if destination.suffix == "" else destination.parent
    write_degradation_record(folder, spec, seed=seed, resize=resize, bits=bits or "input's",
                             images=len(report.written))
    return spec, report, folder
