"""Noise model and the operator factory."""

from __future__ import annotations

import pytest
import torch

from sei.core.errors import ConfigError, KernelError, UnknownNameError
from sei.physics import BicubicDownsampling, BlurDownsampling, FFTBlur, GaussianNoise, make_physics, gaussian_sigma


class TestGaussianNoise:
    def test_standard_deviation(self):
        noise = GaussianNoise(noise_level=5)
        x = torch.zeros(4, 3, 64, 64)
        e = noise(x, generator=torch.Generator().manual_seed(0))
        assert e.std().item() == pytest.approx(5 / 255, rel=0.02)
        assert e.mean().abs().item() < 1e-3

    def test_same_generator_state_same_noise(self):
        noise = GaussianNoise(10)
        x = torch.rand(2, 3, 8, 8)
        a = noise(x, generator=torch.Generator().manual_seed(7))
        b = noise(x, generator=torch.Generator().manual_seed(7))
        c = noise(x, generator=torch.Generator().manual_seed(8))
        assert torch.equal(a, b) and not torch.equal(a, c)
        assert torch.equal(noise(x, seed=7), a)

    def test_zero_noise_level(self):
        x = torch.rand(1, 3, 8, 8)
        assert torch.equal(GaussianNoise(0)(x), x)

    def test_negative_level_is_refused(self):
        with pytest.raises(ValueError):
            GaussianNoise(-1)

    def test_physics_forward_passes_the_generator(self):
        physics = make_physics("deblurring", kernel="Box_R2", noise_level=5)
        x = torch.rand(1, 3, 16, 16)
        a = physics(x, generator=torch.Generator().manual_seed(3))
        b = physics(x, generator=torch.Generator().manual_seed(3))
        assert torch.equal(a, b)
        assert (a - physics.A(x)).std().item() == pytest.approx(5 / 255, rel=0.15)


class TestFactory:
    def test_deblurring(self):
        physics = make_physics("deblurring", kernel="Gaussian_R2", noise_level=5)
        assert isinstance(physics, FFTBlur)
        assert physics.kernel.shape == (13, 13)
        assert gaussian_sigma(physics) == pytest.approx(5 / 255)

    @pytest.mark.parametrize("factor", [2, 3, 4])
    def test_super_resolution(self, factor):
        physics = make_physics("sr", sr_factor=factor, noise_level=2)
        assert isinstance(physics, BicubicDownsampling)
        assert physics.upscale == factor
        assert gaussian_sigma(physics) == pytest.approx(2 / 255)

    def test_task_aliases(self):
        assert isinstance(make_physics("super-resolution", sr_factor=2), BicubicDownsampling)
        assert isinstance(make_physics("Deblur", kernel="Box_R2"), FFTBlur)

    def test_super_resolution_with_a_kernel_blurs_then_decimates(self):
        physics = make_physics("sr", sr_factor=3, kernel="box_r2")
        assert isinstance(physics, BlurDownsampling) and physics.upscale == 3
        assert physics.spec.kernel == "Box_R2"  # canonical spelling

    def test_operators_without_gaussian_noise_are_refused(self):
        import deepinv

        with pytest.raises(ConfigError, match="Gaussian noise"):
            gaussian_sigma(deepinv.physics.LinearPhysics())  # ZeroNoise
        with pytest.raises(ConfigError, match="PoissonNoise"):
            gaussian_sigma(deepinv.physics.Denoising(noise_model=deepinv.physics.PoissonNoise()))

    def test_noise_sigma_of_a_plain_deepinv_operator(self):
        import deepinv

        physics = deepinv.physics.Denoising(noise_model=deepinv.physics.GaussianNoise(sigma=0.1))
        assert gaussian_sigma(physics) == pytest.approx(0.1)

    @pytest.mark.parametrize(
        "kwargs, error, message",
        [
            (dict(task="denoising"), UnknownNameError, "deblurring"),
            (dict(task="deblurring"), ConfigError, "needs the blur kernel"),
            (dict(task="deblurring", kernel="Gaussian_R9x"), UnknownNameError, "Gaussian_R2"),
            (dict(task="deblurring", kernel="Box_R2", sr_factor=2), ConfigError, "no super-resolution factor"),
            (dict(task="sr"), ConfigError, "needs --sr-factor"),
            (dict(task="sr", sr_factor=1), ConfigError, ">= 2"),
            (dict(task="deblurring", kernel="Box_R2", noise_level=float("nan")), ConfigError, "finite"),
            (dict(task="deblurring", kernel="Box_R2", noise_level=-1), ConfigError, ">= 0"),
            (dict(task="sr", sr_factor=2.5), ConfigError, "integer"),
            (dict(task="sr", sr_factor="two"), ConfigError, "integer"),
            (dict(task="deblurring", kernel="missing_kernel.npy"), KernelError, "not found"),
        ],
    )
    def test_errors(self, kwargs, error, message):
        with pytest.raises(error, match=message):
            make_physics(**kwargs)

