"""Training precision: auto picks bf16 where the hardware has it, and bf16 keeps the losses in float32."""

from __future__ import annotations

import pytest
import torch

from sei.config.recipe import resolve_inference_precision
from sei.config.recipe import resolve_precision
from sei.core.devices import cpu_has_native_bf16

SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: fpu vme sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
SKYLAKE = "processor\t: 0\nflags\t\t: fpu vme sse2 avx2 avx512f avx512bw\n"


class TestResolvePrecision:
    def test_cpu_flags(self):
        assert cpu_has_native_bf16(SAPPHIRE_RAPIDS)
        assert not cpu_has_native_bf16(SKYLAKE)
        assert not cpu_has_native_bf16("")

    @pytest.mark.parametrize("native,expected", [(True, "bf16-mixed"), (False, "32-true")])
    def test_auto_follows_the_hardware(self, monkeypatch, native, expected):
        monkeypatch.setattr("sei.config.recipe.has_native_bf16", lambda device: native)
        assert resolve_precision("auto", torch.device("cpu")) == expected

    @pytest.mark.parametrize("precision", ["32-true", "bf16-mixed", "16-mixed"])
    def test_an_explicit_precision_is_kept(self, precision):
        assert resolve_precision(precision, torch.device("cpu")) == precision


class TestInferencePrecision:
    @pytest.mark.parametrize("native, eight_bit, expected", [(True, True, "bf16-mixed"), (True, False, "32-true"),
                                                             (False, True, "32-true")])
    def test_auto_is_bf16_only_for_8bit_data_on_native_hardware(self, monkeypatch, native, eight_bit, expected):
        monkeypatch.setattr("sei.config.recipe.has_native_bf16", lambda device: native)
        assert resolve_inference_precision("auto", torch.device("cpu"), eight_bit) == expected

    @pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
    def test_an_explicit_precision_is_kept(self, precision):
        assert resolve_inference_precision(precision, torch.device("cpu"), eight_bit=False) == precision


def test_bf16_autocast_keeps_the_sei_loss_in_float32():
    from sei.losses.registry import build_method
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


def stock_blur(kind: type | None = None):
    """deepinv's ``Blur`` (or its subclass ``kind``) with a 9x9 motion kernel and Gaussian noise of 3 grey levels."""
    import deepinv

    from sei.physics.psf import motion_psf

    return (kind or deepinv.physics.Blur)(filter=motion_psf(7, 20)[None, None], padding="circular",
                                          noise_model=deepinv.physics.GaussianNoise(sigma=3 / 255))


