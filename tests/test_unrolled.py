"""The physics-aware unrolled backbone: shapes, an exact data step, gradients, weights without the operator."""

from __future__ import annotations

import pytest
import torch

from sei.core.errors import ConfigError
from sei.models import backbone_from_architecture, build_backbone, load_backbone, save_weights
from sei.models.registry import needs_physics
from sei.models.unrolled import UnrolledHQS, hqs_schedule
from sei.physics import make_physics
from sei.physics.blur import FFTBlur, transfer_function


@pytest.fixture
def blur():
    return make_physics("deblurring", "Gaussian_R1", None, 5.0)


@pytest.fixture
def downsampling():
    return make_physics("sr", None, 2, 5.0)


def measurement(physics, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    clean = physics.A(x)
    return clean + 0.02 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed))


class TestShapes:
    def test_deblurring_keeps_a_non_square_size(self, blur):
        model = build_backbone("unrolled-tiny", physics=blur)
        y = torch.rand(2, 3, 37, 50)
        assert model(y).shape == (2, 3, 37, 50)

    def test_super_resolution_enlarges_a_non_square_size(self, downsampling):
        model = build_backbone("unrolled-tiny", upscale=2, physics=downsampling)
        y = torch.rand(1, 3, 19, 26)
        assert model(y).shape == (1, 3, 38, 52)

    def test_grayscale(self):
        physics = make_physics("deblurring", "Box_R2", None, 5.0)
        model = build_backbone("unrolled-tiny", in_chans=1, physics=physics)
        assert model(torch.rand(1, 1, 30, 41)).shape == (1, 1, 30, 41)


class TestDataStep:
    def test_untrained_network_is_the_exact_fourier_prox(self, blur, natural_image):
        """An untrained denoiser is the identity, so one iteration is prox_l2(y, y, gamma_0) in closed form."""
        model = UnrolledHQS(blur, iterations=1, width=8, levels=1).double()
        y = measurement(blur, natural_image[None, :, :45, :62].double())
        gamma = float(model.log_gamma.detach().exp()[0])
        k = transfer_function(blur.kernel.double(), *y.shape[-2:])
        spectrum = torch.fft.rfft2(y) * (1 + gamma * torch.conj(k)) / (1 + gamma * k.abs() ** 2)
        expected = torch.fft.irfft2(spectrum, s=y.shape[-2:])
        with torch.no_grad():
            estimate = model(y)
        torch.testing.assert_close(estimate, expected, rtol=1e-9, atol=1e-9)

    def test_iterations_chain_the_prox_with_their_own_step_sizes(self, blur, natural_image):
        model = UnrolledHQS(blur, iterations=3, width=8, levels=1)
        y = measurement(blur, natural_image[None, :, :40, :40])
        with torch.no_grad():
            expected = y
            for gamma in model.log_gamma.exp():
                expected = blur.prox_l2(expected, y, gamma)
            torch.testing.assert_close(model(y), expected)

    def test_super_resolution_data_step_solves_the_normal_equations(self, downsampling, natural_image):
        """x = prox_l2(z, y, gamma) satisfies (x - z) + gamma A^T (A x - y) = 0, z the bicubic enlargement."""
        model = UnrolledHQS(downsampling, upscale=2, iterations=1, width=8, levels=1).double()
        y = measurement(downsampling, natural_image[None, :, :48, :64].double())
        with torch.no_grad():
            x = model(y)
            z = model.initial_estimate(y)
        gamma = float(model.log_gamma.detach().exp()[0])
        residual = (x - z) + gamma * downsampling.A_adjoint(downsampling.A(x) - y, img_size=x.shape[-2:])
        assert residual.abs().max() < 1e-8 * gamma

    def test_schedule_decreases_to_the_noise_level(self):
        gammas, sigmas = hqs_schedule(4, 5 / 255)
        assert sigmas[-1] == pytest.approx(5 / 255) and sigmas == sorted(sigmas, reverse=True)
        assert gammas == sorted(gammas, reverse=True) and min(gammas) > 0


class TestTraining:
    def test_gradients_reach_the_denoiser_and_the_step_sizes(self, blur):
        model = build_backbone("unrolled-tiny", physics=blur)
        y = torch.rand(2, 3, 32, 32)
        model(y).sub(y).pow(2).mean().backward()
        assert model.denoiser.tail.weight.grad.abs().sum() > 0
        assert model.log_gamma.grad.abs().sum() > 0
        # after one update the denoiser's inner layers receive gradients too
        with torch.no_grad():
            model.denoiser.tail.weight.add_(0.01)
        model.zero_grad()
        model(y).sub(y).pow(2).mean().backward()
        assert model.denoiser.head.weight.grad.abs().sum() > 0
        assert model.log_sigma.grad.abs().sum() > 0

    def test_sei_loss_trains_it(self, blur, natural_image):
        from sei.losses.registry import build_method

        torch.manual_seed(0)
        model = build_backbone("unrolled-tiny", physics=blur)
        y = measurement(blur, natural_image[None, :, :40, :40]).expand(2, -1, -1, -1).contiguous()
        loss = build_method("sei")(model, blur, y, generator=torch.Generator().manual_seed(0)).loss
        loss.backward()
        assert torch.isfinite(loss) and model.denoiser.tail.weight.grad.abs().sum() > 0


