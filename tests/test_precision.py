"""Training precision: auto picks bf16 where the hardware has it, and bf16 keeps the losses in float32."""

from __future__ import annotations

import pytest
import torch

from sei.training.precision import cpu_has_native_bf16, resolve_precision

SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: fpu vme sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
SKYLAKE = "processor\t: 0\nflags\t\t: fpu vme sse2 avx2 avx512f avx512bw\n"


class TestResolvePrecision:
    def test_cpu_flags(self):
        assert cpu_has_native_bf16(SAPPHIRE_RAPIDS)
        assert not cpu_has_native_bf16(SKYLAKE)
        assert not cpu_has_native_bf16("")

    @pytest.mark.parametrize("native,expected", [(True, "bf16-mixed"), (False, "32-true")])
    def test_auto_follows_the_hardware(self, monkeypatch, native, expected):
        monkeypatch.setattr("sei.training.precision.has_native_bf16", lambda device: native)
        assert resolve_precision("auto", torch.device("cpu")) == expected

    @pytest.mark.parametrize("precision", ["32-true", "bf16-mixed", "16-mixed"])
    def test_an_explicit_precision_is_kept(self, precision):
        assert resolve_precision(precision, torch.device("cpu")) == precision


def test_bf16_autocast_keeps_the_sei_loss_in_float32():
    from sei.methods import build_method
    from sei.models import build_backbone
    from sei.physics import make_physics

    physics = make_physics("deblurring", kernel="Gaussian_R1", noise_level=5)
    torch.manual_seed(0)
    model = build_backbone("unet-tiny")
    y = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    losses = {}
    for enabled in (False, True):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
            output = build_method("sei")(model, physics, y, generator=torch.Generator().manual_seed(2))
        losses[enabled] = output.loss
        assert output.loss.dtype == torch.float32 and all(p.dtype == torch.float32 for p in output.parts.values())
    assert losses[True].item() == pytest.approx(losses[False].item(), rel=0.05)
