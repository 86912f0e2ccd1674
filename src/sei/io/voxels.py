"""Voxel sizes of microscopy stacks, read from what the file says: OME-TIFF, ImageJ hyperstacks, TIFF resolution tags.

A z-stack restored in 3-D needs its voxel size: the PSF is sampled on it, and an axially super-resolved stack is
written back with its new z-step. Files say it in three ways, read in this order of trust:

- **OME-TIFF**: ``PhysicalSizeX``, ``PhysicalSizeY``, ``PhysicalSizeZ`` of the ``Pixels`` element, each with its
  unit (micrometres by default);
- **ImageJ**: the ``spacing`` (z-step) and ``unit`` of its metadata, with the lateral size from the resolution tags;
- **TIFF resolution tags**: ``XResolution``/``YResolution`` in pixels per ``ResolutionUnit`` (inch or centimetre),
  or per ImageJ's ``unit`` when the tag says none.

Every size is returned in micrometres; an axis the file does not describe is ``None`` (set it on the command line).
"""

from __future__ import annotations

import dataclasses
import math
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sei.core.errors import ImageError

__all__ = ["MICROMETRES_PER", "SAMPLING_TOLERANCE", "VoxelSize", "check_psf_sampling", "describe_voxel_size",
           "psf_sampling_file", "read_psf_voxel_size", "read_voxel_size", "stated_voxel_size",
           "voxel_size_tags", "write_psf_voxel_size"]

# Micrometres per length unit, by the names files use.
MICROMETRES_PER = {"nm": 1e-3, "nanometer": 1e-3, "nanometre": 1e-3, "um": 1.0, "µm": 1.0, "\\u00b5m": 1.0,
                   "micron": 1.0, "microns": 1.0, "micrometer": 1.0, "micrometre": 1.0, "mm": 1e3, "millimeter": 1e3,
                   "cm": 1e4, "centimeter": 1e4, "m": 1e6, "meter": 1e6, "inch": 25400.0, "in": 25400.0}
_TIFF_RESOLUTION_UNITS = {2: "inch", 3: "cm"}  # ResolutionUnit tag values (1: none)


@dataclass(frozen=True)
class VoxelSize:
    """A stack's sampling in micrometres, ``None`` for an axis the file does not describe.

    :ivar z: the distance between planes; ``y``, ``x``: the pixel's height and width.
    :ivar source: where it was read (``"OME"``, ``"ImageJ"``, ``"TIFF tags"``), for messages.
    """

    z: float | None
    y: float | None
    x: float | None
    source: str = ""

    @property
    def complete(self) -> bool:
        return None not in (self.z, self.y, self.x)

    @property
    def anisotropy(self) -> float | None:
        """The z-step over the lateral pixel size (3 for 300 nm planes of 100 nm pixels)."""
        if self.z is None or self.x is None:
            return None
        return self.z / self.x


