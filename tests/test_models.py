"""Backbones: the paper's SwinIR (keys, size, compatibility), the U-Net, any input size, weights files."""

from __future__ import annotations

import pytest
import torch

from sei.core.errors import ConfigError, UnknownNameError, WeightsError
from sei.models import BACKBONES, build_backbone, load_backbone, read_weights, save_weights


def original_swinir_keys(upscale: int, depths=(6,) * 6) -> set[str]:
    """The state-dict keys of the original SwinIR (Liang et al.) for the '1conv' residual connection."""
    keys = {"conv_first.weight", "conv_first.bias", "patch_embed.norm.weight", "patch_embed.norm.bias",
            "norm.weight", "norm.bias", "conv_after_body.weight", "conv_after_body.bias",
            "conv_last.weight", "conv_last.bias"}
    block_keys = ["norm1.weight", "norm1.bias", "attn.relative_position_bias_table", "attn.relative_position_index",
                  "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias", "norm2.weight",
                  "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias"]
    for layer, depth in enumerate(depths):
        keys |= {f"layers.{layer}.conv.weight", f"layers.{layer}.conv.bias"}
        for block in range(depth):
            prefix = f"layers.{layer}.residual_group.blocks.{block}."
            keys |= {prefix + key for key in block_keys}
            if block % 2 == 1:  # shifted windows carry their attention mask
                keys.add(prefix + "attn_mask")
    if upscale > 1:
        keys |= {"conv_before_upsample.0.weight", "conv_before_upsample.0.bias"}
        stages = [0] if upscale == 3 else [2 * i for i in range(int(upscale).bit_length() - 1)]
        keys |= {f"upsample.{i}.{p}" for i in stages for p in ("weight", "bias")}
    return keys


@pytest.fixture(scope="module")
def swinir_deblurring():
    return build_backbone("swinir", upscale=1)


class TestSwinIR:
    def test_parameter_count_and_keys_for_deblurring(self, swinir_deblurring):
        count = sum(p.numel() for p in swinir_deblurring.parameters())
        assert count == pytest.approx(11.5e6, rel=0.01)
        assert set(swinir_deblurring.state_dict()) == original_swinir_keys(1)

    @pytest.mark.parametrize("upscale", [2, 3, 4])
    def test_keys_for_super_resolution(self, upscale):
        model = build_backbone("swinir", upscale=upscale)
        assert set(model.state_dict()) == original_swinir_keys(upscale)
        assert model.upsampler == "pixelshuffle"

    def test_paper_configuration(self, swinir_deblurring):
        assert swinir_deblurring.embed_dim == 180 and swinir_deblurring.window_size == 8
        assert len(swinir_deblurring.layers) == 6 and swinir_deblurring.upsampler == ""
        assert swinir_deblurring.patches_resolution == [48, 48]

    @pytest.mark.parametrize("size", [(13, 21), (4, 3), (16, 16)])
    def test_any_input_size(self, size):
        model = build_backbone("swinir-small", upscale=2).eval()
        with torch.no_grad():
            assert model(torch.rand(1, 3, *size)).shape == (1, 3, 2 * size[0], 2 * size[1])

    def test_our_weights_load_in_deepinv_swinir(self, swinir_deblurring, tmp_path):
        import deepinv

        path = save_weights(swinir_deblurring, tmp_path / "weights.pt")
        other = deepinv.models.SwinIR(img_size=48, embed_dim=180, depths=[6] * 6, num_heads=[6] * 6, window_size=8,
                                      mlp_ratio=2, upscale=1, upsampler="", resi_connection="1conv",
                                      pretrained=str(path))
        for key, value in swinir_deblurring.state_dict().items():
            assert torch.equal(other.state_dict()[key], value)

    def test_published_format_loads_with_or_without_params_key(self, tmp_path):
        model = build_backbone("swinir-small", upscale=2)
        state = model.state_dict()
        torch.save(state, tmp_path / "bare.pt")
        torch.save({"params": state}, tmp_path / "params.pt")
        for name in ("bare.pt", "params.pt"):
            loaded = load_backbone(tmp_path / name, backbone="swinir-small", upscale=2)
            assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())


