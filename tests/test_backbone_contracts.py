"""The contract every backbone preset keeps (sei.models.registry): it builds from its name (physics-aware ones with
an operator), restores odd and non-square images at its upscale, declares its family's checkpointing and tiling
grid truthfully, computes an off-grid image without a padded border, trains every parameter, round-trips through a
weights file, and computes on a GPU what it computes on the CPU. A network of volumes keeps it on volumes (odd plane
counts, every axis off its grid), super-resolving along z only (sei.core.scaling). Architecture-specific facts
(SwinIR's keys and size, the U-Net's start as the identity) are tested in test_models.py."""

from __future__ import annotations

import pytest
import torch
from helpers import relative_difference, seeded

from sei.core.errors import ConfigError
from sei.core.scaling import scale_factors, upscaled_size
from sei.models import BACKBONES, build_backbone, load_backbone, save_weights
from sei.models.windows import STRIP
from sei.physics import make_physics

# The paper's SwinIR is checked at its size where it matters (test_models.py); its contract runs on a smaller twin.
SMALLER = {"swinir": dict(embed_dim=24, depths=(2, 2), num_heads=(3, 3))}


def spatial(name: str, height: int, width: int, depth: int = 7) -> tuple[int, ...]:
    """The spatial sizes of an input to the preset ``name``: ``(height, width)``, or with ``depth`` planes first for a
    network of volumes."""
    return (depth, height, width) if BACKBONES[name].spatial_dims == 3 else (height, width)


def network(name: str, upscale: int = 1):
    torch.manual_seed(0)
    physics = make_physics("sr", sr_factor=upscale) if upscale > 1 else make_physics("deblurring", kernel="Box_R2")
    options = SMALLER.get(name, {})
    model = build_backbone(name, upscale=upscale, physics=physics, **options)
    if hasattr(model, "tail"):  # U-Nets start as the identity, through which no gradient reaches the body
        model.tail.reset_parameters()
    return model


@pytest.mark.parametrize("name", list(BACKBONES))
class TestContract:
    @pytest.mark.parametrize("upscale", [1, 2])
    def test_odd_non_square_images_at_its_upscale(self, name, upscale):
        model = network(name, upscale)
        y = torch.rand(2, 3, *spatial(name, 19, 26), generator=seeded(0))
        assert model(y).shape == (2, 3, *upscaled_size(spatial(name, 19, 26), upscale))
        assert model.sei_architecture["backbone"] == name and model.sei_architecture["upscale"] == upscale

    @pytest.mark.parametrize("upscale", [1, 2])
    def test_an_off_grid_image_is_computed_on_its_own_pixels_not_a_padded_border(self, name, upscale):
        """The top left is the network on the largest aligned window, the bottom-right corner the network on an
        aligned window ending there (sei.models.windows): no padded border reaches the estimate."""
        if BACKBONES[name].needs_physics:
            pytest.skip("its data steps apply the operator to the whole image")
        model = network(name, upscale).eval()
        m = model.size_multiple
        # past the aligned 3m x 9m x 10m (planes only for volumes), less than one multiple along every axis
        aligned = spatial(name, 9 * m, 10 * m, 3 * m)
        extra = spatial(name, m - 1, max(1, m // 2), max(1, m // 2))
        y = torch.rand(1, 3, *(a + e for a, e in zip(aligned, extra)), generator=seeded(4))
        strip = -(-STRIP // m) * m  # or the aligned size when smaller
        with torch.no_grad():
            whole = model(y)
            top_left = model(y[(..., *(slice(0, a) for a in aligned))])
            corner = model(y[(..., *(slice(-min(strip, a), None) for a in aligned))])
        scales = scale_factors(upscale, len(aligned))  # a volume network super-resolves along z only
        inner = (..., *(slice(0, (a - 2) * s) for a, s in zip(aligned, scales)))  # a cubic base sees 2 px further
        assert torch.allclose(whole[inner], top_left[inner], atol=1e-5)
        end = (..., *(slice(-e * s, None) for e, s in zip(extra, scales)))
        assert torch.allclose(whole[end], corner[end], atol=1e-5)

    def test_declarations_are_true(self, name):
        preset, model = BACKBONES[name], network(name)
        assert preset.checkpointing == hasattr(model, "checkpointing")
        assert isinstance(model.size_multiple, int) and model.size_multiple >= 1
        assert preset.lr is None or preset.lr > 0
        if preset.needs_physics:
            with pytest.raises(ConfigError, match="physics"):
                build_backbone(name)

    def test_every_parameter_trains(self, name):
        model = network(name).train()
        model(torch.rand(2, 3, *spatial(name, 16, 16, 8), generator=seeded(1))).pow(2).mean().backward()
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)

    def test_weights_file_round_trip(self, name, tmp_path):
        model = network(name).eval()
        physics = make_physics("deblurring", kernel="Box_R2")
        loaded = load_backbone(save_weights(model, tmp_path / "w.pt"), physics=physics).eval()
        assert loaded.sei_architecture == model.sei_architecture
        y = torch.rand(1, 3, *spatial(name, 16, 16, 8), generator=seeded(2))
        with torch.no_grad():
            assert torch.equal(loaded(y), model(y))

    def test_the_device_computes_what_the_cpu_computes(self, name, device):
        model = network(name).eval()
        y = torch.rand(1, 3, *spatial(name, 16, 24, 8), generator=seeded(3))
        with torch.no_grad():
            expected = model(y)
            # a physics-aware network moves its operator along with it
            assert relative_difference(model.to(device)(y.to(device)), expected) < 1e-4
