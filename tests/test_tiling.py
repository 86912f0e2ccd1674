"""Tiled inference: exact for local operations, seamless for networks, bounded in memory."""

from __future__ import annotations

import pytest
import torch

from sei.errors import ConfigError
from sei.models import build_backbone
from sei.reconstructors import NetworkReconstructor
from sei.tiling import blend_window, tile_starts, tiled_apply


def test_tiles_cover_the_image_with_the_overlap():
    starts = tile_starts(1000, 256, 32)
    assert starts[0] == 0 and starts[-1] == 1000 - 256
    assert all(b - a <= 256 - 32 for a, b in zip(starts, starts[1:]))
    assert tile_starts(100, 256, 32) == [0]


def test_window_is_positive_and_flat_inside():
    window = blend_window(64, 80, 16)
    assert window.min() > 0 and window[16:48, 16:64].eq(1).all()
    assert torch.allclose(window, window.flip(0)) and torch.allclose(window, window.flip(1))


@pytest.mark.parametrize("upscale", [1, 3])
def test_pointwise_operation_is_reproduced_exactly(upscale):
    y = torch.rand(1, 3, 157, 203)

    def restore(t):
        return torch.nn.functional.interpolate(t.square(), scale_factor=upscale, mode="nearest")

    assert torch.allclose(tiled_apply(restore, y, tile=48, overlap=12, upscale=upscale), restore(y), atol=1e-6)


def test_network_output_has_no_seams():
    # a residual restorer with a modest correction, like a trained one
    torch.manual_seed(0)
    model = build_backbone("unet-tiny").eval()
    model.tail.reset_parameters()
    with torch.no_grad():
        model.tail.weight.mul_(0.1)
    y = torch.rand(1, 3, 130, 170)
    with torch.no_grad():
        whole = model(y)
        tiled = tiled_apply(model, y, tile=64, overlap=32)
    correction = (whole - y).abs().max()
    # inside the image (the image border is padded differently whole and tiled), the blend of tiles follows
    # the whole-image output closely: no seam stands out
    inside = (tiled - whole).abs()[..., 8:-8, 8:-8]
    assert inside.max() < 0.05 * correction
    assert inside.mean() < 0.01 * correction


def test_reconstructor_tiles_only_large_images():
    model = build_backbone("unet-tiny", upscale=2)
    calls = []

    def spy(module, inputs, output):
        calls.append(tuple(inputs[0].shape[-2:]))

    model.register_forward_hook(spy)
    reconstructor = NetworkReconstructor(model, tile=40, overlap=8)
    assert reconstructor(torch.rand(1, 3, 30, 30)).shape == (1, 3, 60, 60) and calls == [(30, 30)]
    calls.clear()
    assert reconstructor(torch.rand(1, 3, 90, 70)).shape == (1, 3, 180, 140)
    assert all(h <= 40 and w <= 40 for h, w in calls) and len(calls) > 1


def test_bad_tile_settings():
    with pytest.raises(ConfigError):
        tiled_apply(lambda t: t, torch.rand(1, 1, 10, 10), tile=8, overlap=8)
