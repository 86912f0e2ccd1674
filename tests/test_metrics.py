"""Metrics: quantisation, luma, PSNR and SSIM against independent references, LPIPS availability."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sei.core.errors import ImageTooSmallError, ResourceUnavailableError, ShapeError
from sei.metrics import LPIPS, psnr, quantize, rgb_to_luma, ssim


def noisy_pair(generator, shape=(2, 3, 40, 57), sigma=0.05):
    reference = torch.rand(shape, generator=generator)
    estimate = (reference + sigma * torch.randn(shape, generator=generator)).clamp(0, 1)
    return estimate, reference


class TestQuantizeAndLuma:
    def test_quantize(self):
        x = torch.tensor([-0.2, 0.0, 0.5, 0.50196, 1.3])
        assert torch.allclose(quantize(x), torch.tensor([0.0, 0.0, 128 / 255, 128 / 255, 1.0]))

    def test_luma_weights(self):
        x = torch.zeros(1, 3, 2, 2)
        x[:, 0], x[:, 1], x[:, 2] = 1.0, 0.5, 0.25
        assert torch.allclose(rgb_to_luma(x), torch.full((1, 1, 2, 2), 0.299 + 0.2935 + 0.0285))

    def test_grayscale_is_its_own_luma(self):
        x = torch.rand(1, 1, 5, 5)
        assert torch.equal(rgb_to_luma(x), x)

    def test_other_channel_counts_are_refused(self):
        with pytest.raises(ShapeError):
            rgb_to_luma(torch.rand(1, 4, 5, 5))


class TestPSNR:
    def test_matches_definition_on_quantised_luma(self, generator):
        estimate, reference = noisy_pair(generator)
        luma_e = np.round(estimate.double().numpy() * 255).clip(0, 255) / 255
        luma_r = np.round(reference.double().numpy() * 255).clip(0, 255) / 255
        weights = np.array([0.299, 0.587, 0.114]).reshape(1, 3, 1, 1)
        mse = (((luma_e - luma_r) * weights).sum(1) ** 2).reshape(2, -1).mean(1)
        assert np.allclose(psnr(estimate, reference).numpy(), 10 * np.log10(1 / mse), atol=1e-4)

    def test_known_value(self):
        reference = torch.zeros(1, 1, 16, 16)
        estimate = torch.full((1, 1, 16, 16), 10 / 255)
        assert psnr(estimate, reference).item() == pytest.approx(20 * math.log10(255 / 10), abs=1e-4)

    def test_per_image_and_any_size(self, generator):
        estimate, reference = noisy_pair(generator, shape=(3, 3, 17, 91))
        values = psnr(estimate, reference)
        assert values.shape == (3,)
        assert torch.allclose(values[1:2], psnr(estimate[1:2], reference[1:2]))

    def test_identical_images(self):
        x = torch.rand(1, 3, 8, 8)
        assert torch.isinf(psnr(x, x)).all()

    def test_shape_mismatch(self):
        with pytest.raises(ShapeError, match="differ in shape"):
            psnr(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))


class TestSSIM:
    def test_matches_scikit_image(self, generator):
        from skimage.metrics import structural_similarity

        estimate, reference = noisy_pair(generator, shape=(2, 3, 45, 61), sigma=0.1)
        values = ssim(estimate, reference)
        for i in range(2):
            luma_e = rgb_to_luma(quantize(estimate.double()))[i, 0].numpy()
            luma_r = rgb_to_luma(quantize(reference.double()))[i, 0].numpy()
            expected = structural_similarity(luma_e, luma_r, gaussian_weights=True, sigma=1.5,
                                             use_sample_covariance=False, data_range=1.0)
            assert values[i].item() == pytest.approx(expected, abs=1e-6)

    def test_identical_images_score_one(self):
        x = torch.rand(2, 3, 20, 30)
        assert torch.allclose(ssim(x, x), torch.ones(2))

    def test_grayscale(self, generator):
        estimate, reference = noisy_pair(generator, shape=(1, 1, 32, 32))
        assert 0 < ssim(estimate, reference).item() < 1

    def test_too_small(self):
        with pytest.raises(ImageTooSmallError, match="11x11"):
            ssim(torch.rand(1, 3, 10, 30), torch.rand(1, 3, 10, 30))


class TestLPIPS:
    def test_missing_weights_give_a_clear_error(self, tmp_path, monkeypatch):
        monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
        with pytest.raises(ResourceUnavailableError, match="alexnet-owt-7be5be79.pth"):
            LPIPS()

    def test_runs_with_cached_backbone_weights(self, tmp_path, monkeypatch):
        # A stand-in AlexNet checkpoint in the hub cache exercises the real loading path offline.
        import torchvision

        monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
        checkpoints = tmp_path / "checkpoints"
        checkpoints.mkdir()
        torch.manual_seed(0)
        torch.save(torchvision.models.alexnet(weights=None).state_dict(), checkpoints / "alexnet-owt-7be5be79.pth")
        metric = LPIPS()
        x = torch.rand(2, 3, 64, 64)
        assert torch.allclose(metric(x, x), torch.zeros(2), atol=1e-6)
        distance = metric(x, torch.rand(2, 3, 64, 64))
        assert distance.shape == (2,) and (distance > 0).all()
