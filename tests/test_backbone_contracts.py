"""The contract every backbone preset keeps (sei.models.registry): it builds from its name (physics-aware ones with
an operator), restores odd and non-square images at its upscale, declares its family's checkpointing and tiling
grid truthfully, trains every parameter, round-trips through a weights file, and computes on a GPU what it computes
on the CPU. Architecture-specific facts (SwinIR's keys and size, the U-Net's start as the identity) are tested in
test_models.py."""

from __future__ import annotations

import pytest
import torch
from helpers import relative_difference, seeded

from sei.core.errors import ConfigError
from sei.models import BACKBONES, build_backbone, load_backbone, save_weights
from sei.physics import make_physics

# The paper's SwinIR is checked at its size where it matters (test_models.py); its contract runs on a smaller twin.
SMALLER = {"swinir": dict(embed_dim=24, depths=(2, 2), num_heads=(3, 3))}


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
        y = torch.rand(2, 3, 19, 26, generator=seeded(0))
        assert model(y).shape == (2, 3, 19 * upscale, 26 * upscale)
        assert model.sei_architecture["backbone"] == name and model.sei_architecture["upscale"] == upscale

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
        model(torch.rand(2, 3, 16, 16, generator=seeded(1))).pow(2).mean().backward()
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)

    def test_weights_file_round_trip(self, name, tmp_path):
        model = network(name).eval()
        physics = make_physics("deblurring", kernel="Box_R2")
        loaded = load_backbone(save_weights(model, tmp_path / "w.pt"), physics=physics).eval()
        assert loaded.sei_architecture == model.sei_architecture
        y = torch.rand(1, 3, 16, 16, generator=seeded(2))
        with torch.no_grad():
            assert torch.equal(loaded(y), model(y))

    def test_the_device_computes_what_the_cpu_computes(self, name, device):
        model = network(name).eval()
        y = torch.rand(1, 3, 16, 24, generator=seeded(3))
        with torch.no_grad():
            expected = model(y)
            # a physics-aware network moves its operator along with it
            assert relative_difference(model.to(device)(y.to(device)), expected) < 1e-4