class TestUNet:
    @pytest.mark.parametrize("upscale", [1, 2, 3, 4])
    @pytest.mark.parametrize("size", [(17, 23), (48, 48), (5, 9)])
    def test_any_input_size(self, upscale, size):
        model = build_backbone("unet-tiny", upscale=upscale)
        assert model(torch.rand(2, 3, *size)).shape == (2, 3, upscale * size[0], upscale * size[1])

    @pytest.mark.parametrize("upscale", [1, 2])
    def test_a_size_off_the_grid_is_computed_on_aligned_windows_not_padded(self, upscale):
        """Every output pixel is what the network gives on an aligned window of the true image (no padded border):
        the top left from the largest window, the last columns and rows from strips ending at the borders."""
        from sei.models.unet import UNet

        torch.manual_seed(0)
        model = UNet(upscale, width=8).eval()
        torch.nn.init.normal_(model.tail.weight, std=0.1)  # not the identity: the detail shows where it was computed
        x = torch.rand(1, 3, 70, 150)  # multiple 4: 68 x 148 aligned, strips of 64
        r = upscale
        with torch.no_grad():
            base = x if r == 1 else torch.nn.functional.interpolate(x, scale_factor=r, mode="bicubic")
            detail = model(x) - base  # what the network adds, window by window
            windows = [(slice(0, 68), slice(0, 148), x[..., :68, :148]),
                       (slice(0, 68), slice(148, 150), x[..., :68, 150 - 64:]),
                       (slice(68, 70), slice(0, 148), x[..., 70 - 64:, :148]),
                       (slice(68, 70), slice(148, 150), x[..., 70 - 64:, 150 - 64:])]
            for rows, cols, window in windows:
                expected = model._padded_detail(window, None)
                expected = expected[..., expected.shape[-2] - (rows.stop - rows.start) * r:,
                                    expected.shape[-1] - (cols.stop - cols.start) * r:]
                got = detail[..., rows.start * r:rows.stop * r, cols.start * r:cols.stop * r]
                assert torch.allclose(got, expected, atol=1e-5)

    def test_starts_as_identity_or_bicubic(self):
        x = torch.rand(1, 3, 20, 28)
        assert torch.equal(build_backbone("unet-small")(x), x)
        expected = torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic")
        assert torch.allclose(build_backbone("unet-small", upscale=2)(x), expected)

    def test_presets(self):
        assert {"swinir", "unet-small"} <= set(BACKBONES)
        with pytest.raises(UnknownNameError, match="unet-small"):
            build_backbone("resnet")
        with pytest.raises(ConfigError):
            build_backbone("unet-tiny", upscale=0)