class TestOperatorsComputeInFloat32:
    def test_a_deepinv_blur_behind_the_adapter_is_float32_under_autocast(self):
        from sei.physics.base import float32_physics

        blur = stock_blur()
        x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bare = blur.A(x)
            calls = {name: getattr(float32_physics(blur), name)(x) for name in ("A", "A_adjoint", "A_dagger")}
            bf16_input = float32_physics(blur).A(x.bfloat16())
            measured = float32_physics(blur)(x)  # A x + noise, deepinv's forward
        assert bare.dtype == torch.bfloat16 and (bare.float() - blur.A(x)).abs().max() > 1e-4  # the caveat
        for name, value in calls.items():
            assert value.dtype == torch.float32, name
            assert torch.allclose(value, getattr(blur, name)(x), atol=1e-6), name
        assert bf16_input.dtype == torch.float32 and torch.equal(bf16_input, blur.A(x.bfloat16().float()))
        assert measured.dtype == torch.float32 and (measured - blur.A(x)).std() == pytest.approx(3 / 255, rel=0.05)

    def test_the_adapter_keeps_the_operators_attributes_and_float64(self):
        import deepinv

        from sei.physics import make_physics
        from sei.physics.base import float32_physics, physics_margin, physics_upscale
        from sei.physics.noise import gaussian_sigma

        blur = float32_physics(stock_blur())
        assert float32_physics(blur) is blur
        assert gaussian_sigma(blur) == pytest.approx(3 / 255) and blur.filter.shape == (1, 1, 9, 9)
        assert physics_margin(blur) == (4, 4) and physics_upscale(blur) == 1
        down = float32_physics(deepinv.physics.Downsampling(filter="bicubic", factor=2, img_size=(3, 16, 16),
                                                            padding="circular"))
        assert down.factor == 2 and physics_upscale(down) == 2  # deepinv says it with its class, not `upscale`
        ours = float32_physics(make_physics("deblurring", kernel="Gaussian_R1", noise_level=5))
        assert ours.A(torch.rand(1, 3, 16, 16, dtype=torch.float64)).dtype == torch.float64  # float64: not narrowed

    def test_under_bf16_the_sei_loss_of_a_deepinv_blur_is_that_of_the_same_sei_operator(self):
        # the network's output is the same bf16 tensor for both operators; the operators, called in float32, then
        # agree to float32 rounding, so SURE (its finite difference in particular) does too
        from sei.losses.registry import build_method
        from sei.models import build_backbone
        from sei.physics import make_physics
        from sei.physics.base import float32_physics
        from sei.physics.psf import motion_psf

        torch.manual_seed(0)
        model = build_backbone("unet-tiny")
        y = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
        parts = {}
        for name, physics in (("stock", stock_blur()), ("ours", make_physics("deblurring", kernel=motion_psf(7, 20),
                                                                                noise_level=3))):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                output = build_method("sure")(model, float32_physics(physics), y,
                                              generator=torch.Generator().manual_seed(2))
            parts[name] = output.parts
        for part in ("sure_residual", "sure_divergence"):
            assert parts["stock"][part].item() == pytest.approx(parts["ours"][part].item(), rel=1e-4, abs=1e-6), part

    def test_training_calls_an_operator_from_python_in_float32_outside_autocast(self, tmp_path):
        import deepinv

        from sei.config.schema import from_flat
        from sei.training import train

        calls = []

        class RecordingBlur(deepinv.physics.Blur):
            def A(self, x, **kwargs):
                calls.append((x.dtype, torch.is_autocast_enabled("cpu")))
                return super().A(x, **kwargs)

        settings = {"data.dataset": "sample", "model.backbone": "unet-tiny", "data.batch_size": 2,
                    "data.crop_size": 24, "data.samples_per_epoch": 4, "train.progress": False, "train.steps": 2,
                    "train.precision": "bf16-mixed", "train.memory": "none", "out_dir": str(tmp_path / "run")}
        with pytest.warns(UserWarning, match="cannot be written to config.yaml"):
            train(from_flat(settings), physics=stock_blur(RecordingBlur))
        assert calls and set(calls) == {(torch.float32, False)}

    def test_the_module_keeps_its_state_dict_keys_and_copies_whole(self):
        import copy

        from sei.config.schema import from_flat
        from sei.training.module import SEIModule

        module = SEIModule(from_flat({"model.backbone": "unet-tiny"}).to_dict(), physics=stock_blur())
        assert {key for key in module.state_dict() if key.startswith("physics.")} == {
            "physics.filter", "physics.noise_model.sigma"}
        assert module.float32_physics.operator is module.physics
        twin = copy.deepcopy(module)
        assert twin.float32_physics.operator is twin.physics and twin.physics is not module.physics

    def test_a_physics_aware_backbone_runs_its_data_steps_in_float32(self):
        # the unrolled network's data step is the operator's prox_l2: for a deepinv Blur, conjugate gradients, which
        # under autocast ran in bf16 and moved this loss from 0.31 to 0.48; in float32 only the denoiser's bf16
        # rounding is left
        from sei.config.schema import from_flat
        from sei.training.module import SEIModule

        module = SEIModule(from_flat({"model.backbone": "unrolled-tiny"}).to_dict(), physics=stock_blur())
        y = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(1))
        losses = {}
        for enabled in (False, True):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
                losses[enabled] = module.method(module.backbone, module.float32_physics, y,
                                                generator=torch.Generator().manual_seed(2)).loss.item()
        assert losses[True] == pytest.approx(losses[False], rel=1e-3)
