"""Single-channel networks: grayscale data trains a 1-channel backbone, any network restores any image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sei.data.channels import apply_by_channels, dataset_channels, is_grayscale, luma, to_channels
from sei.core.errors import ConfigError, ShapeError
from sei.models import build_backbone
from sei.inference.reconstructors import NetworkReconstructor

TINY_FLAGS = ["--model", "unet-tiny", "--batch-size", "2", "--crop-size", "24", "--samples-per-epoch", "4",
              "--quiet", "--steps", "2"]


def test_grayscale_is_one_channel_or_equal_channels():
    gray = torch.rand(1, 8, 8)
    assert is_grayscale(gray) and is_grayscale(gray.expand(3, -1, -1))
    assert not is_grayscale(torch.rand(3, 8, 8))
    assert dataset_channels([gray, gray.expand(3, -1, -1)]) == 1
    assert dataset_channels([gray, torch.rand(3, 8, 8)]) == 3


def test_to_channels_refuses_colour_for_one_channel_unless_luma():
    colour = torch.rand(3, 8, 8)
    with pytest.raises(ConfigError, match="--channels 3"):
        to_channels(colour, 1)
    assert torch.allclose(to_channels(colour, 1, colour_to_luma=True), luma(colour))
    assert to_channels(torch.rand(1, 8, 8), 3).shape == (3, 8, 8)


def test_routing_rule():
    gray_net = build_backbone("unet-tiny", in_chans=1).eval()
    colour = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        per_channel = apply_by_channels(gray_net, colour, 1)
        assert per_channel.shape == colour.shape
        assert torch.allclose(per_channel[:, 1:2], gray_net(colour[:, 1:2]), atol=1e-6)
        rgb_net = build_backbone("unet-tiny", in_chans=3).eval()
        gray = torch.rand(2, 1, 16, 16)
        assert torch.allclose(apply_by_channels(rgb_net, gray, 3), rgb_net(gray.expand(-1, 3, -1, -1)).mean(1, True))
    with pytest.raises(ShapeError, match="cannot restore 2-channel"):
        apply_by_channels(rgb_net, torch.rand(1, 2, 8, 8), 3)
    assert NetworkReconstructor(gray_net)(colour).shape == colour.shape


def test_grayscale_folder_trains_a_one_channel_network_that_restores_rgb(tmp_path):
    from skimage import data

    from sei.cli import main
    from sei.models.weights import load_backbone

    clean = tmp_path / "clean"
    clean.mkdir()
    for name in ("camera", "moon"):
        Image.fromarray(getattr(data, name)()[:96, :96]).save(clean / f"{name}.png")
    blurry = tmp_path / "blurry"
    assert main(["degrade", str(clean), str(blurry), "--kernel", "Box_R2", "--noise-level", "5", "--quiet"]) == 0
    run = tmp_path / "run"
    assert main(["train", "--measurements", str(blurry), *TINY_FLAGS, "--out-dir", str(run)]) == 0
    network = load_backbone(run / "weights.pt")
    assert network.sei_architecture["in_chans"] == 1
    photo = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((40, 40, 4)) * 255).astype(np.uint8), "RGBA").save(photo)
    assert main(["restore", str(photo), str(tmp_path / "out.png"), "--weights", str(run), "--quiet"]) == 0
    assert np.asarray(Image.open(tmp_path / "out.png")).shape == (40, 40, 4)


def test_degrade_keeps_the_bit_depth_of_its_inputs(tmp_path):
    from sei.cli import main
    from sei.io.images import read_image_file, write_image

    clean = tmp_path / "clean"
    generator = torch.Generator().manual_seed(0)
    write_image(clean / "photo.png", torch.rand(3, 24, 24, generator=generator), bits=8)
    write_image(clean / "microscope.png", torch.rand(1, 24, 24, generator=generator), bits=16)
    blurry = tmp_path / "blurry"
    assert main(["degrade", str(clean), str(blurry), "--kernel", "Box_R2", "--noise-level", "1", "--quiet"]) == 0
    assert read_image_file(blurry / "photo.png").dtype == np.uint8
    assert read_image_file(blurry / "microscope.png").dtype == np.uint16
    forced = tmp_path / "forced"
    assert main(["degrade", str(clean), str(forced), "--kernel", "Box_R2", "--noise-level", "1", "--bits", "8",
                 "--quiet"]) == 0
    assert read_image_file(forced / "microscope.png").dtype == np.uint8
