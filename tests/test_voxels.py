"""Voxel sizes read from OME-TIFF, ImageJ hyperstacks and TIFF resolution tags (sei.io.voxels)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from sei.core.errors import ImageError
from sei.io.voxels import (VoxelSize, check_psf_sampling, psf_sampling_file, read_psf_voxel_size, read_voxel_size,
                           write_psf_voxel_size)

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


class TestPSFSampling:
    """The voxel size a PSF file was made for, recorded beside it, and checked against a stack's."""

    def test_the_record_round_trips_and_only_files_have_one(self, tmp_path):
        kernel = tmp_path / "psf.npy"
        assert read_psf_voxel_size(kernel) is None and read_psf_voxel_size("Gaussian_R2") is None
        write_psf_voxel_size(kernel, VoxelSize(0.3, 0.1, None, "sei psf"))
        assert psf_sampling_file(kernel) == tmp_path / "psf.json"
        assert read_psf_voxel_size(kernel) == VoxelSize(0.3, 0.1, None, "psf.json")
        assert read_psf_voxel_size(str(kernel)) == read_psf_voxel_size(kernel)

    @pytest.mark.parametrize("content", ["{", '{"voxel_size_um": {"z": -1}}', '{"other": 1}'])
    def test_a_broken_record_is_named(self, tmp_path, content):
        (tmp_path / "psf.json").write_text(content)
        with pytest.raises(ImageError, match="psf.json"):
            read_psf_voxel_size(tmp_path / "psf.npy")

    @pytest.mark.parametrize("stack, refused", [
        (VoxelSize(0.3, 0.1, 0.1), False), (VoxelSize(0.31, 0.102, 0.1), False),  # within 5 %
        (VoxelSize(None, None, None), False), (VoxelSize(0.5, None, None), True), (VoxelSize(0.3, 0.2, 0.2), True),
    ])
    def test_a_stack_of_other_voxels_is_refused(self, stack, refused):
        psf = VoxelSize(0.3, 0.1, 0.1)
        if refused:
            with pytest.raises(ImageError, match="cells.tif has voxels of .* and its PSF was made for 0.3 x 0.1 x 0.1"):
                check_psf_sampling(psf, stack, "cells.tif")
        else:
            check_psf_sampling(psf, stack, "cells.tif")
            check_psf_sampling(None, stack, "cells.tif")
