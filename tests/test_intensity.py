"""Intensity fidelity for scientific data: the recorded affine map, 16-bit and float files, TIFF stacks, data-range
metrics, and clear errors for data that cannot be mapped."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from sei.cli import main
from sei.data.sources import load_image_set
from sei.core.errors import ImageError, IntensityError
from sei.io.intensity import DIM_FRACTION, IntensityMap, data_map, float_map, integer_map, integer_set_map
from sei.io.images import ImageFile, read_image_file, write_image_file
from sei.metrics import psnr, ssim
from sei.models import build_backbone, save_weights
from sei.physics.noise_estimation import estimate_gaussian


@pytest.fixture
def identity_weights(tmp_path):
    # the untrained U-Net is the identity: what comes out is what the map and the writer make of the input
    torch.manual_seed(0)
    return save_weights(build_backbone("unet-tiny"), tmp_path / "weights.pt")


def every_uint16(shape=(256, 256)) -> np.ndarray:
    return np.arange(65536, dtype=np.uint16).reshape(shape)


class TestMap:
    @pytest.mark.parametrize("name", ["a.png", "a.tif"])
    def test_sixteen_bit_round_trip_is_lossless(self, tmp_path, name):
        data = every_uint16()
        write_image_file(tmp_path / name, ImageFile([data]))
        page = read_image_file(tmp_path / name).pages[0]
        mapping = data_map([page])
        assert mapping == integer_map("uint16") and page.dtype == np.uint16
        network = mapping.to_network(page)
        assert network.dtype == np.float32 and network.min() == 0.0 and network.max() == 1.0
        write_image_file(tmp_path / f"back_{name}", ImageFile([mapping.from_network(network)]))
        assert np.array_equal(read_image_file(tmp_path / f"back_{name}").pages[0], data)

    def test_sixteen_bit_colour_png_round_trip(self, tmp_path):
        data = np.random.default_rng(0).integers(0, 65536, (9, 11, 3), dtype=np.uint16)
        write_image_file(tmp_path / "c.png", ImageFile([data]))
        page = read_image_file(tmp_path / "c.png").pages[0]
        assert np.array_equal(integer_map("uint16").from_network(integer_map("uint16").to_network(page)), data)

    def test_float_map_keeps_values_outside_unit_range(self):
        rng = np.random.default_rng(0)
        data = (rng.normal(0, 1, (64, 64)) * 800 - 150).astype(np.float32)  # negative background, thousands
        data[0, 0] = 1e6  # a hot pixel must not squeeze the rest
        mapping = float_map([data])
        assert mapping.offset < 0 and mapping.offset == pytest.approx(np.percentile(data, 0.1))
        assert mapping.offset + mapping.scale == pytest.approx(np.percentile(data, 99.9))
        network = mapping.to_network(data)
        assert network.max() > 100 and network.min() < 0  # beyond the percentiles: kept, not clipped
        assert np.allclose(mapping.from_network(network), data, rtol=1e-5, atol=1e-2)

    def test_non_negative_float_data_keep_zero(self):
        counts = np.random.default_rng(1).poisson(3000, (32, 32)).astype(np.float32)
        mapping = float_map([counts])
        assert mapping.offset == 0.0 and mapping.to_network(np.zeros(1))[0] == 0.0

    def test_record_round_trip_and_bad_records(self):
        mapping = IntensityMap(-12.5, 4000.0, "float32")
        assert IntensityMap.from_dict(json.loads(json.dumps(mapping.to_dict()))) == mapping
        with pytest.raises(IntensityError):
            IntensityMap.from_dict({"offset": 0, "scale": 0, "dtype": "uint16"})
        with pytest.raises(IntensityError):
            IntensityMap.from_dict({"scale": 1})


class TestStacks:
    def test_stack_round_trip(self, tmp_path):
        pages = np.random.default_rng(0).integers(0, 65536, (5, 12, 14), dtype=np.uint16)
        tifffile.imwrite(tmp_path / "s.tif", pages, photometric="minisblack", resolution=(2.5, 2.5))
        file = read_image_file(tmp_path / "s.tif")
        assert file.is_stack and len(file.pages) == 5 and file.pages[0].shape == (12, 14)
        mapping = data_map(file.pages)
        back = ImageFile([mapping.from_network(mapping.to_network(p)) for p in file.pages], file.resolution)
        write_image_file(tmp_path / "t.tif", back)
        assert np.array_equal(tifffile.imread(tmp_path / "t.tif"), pages)
        assert tifffile.TiffFile(tmp_path / "t.tif").pages[0].resolution == (2.5, 2.5)

    def test_restore_writes_a_stack_in_the_same_dtype(self, tmp_path, identity_weights):
        pages = np.random.default_rng(0).integers(200, 40000, (3, 32, 40), dtype=np.uint16)
        tifffile.imwrite(tmp_path / "cells.tif", pages, photometric="minisblack", resolution=(4.0, 4.0))
        assert main(["restore", str(tmp_path / "cells.tif"), str(tmp_path / "out"), "--weights",
                     str(identity_weights), "--quiet"]) == 0
        restored = tifffile.imread(tmp_path / "out" / "cells.tif")
        assert restored.dtype == np.uint16 and restored.shape == pages.shape
        assert np.abs(restored.astype(np.int64) - pages).max() <= 1
        assert tifffile.TiffFile(tmp_path / "out" / "cells.tif").pages[0].resolution == (4.0, 4.0)

    def test_a_stack_trains_as_a_set_of_images(self, tmp_path):
        pages = np.random.default_rng(0).integers(0, 65536, (4, 20, 24), dtype=np.uint16)
        tifffile.imwrite(tmp_path / "s.tif", pages, photometric="minisblack")
        images = load_image_set(tmp_path, ground_truth=False)
        assert images.names == ["s_0000", "s_0001", "s_0002", "s_0003"]
        assert torch.allclose(images.images[2][0], torch.from_numpy(pages[2] / 65535.0).float())

    def test_pages_of_different_shapes_are_refused(self, tmp_path):
        with tifffile.TiffWriter(tmp_path / "mixed.tif") as writer:
            writer.write(np.zeros((8, 9), np.uint16))
            writer.write(np.zeros((5, 9), np.uint16))
        with pytest.raises(ImageError, match="differ in shape"):
            read_image_file(tmp_path / "mixed.tif")


class TestDimIntegerData:
    """Integer data that use a small part of their dtype (photon counts, 12-bit cameras) are mapped by their range."""

    def test_dim_counts_get_their_robust_range_and_come_back_exactly(self):
        counts = np.random.default_rng(0).poisson(30.0, size=(64, 64)).astype(np.uint16)
        mapping = integer_set_map([counts])
        assert mapping.offset == 0 and mapping.scale == pytest.approx(np.percentile(counts, 99.9))
        np.testing.assert_array_equal(mapping.from_network(mapping.to_network(counts)), counts)

    def test_data_that_fill_their_range_keep_the_dtype_map(self):
        bright = np.linspace(0, 1.1 * DIM_FRACTION * 65535, 4096).astype(np.uint16).reshape(64, 64)
        assert integer_set_map([bright]) == integer_map("uint16")
        assert integer_set_map([np.zeros((8, 8), np.uint8)]) == integer_map("uint8")  # nothing to measure

    def test_a_set_shares_one_map(self, tmp_path):
        rng = np.random.default_rng(0)
        for name, peak in (("dim", 20.0), ("brighter", 200.0)):
            tifffile.imwrite(tmp_path / f"{name}.tif", rng.poisson(peak, (32, 32)).astype(np.uint16))
        images = load_image_set(tmp_path, ground_truth=False)
        assert images.intensity.scale == pytest.approx(np.percentile(tifffile.imread(tmp_path / "brighter.tif"), 99.9))
        assert float(images.images[images.names.index("dim")].max()) < 0.3  # dim in the set's units

    def test_degrade_records_the_sets_map_and_training_reads_with_it(self, tmp_path):
        import yaml

        clean = tmp_path / "clean"
        clean.mkdir()
        rng = np.random.default_rng(1)
        for index in range(2):
            tifffile.imwrite(clean / f"c{index}.tif", (rng.random((40, 40)) ** 4 * 300).astype(np.uint16))
        assert main(["degrade", str(clean), str(tmp_path / "blurry"), "--kernel", "Box_R2", "--noise",
                     "poisson-gaussian", "--gain", "0.01", "--noise-level", "1", "--quiet"]) == 0
        recorded = yaml.safe_load((tmp_path / "blurry" / "degradation.yaml").read_text())["intensity"]
        assert recorded["dtype"] == "uint16" and recorded["scale"] < 300
        run = tmp_path / "run"
        assert main(["train", "--measurements", str(tmp_path / "blurry"), "--model", "unet-tiny", "--batch-size", "2",
                     "--crop-size", "24", "--samples-per-epoch", "4", "--steps", "2", "--quiet",
                     "--out-dir", str(run)]) == 0
        assert yaml.safe_load((run / "config.yaml").read_text())["data"]["intensity"] == recorded


class TestRestore:
    def test_sixteen_bit_grayscale_keeps_its_scale(self, tmp_path, identity_weights):
        data = np.random.default_rng(0).integers(100, 3000, (40, 36), dtype=np.uint16)  # a 12-bit camera's range
        Image.fromarray(data).save(tmp_path / "cell.png")
        assert main(["restore", str(tmp_path / "cell.png"), str(tmp_path / "out"), "--weights",
                     str(identity_weights), "--quiet"]) == 0
        restored = read_image_file(tmp_path / "out" / "cell.png").pages[0]
        assert restored.dtype == np.uint16 and np.abs(restored.astype(np.int64) - data).max() <= 1
        record = json.loads((tmp_path / "out" / "intensity.json").read_text())
        # dim data (a 12-bit range in a 16-bit file) go to the network by their robust range, zero kept at zero
        mapping = IntensityMap.from_dict(record["cell.png"])
        assert mapping.offset == 0 and mapping.scale == pytest.approx(np.percentile(data, 99.9))

    def test_float_tiff_in_and_out(self, tmp_path, identity_weights):
        rng = np.random.default_rng(0)
        data = (rng.normal(0, 1, (40, 36)) * 2000 - 300).astype(np.float32)
        tifffile.imwrite(tmp_path / "f.tif", data)
        assert main(["restore", str(tmp_path / "f.tif"), str(tmp_path / "out"), "--weights", str(identity_weights),
                     "--quiet"]) == 0
        restored = tifffile.imread(tmp_path / "out" / "f.tif")
        assert restored.dtype == np.float32 and restored.min() < -5000 and restored.max() > 5000
        assert np.allclose(restored, data, atol=0.05)

    def test_bits_asks_for_the_network_range(self, tmp_path, identity_weights):
        data = np.full((20, 20), 65535, np.uint16)
        Image.fromarray(data).save(tmp_path / "w.png")
        main(["restore", str(tmp_path / "w.png"), str(tmp_path / "o.png"), "--weights", str(identity_weights),
              "--bits", "8", "--quiet"])
        assert read_image_file(tmp_path / "o.png").pages[0].dtype == np.uint8

    def test_float_data_as_png_is_refused_per_file(self, tmp_path, identity_weights):
        tifffile.imwrite(tmp_path / "f.tif", np.random.default_rng(0).random((20, 20)).astype(np.float32))
        assert main(["restore", str(tmp_path / "f.tif"), str(tmp_path / "o.png"), "--weights",
                     str(identity_weights), "--quiet"]) == 2


class TestTrainingData:
    def test_float_folder_gets_one_map_for_the_set(self, tmp_path):
        rng = np.random.default_rng(0)
        tifffile.imwrite(tmp_path / "a.tif", (rng.random((24, 24)) * 1000).astype(np.float32))
        tifffile.imwrite(tmp_path / "b.tif", (rng.random((24, 24)) * 4000 - 100).astype(np.float32))
        tifffile.imwrite(tmp_path / "c.tif", np.zeros((24, 24), np.float32))  # constant: mapped by the set's range
        images = load_image_set(tmp_path, ground_truth=False)
        mapping = images.intensity
        assert mapping.offset < 0 and mapping.offset + mapping.scale > 3800  # the lowest and highest over the set
        assert float(images.images[2].max()) == pytest.approx(-mapping.offset / mapping.scale, rel=1e-5)

    def test_noise_level_is_in_grey_levels_of_the_mapped_range(self, tmp_path):
        # 16-bit data with a noise of 500 counts: the estimate is 500 * 255 / 65535 grey levels (sigma in [0, 1])
        rng = np.random.default_rng(0)
        smooth = np.linspace(5000, 50000, 96)[None, :] * np.ones((96, 1))
        for i in range(3):
            noisy = np.clip(np.round(smooth + rng.normal(0, 500, smooth.shape)), 0, 65535).astype(np.uint16)
            Image.fromarray(noisy).save(tmp_path / f"m{i}.png")
        images = load_image_set(tmp_path, ground_truth=False)
        estimate = estimate_gaussian([image[:1] for image in images.images])
        assert estimate.noise_level == pytest.approx(500 * 255 / 65535, rel=0.15)

    def test_a_set_mixing_float_and_integer_files_is_warned_about(self, tmp_path, caplog):
        tifffile.imwrite(tmp_path / "a.tif", np.full((16, 16), 2000.0, np.float32))
        Image.fromarray(np.full((16, 16), 65535, np.uint16)).save(tmp_path / "b.png")
        images = load_image_set(tmp_path, ground_truth=False)
        assert "mixes float and integer" in caplog.text
        assert float(images.images[0].max()) == pytest.approx(1.0) and float(images.images[1].max()) == 1.0


class TestBadInput:
    def test_nan_and_inf_in_float_data(self, tmp_path):
        data = np.ones((8, 8), np.float32)
        data[2, 3], data[4, 4] = np.nan, np.inf
        tifffile.imwrite(tmp_path / "bad.tif", data)
        with pytest.raises(ImageError, match="2 pixel"):
            read_image_file(tmp_path / "bad.tif")

    def test_constant_float_image_has_no_range(self, tmp_path, identity_weights):
        with pytest.raises(IntensityError, match="no positive range"):
            float_map([np.zeros((8, 8), np.float32)])
        assert float_map([np.full((8, 8), 7.0, np.float32)]).scale == pytest.approx(7.0)  # positive: 0..7
        tifffile.imwrite(tmp_path / "flat.tif", np.full((16, 16), -3.0, np.float32))
        assert main(["restore", str(tmp_path / "flat.tif"), str(tmp_path / "out"), "--weights",
                     str(identity_weights), "--quiet"]) == 2

    def test_constant_integer_image_maps_by_its_dtype(self):
        data = np.full((8, 8), 1234, np.uint16)
        assert np.array_equal(data_map([data]).from_network(data_map([data]).to_network(data)), data)

    def test_wide_integers_are_refused(self, tmp_path):
        tifffile.imwrite(tmp_path / "wide.tif", np.full((8, 8), 2**20, np.uint32))
        with pytest.raises(ImageError, match="unsupported pixel type"):
            read_image_file(tmp_path / "wide.tif")


class TestDataRangeMetrics:
    def test_psnr_uses_the_data_range(self):
        reference = torch.full((1, 1, 16, 16), 30000.0, dtype=torch.float64)
        estimate = reference + 100.0  # under one 8-bit grey level: 8-bit rounding would hide it
        assert float(psnr(estimate, reference, data_range=65535)) == pytest.approx(20 * np.log10(65535 / 100), abs=1e-4)
        assert float(psnr(estimate, reference, data_range=1000)) == pytest.approx(20.0, abs=1e-4)
        assert float(ssim(reference, reference, data_range=65535)) == pytest.approx(1.0)
        with pytest.raises(ValueError):
            psnr(estimate, reference, data_range=0)

    def test_float_data_scored_in_their_units(self):
        mapping = IntensityMap(-200.0, 5000.0, "float32")
        reference = torch.linspace(-200, 4800, 256, dtype=torch.float64).reshape(1, 1, 16, 16)
        noisy = reference + 50.0 * torch.randn(reference.shape, generator=torch.Generator().manual_seed(0),
                                               dtype=torch.float64)
        in_data_units = psnr(noisy, reference, data_range=mapping.data_range)
        in_network_units = psnr((noisy + 200) / 5000, (reference + 200) / 5000, data_range=1.0)
        assert float(in_data_units) == pytest.approx(float(in_network_units), abs=1e-4)