class TestOperatorHandling:
    def test_a_clear_error_without_the_operator(self):
        assert needs_physics("unrolled-small") and not needs_physics("unet-small")
        with pytest.raises(ConfigError, match="physics="):
            build_backbone("unrolled-small")
        record = {"backbone": "unrolled-small", "upscale": 1, "in_chans": 3, "options": {}}
        with pytest.raises(ConfigError, match="physics="):
            backbone_from_architecture(record)

    def test_the_operator_must_fit_the_upscale(self, blur):
        with pytest.raises(ConfigError, match="upscale"):
            build_backbone("unrolled-tiny", upscale=2, physics=blur)

    def test_state_dict_holds_no_operator(self, blur):
        model = build_backbone("unrolled-small", physics=blur)
        keys = list(model.state_dict())
        assert all(key in ("log_gamma", "log_sigma") or key.startswith("denoiser.") for key in keys)
        assert not any("kernel" in key or "physics" in key for key in keys)
        assert model.physics is blur and "physics" not in dict(model.named_modules())

    def test_weights_round_trip_with_the_operator(self, blur, tmp_path):
        torch.manual_seed(0)
        model = build_backbone("unrolled-tiny", physics=blur)
        with torch.no_grad():
            model.denoiser.tail.weight.normal_(0, 0.01)
            model.log_gamma.add_(0.5)
        path = save_weights(model, tmp_path / "weights.pt")
        with pytest.raises(ConfigError, match="physics="):
            load_backbone(path)
        loaded = load_backbone(path, physics=blur)
        y = torch.rand(1, 3, 33, 29)
        with torch.no_grad():
            torch.testing.assert_close(loaded(y), model(y))
        # the same weights run with another operator (e.g. the kernel of another run)
        other = make_physics("deblurring", "Box_R2", None, 5.0)
        assert load_backbone(path, physics=other)(y).shape == y.shape

    def test_a_generic_deepinv_operator(self):
        """Any deepinv LinearPhysics works: its prox_l2 (conjugate gradients) is the data step."""
        import deepinv

        kernel = torch.ones(1, 1, 3, 3) / 9
        physics = deepinv.physics.Blur(filter=kernel, padding="circular",
                                       noise_model=deepinv.physics.GaussianNoise(sigma=0.02))
        model = UnrolledHQS(physics, iterations=1, width=8, levels=1)
        y = physics.A(torch.rand(1, 3, 24, 20))
        with torch.no_grad():
            expected = physics.prox_l2(y, y, model.log_gamma.exp()[0])
            torch.testing.assert_close(model(y), expected)


def test_a_blur_that_does_not_wrap_is_the_data_step_and_passes_gradients_to_the_step_sizes():
    """With reflecting borders prox_l2 is solved by conjugate gradients, differentiated implicitly: the learned step
    sizes get the gradient that finite differences give."""
    blur = FFTBlur("Gaussian_R1", boundary="reflect")
    model = UnrolledHQS(blur, iterations=2, width=8, levels=1).double()
    y = blur.A(torch.rand(1, 3, 20, 18, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    model(y).pow(2).sum().backward()
    analytic = model.log_gamma.grad.clone()
    step = 1e-6
    with torch.no_grad():
        for k in range(2):
            model.log_gamma[k] += step
            up = model(y).pow(2).sum()
            model.log_gamma[k] -= 2 * step
            down = model(y).pow(2).sum()
            model.log_gamma[k] += step
            assert (up - down).item() / (2 * step) == pytest.approx(analytic[k].item(), rel=1e-5, abs=1e-8)


def test_training_and_reloading_through_the_api(tmp_path):
    from sei.config.schema import from_flat
    from sei.training import train

    settings = {"data.dataset": "sample", "physics.kernel": "Gaussian_R1", "model.backbone": "unrolled-tiny",
                "data.batch_size": 2, "data.crop_size": 24, "data.samples_per_epoch": 4, "train.progress": False,
                "train.steps": 3, "out_dir": str(tmp_path / "run")}
    result = train(from_flat(settings))
    state = torch.load(result.weights, weights_only=True)
    assert not any("kernel" in key for key in state["params"])
    physics = make_physics("deblurring", "Gaussian_R1", None, 5.0)
    assert load_backbone(result.weights, physics=physics)(torch.rand(1, 3, 30, 30)).shape == (1, 3, 30, 30)


@pytest.mark.parametrize("ensemble", [False, True])  # the ensemble hands the network conjugated operators
def test_bf16_inference_keeps_the_operator_in_float32(tmp_path, ensemble):
    # under bf16 autocast the bicubic down-sampling computes garbage (measured: estimates off by 1.1); the network's
    # operator must be called in float32, as in training
    from sei.config.sources import locate_network
    from sei.inference.reconstructors import open_reconstructor

    physics = make_physics("sr", sr_factor=2, noise_level=5)
    torch.manual_seed(0)
    weights = save_weights(build_backbone("unrolled-tiny", upscale=2, physics=physics), tmp_path / "unrolled.pt")
    y = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    exact, fast = (open_reconstructor("network", physics, locate_network(weights), precision=precision,
                                      ensemble=ensemble)(y) for precision in ("32-true", "bf16-mixed"))
    assert fast.dtype == torch.float32 and (fast - exact).abs().max() < 0.02