def _micrometres(value: object, unit: str | None) -> float | None:
    """``value`` in ``unit`` as micrometres; ``None`` when either is missing, unknown or not a positive number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    factor = MICROMETRES_PER.get(str(unit or "").strip().lower())
    if factor is None or not math.isfinite(number) or number <= 0:
        return None
    return number * factor


def _from_ome(xml: str) -> VoxelSize | None:
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return None
    pixels = next((element for element in root.iter() if element.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return None
    sizes = {axis: _micrometres(pixels.get(f"PhysicalSize{axis}"), pixels.get(f"PhysicalSize{axis}Unit", "µm"))
             for axis in "ZYX"}
    if all(value is None for value in sizes.values()):
        return None
    return VoxelSize(sizes["Z"], sizes["Y"], sizes["X"], "OME")


def _lateral_from_tags(page, imagej_unit: str | None) -> tuple[float | None, float | None]:
    if "XResolution" not in page.tags:
        return None, None
    unit = _TIFF_RESOLUTION_UNITS.get(int(page.resolutionunit), imagej_unit)
    x_per_unit, y_per_unit = (float(v) for v in page.resolution)
    size = [_micrometres(1.0 / per_unit, unit) if per_unit > 0 else None for per_unit in (y_per_unit, x_per_unit)]
    return size[0], size[1]


def voxel_size_tags(voxel: VoxelSize) -> tuple[tuple[tuple[float, float], int] | None, dict[str, Any]]:
    """What states ``voxel`` in a TIFF, as :func:`read_voxel_size` reads it back: the resolution (pixels per
    centimetre, x then y, and the ResolutionUnit tag's value) when the pixel size is known, and ImageJ's ``unit`` and
    ``spacing`` when the z-step is.

    >>> voxel_size_tags(VoxelSize(0.3, 0.1, 0.1))
    (((100000.0, 100000.0), 3), {'unit': 'micron', 'spacing': 0.3})
    """
    (centimetre,) = (value for value, unit in _TIFF_RESOLUTION_UNITS.items() if unit == "cm")
    resolution = None
    if voxel.x is not None and voxel.y is not None:
        resolution = ((MICROMETRES_PER["cm"] / voxel.x, MICROMETRES_PER["cm"] / voxel.y), centimetre)
    return resolution, ({"unit": "micron", "spacing": voxel.z} if voxel.z is not None else {})


def read_voxel_size(path: str | Path) -> VoxelSize:
    """The voxel size a TIFF file states (see the module); all ``None`` for a file that states none.

    :raises ImageError: if the file cannot be read as a TIFF.
    """
    import tifffile

    path = Path(path)
    try:
        with tifffile.TiffFile(path) as tiff:
            if tiff.ome_metadata:
                found = _from_ome(tiff.ome_metadata)
                if found is not None:
                    return found
            imagej = tiff.imagej_metadata or {}
            unit = imagej.get("unit")
            unit = _clean_unit(unit) if isinstance(unit, str) else None
            y, x = _lateral_from_tags(tiff.pages[0], unit)
            if imagej:
                return VoxelSize(_micrometres(imagej.get("spacing"), unit), y, x, "ImageJ")
            return VoxelSize(None, y, x, "TIFF tags" if x is not None else "")
    except (tifffile.TiffFileError, OSError, ValueError) as error:
        raise ImageError(f"{path}: cannot read its voxel size ({error})") from error


def stated_voxel_size(path: str | Path) -> VoxelSize:
    """:func:`read_voxel_size` of a TIFF; nothing known (all ``None``) for other files, which state no voxel size.

    :raises ImageError: for a TIFF that cannot be read.
    """
    from sei.io.outputs import TIFF_SUFFIXES

    if Path(path).suffix.lower() in TIFF_SUFFIXES:
        return read_voxel_size(path)
    return VoxelSize(None, None, None)


def _clean_unit(unit: str) -> str:
    # ImageJ writes micrometres as "micron" or "\u00B5m" (escaped); both mean the same
    return re.sub(r"\\u00[bB]5", "µ", unit).strip()


# -- the sampling a PSF file was made for ---------------------------------------------------------------------------
# A PSF file (psf.npy) carries its voxel size in a record beside it (psf.json), written by `sei psf`; a stack whose
# voxels differ by more than this share along an axis both describe is refused (its PSF is the wrong size in voxels).
SAMPLING_TOLERANCE = 0.05


def psf_sampling_file(kernel_file: str | Path) -> Path:
    """Where a PSF file's voxel size is recorded: ``psf.json`` beside ``psf.npy``."""
    return Path(kernel_file).with_suffix(".json")


def write_psf_voxel_size(kernel_file: str | Path, voxel: VoxelSize) -> Path:
    """Record the voxel size a PSF file was sampled on (micrometres; an unknown axis as null), atomically."""
    import json

    from sei.core.files import atomic_write_text

    record = {"voxel_size_um": {"z": voxel.z, "y": voxel.y, "x": voxel.x}, "source": voxel.source}
    return atomic_write_text(psf_sampling_file(kernel_file), json.dumps(record, indent=2) + "\n")


def read_psf_voxel_size(kernel: object) -> VoxelSize | None:
    """The voxel size recorded beside a PSF file (:func:`write_psf_voxel_size`); ``None`` for a kernel that is not a
    file, or a file without a record.

    :raises ImageError: for a record that cannot be read.
    """
    import json

    if not isinstance(kernel, (str, Path)):
        return None
    record = psf_sampling_file(kernel)
    if Path(kernel).suffix.lower() != ".npy" or not record.is_file():
        return None
    try:
        sizes = json.loads(record.read_text())["voxel_size_um"]
        values = [None if sizes.get(axis) is None else float(sizes[axis]) for axis in ("z", "y", "x")]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ImageError(f"{record}: not a PSF voxel-size record ({error}); remove it or write the PSF again with "
                         "sei psf") from error
    if any(value is not None and not (math.isfinite(value) and value > 0) for value in values):
        raise ImageError(f"{record}: voxel sizes must be positive micrometres, got {values}")
    return VoxelSize(*values, source=record.name)


def describe_voxel_size(voxel: VoxelSize) -> str:
    """``"0.3 x 0.1 x 0.1 um (z y x)"``, ``?`` for an axis not described."""
    return " x ".join("?" if value is None else f"{value:.4g}" for value in (voxel.z, voxel.y, voxel.x)) + \
        " um (z y x)"


def check_psf_sampling(psf: VoxelSize | None, stack: VoxelSize | None, stack_name: str, upscale: int = 1) -> None:
    """Refuse a stack whose voxels differ from those its PSF was made for, along an axis both describe.

    :param upscale: for axial super-resolution by ``r`` (:mod:`sei.core.scaling`), the stack's z-step is ``r``
        times the PSF's.

    >>> check_psf_sampling(VoxelSize(0.3, 0.1, 0.1), VoxelSize(0.3, 0.1, None), "cells.tif")  # agrees
    >>> check_psf_sampling(VoxelSize(0.3, 0.1, 0.1), VoxelSize(0.5, 0.1, 0.1), "cells.tif")
    Traceback (most recent call last):
    ...
    sei.core.errors.ImageError: cells.tif has voxels of 0.5 x 0.1 x 0.1 um (z y x) and its PSF was made for 0.3 x 0.1 x 0.1 um (z y x): make the PSF for the stack's sampling (sei psf ... --pixel-size, --z-step)

    :raises ImageError: naming both samplings.
    """
    if psf is None or stack is None:
        return
    if upscale != 1 and psf.z is not None:
        psf = dataclasses.replace(psf, z=psf.z * upscale)
    for made, found in zip((psf.z, psf.y, psf.x), (stack.z, stack.y, stack.x)):
        if made is not None and found is not None and abs(found - made) > SAMPLING_TOLERANCE * made:
            raise ImageError(f"{stack_name} has voxels of {describe_voxel_size(stack)} and its PSF was made for "
                             f"{describe_voxel_size(psf)}: make the PSF for the stack's sampling (sei psf ... "
                             "--pixel-size, --z-step)")
