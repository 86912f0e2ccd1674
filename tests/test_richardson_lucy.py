"""Richardson-Lucy (``--model-kind richardson-lucy``/``rl``): the update, its stopping rule against the best
iteration in hindsight, RL-TV, super-resolution with a PSF, 16-bit data through ``sei restore``, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from sei.cli import main
from sei.core.errors import ConfigError, ImageError
from sei.inference.baselines import build_baseline, canonical_kind
from sei.inference.baselines.richardson_lucy import (
    RichardsonLucy, check_positive_kernel, normalised_residual, tv_subgradient,
)
from sei.physics.spec import PhysicsSpec


def psnr(x: torch.Tensor, reference: torch.Tensor) -> float:
    return float(-10 * torch.log10(((x - reference) ** 2).mean()))


@pytest.fixture(scope="module")
def camera() -> torch.Tensor:
    import skimage.data

    return torch.from_numpy(skimage.data.camera()[100:228, 100:228].astype(np.float32) / 255)[None, None]


CASES = {
    "blur": dict(kernel="Gaussian_R2", noise_level=2),
    "photons": dict(kernel="Gaussian_R2", noise="poisson-gaussian", gain=1 / 100, noise_level=1),
    "sr": dict(task="sr", sr_factor=2, kernel="Gaussian_R1", noise_level=2),
}


class TestUpdate:
    def test_the_noiseless_truth_is_a_fixed_point(self, camera):
        physics = PhysicsSpec(kernel="Gaussian_R2", noise_level=0).build()
        rl = RichardsonLucy(physics, iterations=1, stop="iterations")
        # one step from the truth: A^T((A x) / (A x)) / A^T 1 = 1, so x stays x
        x = camera.clamp(min=0.01)
        ratio = physics.A(x) / physics.A(x)
        assert torch.allclose(x * physics.A_adjoint(ratio) / physics.A_adjoint(torch.ones_like(x)), x, atol=1e-5)
        assert rl(physics.A(x)).min() > 0  # the estimate stays positive

    def test_it_keeps_the_total_intensity(self, camera):
        physics = PhysicsSpec(kernel="Box_R2", noise_level=0).build()
        y = physics.A(camera)
        x = RichardsonLucy(physics, iterations=20, stop="iterations")(y)
        assert float(x.sum()) == pytest.approx(float(y.sum()), rel=1e-3)

    def test_tv_subgradient_of_a_flat_image_is_zero_and_of_an_edge_is_not(self):
        assert torch.equal(tv_subgradient(torch.ones(1, 1, 8, 8)), torch.zeros(1, 1, 8, 8))
        edge = torch.zeros(1, 1, 8, 8)
        edge[..., 4:] = 1
        assert tv_subgradient(edge).abs().sum() > 0

    def test_normalised_residual_is_one_at_the_truth(self):
        generator = torch.Generator().manual_seed(0)
        clean = torch.rand(4, 1, 64, 64, generator=generator) * 0.8 + 0.1
        gain, sigma = 1 / 200, 0.01
        noisy = gain * torch.poisson(clean / gain, generator=generator) + sigma * torch.randn(
            clean.shape, generator=generator)
        assert normalised_residual(noisy, clean, gain, sigma).mean() == pytest.approx(1.0, abs=0.03)


class TestStoppingRule:
    @pytest.mark.parametrize("case", CASES)
    def test_within_one_db_of_the_best_iteration_and_far_better_than_running_on(self, camera, case):
        physics = PhysicsSpec(**CASES[case]).build()
        y = physics(camera, generator=torch.Generator().manual_seed(1))
        stopped = RichardsonLucy(physics, iterations=400)
        estimate = stopped(y)
        trajectory = [psnr(RichardsonLucy(physics, iterations=n, stop="iterations")(y), camera)
                      for n in (2, 5, 10, 20, 40, 80, 150, 300)]
        assert psnr(estimate, camera) > max(trajectory) - 1.0, (int(stopped.stopped_at[0]), trajectory)
        assert psnr(estimate, camera) > psnr(torch.nn.functional.interpolate(y, scale_factor=physics.upscale)
                                             if physics.upscale > 1 else y, camera) + 1.0
        assert 0 < int(stopped.stopped_at[0]) < 400

    def test_rl_tv_is_no_worse_on_a_noisy_photon_image(self, camera):
        physics = PhysicsSpec(**CASES["photons"]).build()
        y = physics(camera, generator=torch.Generator().manual_seed(2))
        plain = psnr(RichardsonLucy(physics, iterations=60, stop="iterations")(y), camera)
        regularised = psnr(RichardsonLucy(physics, iterations=60, stop="iterations", tv_weight=0.004)(y), camera)
        assert regularised > plain  # run on past the best iteration, TV keeps the noise down


class TestRegistryAndCommands:
    def test_names(self):
        assert canonical_kind("rl") == canonical_kind("Richardson-Lucy") == "richardson-lucy"

    def test_not_for_bicubic_down_sampling(self):
        physics = PhysicsSpec(task="sr", sr_factor=2, noise_level=2).build()
        with pytest.raises(ConfigError, match="does not apply"):
            build_baseline("rl", physics)

    def test_restore_16_bit_counts_keeps_units(self, camera, tmp_path, capsys):
        physics = PhysicsSpec(kernel="Gaussian_R2", noise_level=0).build()
        counts = (physics.A(camera)[0, 0].numpy() * 30000 + 500).astype(np.uint16)
        tifffile.imwrite(tmp_path / "cells.tif", counts)
        assert main(["restore", str(tmp_path / "cells.tif"), str(tmp_path / "out.tif"), "--model-kind", "rl",
                     "--kernel", "Gaussian_R2", "--quiet"]) == 0
        restored = tifffile.imread(tmp_path / "out.tif")
        assert restored.dtype == np.uint16 and restored.shape == counts.shape
        assert abs(float(restored.mean()) - float(counts.mean())) < 0.02 * float(counts.mean())

    def test_sei_test_scores_it(self, tmp_path, capsys):
        assert main(["test", "--dataset", "sample", "--kernel", "Gaussian_R1", "--model-kind", "rl",
                     "--out-dir", str(tmp_path / "eval"), "--quiet"]) == 0
        assert "PSNR" in capsys.readouterr().out


class TestBadInput:
    def test_negative_or_zero_psf(self):
        check_positive_kernel(torch.tensor([[0.0, 1.0, 0.0]]))
        with pytest.raises(ConfigError, match="negative values"):
            check_positive_kernel(torch.tensor([[-0.5, 2.0, -0.5]]))
        with pytest.raises(ConfigError, match="positive sum"):
            check_positive_kernel(torch.zeros(3, 3))

    def test_psf_larger_than_the_image(self):
        physics = PhysicsSpec(kernel="Gaussian_R3", noise_level=2).build()
        with pytest.raises(ImageError, match="larger than the image"):
            RichardsonLucy(physics)(torch.rand(1, 1, 6, 6))

    def test_bad_settings(self):
        physics = PhysicsSpec(kernel="Gaussian_R2", noise_level=2).build()
        for settings in ({"iterations": 0}, {"tv_weight": -1.0}, {"tv_weight": 1.5}, {"stop": "never"}):
            with pytest.raises(ConfigError):
                RichardsonLucy(physics, **settings)

    def test_a_sharpening_psf_from_the_command_line_is_one_line(self, tmp_path, capsys):
        kernel = np.zeros((5, 5), np.float32)
        kernel[2, 2], kernel[2, 1], kernel[2, 3] = 2.0, -0.5, -0.5
        np.save(tmp_path / "sharpen.npy", kernel)
        tifffile.imwrite(tmp_path / "a.tif", np.full((32, 32), 1000, np.uint16))
        assert main(["restore", str(tmp_path / "a.tif"), str(tmp_path / "b.tif"), "--model-kind", "rl", "--kernel",
                     str(tmp_path / "sharpen.npy"), "--noise-level", "1", "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "negative entries" in err  # the kernel reader refuses it first