class TestWeightsFiles:
    def test_lightning_checkpoint_prefixes_are_stripped(self, tmp_path):
        model = build_backbone("unet-tiny")
        torch.save({"state_dict": {f"backbone.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "c.ckpt")
        state, architecture = read_weights(tmp_path / "c.ckpt")
        assert set(state) == set(model.state_dict()) and architecture is None

    def test_wrong_architecture_is_explained(self, tmp_path):
        path = save_weights(build_backbone("unet-tiny", upscale=2), tmp_path / "w.pt")
        with pytest.raises(WeightsError, match="upscale 2, not 1"):
            load_backbone(path, upscale=1)
        with pytest.raises(WeightsError, match="backbone 'unet-tiny', not 'swinir'"):
            load_backbone(path, backbone="swinir")
        torch.save(build_backbone("unet-tiny", upscale=2).state_dict(), tmp_path / "bare.pt")
        with pytest.raises(WeightsError, match="missing keys|unexpected keys|shape mismatches"):
            load_backbone(tmp_path / "bare.pt", backbone="swinir-small", upscale=2)
        with pytest.raises(WeightsError, match="shape mismatches"):
            load_backbone(tmp_path / "bare.pt", backbone="unet-tiny", upscale=3)

    def test_unreadable_and_missing_files(self, tmp_path):
        with pytest.raises(WeightsError, match="not found"):
            load_backbone(tmp_path / "none.pt", backbone="unet-tiny", upscale=1)
        (tmp_path / "junk.pt").write_bytes(b"\x00garbage")
        with pytest.raises(WeightsError, match="cannot be read"):
            load_backbone(tmp_path / "junk.pt", backbone="unet-tiny", upscale=1)
        torch.save(torch.zeros(3), tmp_path / "tensor.pt")
        with pytest.raises(WeightsError, match="not a state dict"):
            load_backbone(tmp_path / "tensor.pt", backbone="unet-tiny", upscale=1)
        torch.save(build_backbone("unet-tiny").state_dict(), tmp_path / "bare.pt")
        with pytest.raises(WeightsError, match="no architecture record"):
            load_backbone(tmp_path / "bare.pt")


class TestUNet3D:
    """``UNet(spatial_dims=3)``: the same residual U-Net on volumes (3x3x3 convolutions)."""

    def volume_net(self):
        from sei.models.unet import UNet

        torch.manual_seed(0)
        model = UNet(1, in_chans=1, width=4, levels=2, blocks=1, spatial_dims=3).eval()
        torch.nn.init.normal_(model.tail.weight, std=0.1)
        return model

    def test_any_volume_size_and_the_identity_at_start(self):
        from sei.models.unet import UNet

        y = torch.rand(2, 1, 7, 10, 13)
        assert torch.equal(UNet(1, in_chans=1, width=4, spatial_dims=3)(y), y)
        assert self.volume_net()(y).shape == y.shape

    def test_an_off_grid_volume_is_computed_on_aligned_windows(self):
        model = self.volume_net()
        y = torch.rand(1, 1, 9, 70, 66)  # multiple 4: 8 x 68 x 64 aligned, strips ending at each border
        with torch.no_grad():
            whole = model(y)
            assert torch.allclose(whole[..., :8, :68, :64], model(y[..., :8, :68, :64]), atol=1e-5)
            corner = model(y[..., -8:, -64:, -64:])
            assert torch.allclose(whole[..., -1:, -2:, -2:], corner[..., -1:, -2:, -2:], atol=1e-5)

    def test_every_parameter_trains_and_bad_inputs_are_refused(self):
        from sei.core.errors import ConfigError, ShapeError
        from sei.models.unet import UNet

        model = self.volume_net().train()
        model(torch.rand(1, 1, 8, 12, 12)).pow(2).mean().backward()
        assert all(p.grad is not None for p in model.parameters())
        with pytest.raises(ShapeError, match=r"\(B, C, D, H, W\) \(volumes\)"):
            model(torch.rand(1, 1, 12, 12))
        with pytest.raises(ConfigError, match="upscale=0"):
            UNet(0, spatial_dims=3)

    def test_axial_super_resolution_starts_as_cubic_interpolation_along_z(self):
        """Upscale r of a volume: r times the planes, each plane's pixels where they were (sei.core.scaling); the
        untrained network is the cubic interpolation along z, and its detail reaches every output plane."""
        from sei.core.scaling import interpolate_up
        from sei.models.unet import UNet

        y = torch.rand(2, 1, 5, 10, 13, generator=torch.Generator().manual_seed(0))
        fresh = UNet(3, in_chans=1, width=4, levels=1, blocks=1, spatial_dims=3)
        assert torch.equal(fresh(y), interpolate_up(y, 3)) and fresh(y).shape == (2, 1, 15, 10, 13)
        flat = torch.rand(1, 1, 1, 10, 13).expand(1, 1, 5, 10, 13)  # constant along z: so is the enlargement
        assert torch.allclose(interpolate_up(flat, 3), flat[:, :, :1].expand(1, 1, 15, 10, 13))
        torch.nn.init.normal_(fresh.tail.weight, std=0.1)
        detail = fresh(y) - interpolate_up(y, 3)
        assert bool((detail.abs().flatten(3).amax(-1) > 0).all())
