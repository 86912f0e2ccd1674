"""Image files: grayscale, RGB, RGBA, 8/16-bit, round trips and unreadable files."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from sei.core.errors import ImageError
from sei.io.images import holds_8bit_pixels, list_images, read_image, read_image_file, write_image


class TestRead:
    def test_rgb(self, tmp_path):
        array = np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)
        Image.fromarray(array).save(tmp_path / "a.png")
        image = read_image(tmp_path / "a.png")
        assert image.shape == (3, 7, 9) and image.dtype == torch.float32
        assert torch.allclose(image, torch.from_numpy(array).permute(2, 0, 1) / 255.0)

    def test_grayscale_is_repeated_to_rgb(self, tmp_path):
        Image.fromarray(np.full((5, 6), 51, dtype=np.uint8)).save(tmp_path / "g.png")
        image = read_image(tmp_path / "g.png")
        assert image.shape == (3, 5, 6) and torch.allclose(image, torch.full((3, 5, 6), 0.2))
        assert read_image(tmp_path / "g.png", channels=1).shape == (1, 5, 6)

    def test_rgba_drops_alpha(self, tmp_path):
        array = np.zeros((4, 4, 4), dtype=np.uint8)
        array[..., 0], array[..., 3] = 255, 10
        Image.fromarray(array, mode="RGBA").save(tmp_path / "a.png")
        image = read_image(tmp_path / "a.png")
        assert image.shape == (3, 4, 4) and image[0].min() == 1.0 and image[1:].max() == 0.0
        assert read_image(tmp_path / "a.png", channels=None).shape == (4, 4, 4)

    def test_sixteen_bit(self, tmp_path):
        array = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
        Image.fromarray(array).save(tmp_path / "d.png")
        image = read_image(tmp_path / "d.png", channels=1)
        assert torch.allclose(image[0], torch.from_numpy(array / 65535.0).float(), atol=1e-6)

    def test_dark_sixteen_bit_png_stays_sixteen_bit(self, tmp_path):
        # a 16-bit file whose values all fit in 8 bits is still 16-bit data (scaled by 65535, not 255)
        array = np.array([[0, 200], [17, 255]], dtype=np.uint16)
        Image.fromarray(array).save(tmp_path / "dark.png")
        assert read_image_file(tmp_path / "dark.png").pages[0].dtype == np.uint16
        assert torch.allclose(read_image(tmp_path / "dark.png", channels=1)[0], torch.from_numpy(array / 65535.0).float())

    def test_a_stack_is_not_one_image(self, tmp_path):
        tifffile.imwrite(tmp_path / "s.tif", np.zeros((2, 8, 8), np.uint16), photometric="minisblack")
        with pytest.raises(ImageError, match="stack of 2 pages"):
            read_image(tmp_path / "s.tif")

    def test_palette_and_jpeg(self, tmp_path):
        Image.fromarray(np.zeros((6, 6, 3), dtype=np.uint8)).convert("P").save(tmp_path / "p.png")
        Image.fromarray(np.zeros((6, 6, 3), dtype=np.uint8)).save(tmp_path / "j.jpg")
        assert read_image(tmp_path / "p.png").shape == (3, 6, 6)
        assert read_image(tmp_path / "j.jpg").shape == (3, 6, 6)

    def test_missing_and_corrupt(self, tmp_path):
        with pytest.raises(ImageError, match="not found"):
            read_image(tmp_path / "none.png")
        (tmp_path / "bad.png").write_bytes(b"\x89PNG truncated")
        with pytest.raises(ImageError, match="cannot read image"):
            read_image(tmp_path / "bad.png")


class TestWriteAndList:
    def test_round_trip_8_and_16_bit(self, tmp_path):
        image = torch.rand(3, 10, 12)
        write_image(tmp_path / "a.png", image)
        assert torch.allclose(read_image(tmp_path / "a.png"), image, atol=0.5 / 255 + 1e-6)
        write_image(tmp_path / "b.png", image[:1], bits=16)
        assert torch.allclose(read_image(tmp_path / "b.png", channels=1), image[:1], atol=0.5 / 65535 + 1e-6)

    @pytest.mark.parametrize("name", ["c.png", "c.tif"])
    @pytest.mark.parametrize("channels", [3, 4])
    def test_sixteen_bit_colour_round_trip(self, tmp_path, name, channels):
        image = torch.rand(channels, 9, 13)
        write_image(tmp_path / name, image, bits=16)
        assert torch.allclose(read_image(tmp_path / name, channels=None), image, atol=0.5 / 65535 + 1e-6)

    def test_write_clamps_and_checks(self, tmp_path):
        write_image(tmp_path / "sub" / "c.png", torch.full((3, 2, 2), 2.0))
        assert read_image(tmp_path / "sub" / "c.png").max() == 1.0
        with pytest.raises(ImageError):
            write_image(tmp_path / "d.png", torch.rand(2, 4, 4))
        with pytest.raises(ImageError, match="16-bit"):
            write_image(tmp_path / "e.jpg", torch.rand(1, 4, 4), bits=16)

    def test_8bit_pixels_are_told_from_the_header(self, tmp_path):
        import tifffile

        rng = np.random.default_rng(0)
        colour = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
        Image.fromarray(colour).save(tmp_path / "rgb.png")
        Image.fromarray(colour).save(tmp_path / "rgb.jpg")
        Image.fromarray(colour[..., 0]).save(tmp_path / "gray.bmp")
        Image.fromarray(colour).convert("P").save(tmp_path / "palette.png")
        Image.fromarray(colour[..., 0].astype(np.uint16) * 257).save(tmp_path / "gray16.png")
        tifffile.imwrite(tmp_path / "rgb.tif", colour)
        tifffile.imwrite(tmp_path / "rgb16.tif", colour.astype(np.uint16))
        tifffile.imwrite(tmp_path / "float.tif", colour.astype(np.float32), photometric="rgb")
        (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
        eight_bit = {path.name: holds_8bit_pixels(path) for path in sorted(tmp_path.iterdir())}
        assert eight_bit == {"corrupt.png": False, "float.tif": False, "gray.bmp": True, "gray16.png": False,
                             "palette.png": True, "rgb.jpg": True, "rgb.png": True, "rgb.tif": True,
                             "rgb16.tif": False}
        assert not holds_8bit_pixels(tmp_path / "missing.png")

    def test_list_images(self, tmp_path):
        for name in ("b.png", "a.JPG", "notes.txt"):
            (tmp_path / name).write_bytes(b"")
        assert [p.name for p in list_images(tmp_path)] == ["a.JPG", "b.png"]
        (tmp_path / "empty").mkdir()
        with pytest.raises(ImageError, match="no image files"):
            list_images(tmp_path / "empty")
        with pytest.raises(ImageError, match="not a directory"):
            list_images(tmp_path / "missing")
