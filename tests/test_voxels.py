"""Voxel sizes read from OME-TIFF, ImageJ hyperstacks and TIFF resolution tags (sei.io.voxels)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from sei.core.errors import ImageError
from sei.io.voxels import read_voxel_size

STACK = np.zeros((5, 16, 20), dtype=np.uint16)


def test_an_imagej_hyperstack_gives_spacing_and_resolution(tmp_path):
    path = tmp_path / "imagej.tif"
    tifffile.imwrite(path, STACK, imagej=True, resolution=(1 / 0.065, 1 / 0.065),
                     metadata={"axes": "ZYX", "spacing": 0.2, "unit": "micron"})
    voxel = read_voxel_size(path)
    assert voxel.source == "ImageJ" and voxel.complete
    assert (voxel.z, voxel.y, voxel.x) == pytest.approx((0.2, 0.065, 0.065))
    assert voxel.anisotropy == pytest.approx(0.2 / 0.065)


def test_an_ome_tiff_gives_its_physical_sizes_in_their_units(tmp_path):
    path = tmp_path / "stack.ome.tif"
    tifffile.imwrite(path, STACK, ome=True, metadata={"axes": "ZYX", "PhysicalSizeX": 100, "PhysicalSizeXUnit": "nm",
                                                      "PhysicalSizeY": 100, "PhysicalSizeYUnit": "nm",
                                                      "PhysicalSizeZ": 0.3, "PhysicalSizeZUnit": "µm"})
    voxel = read_voxel_size(path)
    assert voxel.source == "OME" and (voxel.z, voxel.y, voxel.x) == pytest.approx((0.3, 0.1, 0.1))


def test_plain_tags_give_the_lateral_size_only(tmp_path):
    path = tmp_path / "tags.tif"
    tifffile.imwrite(path, STACK, resolution=(10000, 10000), resolutionunit=3)  # pixels per cm: 1 um
    voxel = read_voxel_size(path)
    assert (voxel.z, voxel.y, voxel.x) == (None, pytest.approx(1.0), pytest.approx(1.0)) and not voxel.complete


def test_a_file_that_says_nothing(tmp_path):
    path = tmp_path / "bare.tif"
    tifffile.imwrite(path, STACK)
    voxel = read_voxel_size(path)
    assert voxel.z is None and voxel.anisotropy is None


def test_a_file_that_is_not_a_tiff_is_named(tmp_path):
    path = tmp_path / "not_a_tiff.tif"
    path.write_bytes(b"nothing here")
    with pytest.raises(ImageError, match="cannot read its voxel size"):
        read_voxel_size(path)
