"""SURE: unbiased for the true measurement error (with and without a margin), probe, gradients, errors."""

from __future__ import annotations

import pytest
import torch

from sei.core.errors import ConfigError, ImageTooSmallError
from sei.losses import interior, interior_probe, sure_gaussian
from sei.models import build_backbone
from sei.physics import make_physics


def fixed_network(upscale: int = 1) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_backbone("unet-tiny", upscale=upscale)
    # damp the random detail branch: f stays a plausible restorer (y plus a non-linear correction) whose
    # true error is of the order of sigma^2, where the divergence term matters
    model.tail.reset_parameters()  # the U-Net's last layer starts at zero (f = identity) otherwise
    with torch.no_grad():
        model.tail.weight.mul_(0.2)
    return model.eval()


def crops(t: torch.Tensor, size: int, upscale: int = 1) -> torch.Tensor:
    """Non-overlapping size x size crops (size*upscale for the image) from a (1, C, H, W) tensor."""
    step = size * upscale
    rows, cols = t.shape[-2] // step, t.shape[-1] // step
    return torch.cat([t[..., r * step:(r + 1) * step, c * step:(c + 1) * step] for r in range(rows) for c in range(cols)])


def average_sure_and_truth(model, physics, x, crop_size, sigma, margin, draws, constant="unbiased"):
    """Mean SURE and mean true interior error ||A f(y) - A x||^2 over measurement crops and noise draws.

    Measurements are simulated on the whole image and then cropped, as in training, so a crop's border
    pixels carry blur from outside the crop.
    """
    generator = torch.Generator().manual_seed(0)
    clean = physics.A(x)
    sure_values, truth_values, naive_values = [], [], []
    for _ in range(draws):
        y = clean + sigma * torch.randn(clean.shape, generator=generator)
        y_crops, clean_crops = crops(y, crop_size), crops(clean, crop_size)
        with torch.no_grad():
            terms = sure_gaussian(model, physics, y_crops, sigma, generator, margin=margin, constant=constant)
            predicted = physics.A(terms.estimate)
        truth_values.append(interior(predicted - clean_crops, margin).pow(2).mean())
        sure_values.append(terms.loss)
        naive_values.append(terms.residual - sigma**2)
    return (torch.stack(sure_values).mean().item(), torch.stack(truth_values).mean().item(),
            torch.stack(naive_values).mean().item())


class TestUnbiasedness:
    def test_deblurring_with_margin(self, natural_image):
        physics = make_physics("deblurring", kernel="Gaussian_R1", noise_level=25)
        sure, truth, naive = average_sure_and_truth(
            fixed_network(), physics, natural_image[None], crop_size=32, sigma=25 / 255,
            margin=physics.margin, draws=8)
        assert sure == pytest.approx(truth, rel=0.03)
        assert abs(naive - truth) / truth > 0.2  # the divergence term matters at this noise level

    def test_margin_is_where_crops_disagree_with_circular_blur(self, natural_image):
        # In a crop of a measurement, the pixels within the margin of the border were blurred with pixels
        # outside the crop; no image of the crop's size explains them through the circular operator, so
        # SURE leaves them out. Inside the margin, the true image explains its crop exactly.
        for kernel in ("Gaussian_R2", "Box_R3"):
            physics = make_physics("deblurring", kernel=kernel)
            x = natural_image[None]
            window = (slice(None), slice(None), slice(20, 60), slice(30, 80))
            circular = physics.A(x[window])
            cropped = physics.A(x)[window]
            assert torch.allclose(interior(circular, physics.margin), interior(cropped, physics.margin), atol=1e-5)
            one_less = (physics.margin[0] - 1, physics.margin[1] - 1)
            assert not torch.allclose(interior(circular, one_less), interior(cropped, one_less), atol=1e-3)

    def test_super_resolution(self, natural_image):
        physics = make_physics("sr", sr_factor=2, noise_level=25)
        sure, truth, _ = average_sure_and_truth(
            fixed_network(upscale=2), physics, natural_image[None], crop_size=16, sigma=25 / 255,
            margin=(0, 0), draws=8)
        assert sure == pytest.approx(truth, rel=0.03)

    def test_reference_constant_only_shifts_the_value(self, natural_image):
        physics = make_physics("deblurring", kernel="Gaussian_R1", noise_level=25)
        model = fixed_network()
        y = physics(natural_image[None, :, :32, :32], generator=torch.Generator().manual_seed(1)).expand(4, -1, -1, -1)
        kwargs = dict(margin=physics.margin, batched_probe=False)
        a = sure_gaussian(model, physics, y, 0.1, torch.Generator().manual_seed(2), **kwargs)
        b = sure_gaussian(model, physics, y, 0.1, torch.Generator().manual_seed(2), constant="reference", **kwargs)
        assert (b.loss - a.loss).item() == pytest.approx(0.01 - 0.01 / 4, abs=1e-6)


class TestProbeAndGradients:
    def test_probe_is_zero_outside_the_interior(self, generator):
        probe = interior_probe(torch.zeros(2, 3, 20, 30), (4, 6), generator)
        inner = probe[..., 4:16, 6:24]
        assert probe.abs().sum() == inner.abs().sum()
        assert (inner != 0).all()
        assert inner.std().item() == pytest.approx(1.0, rel=0.1)

    def test_batched_probe_matches_two_passes(self):
        physics = make_physics("deblurring", kernel="Box_R2", noise_level=5)
        model = fixed_network()
        y = torch.rand(3, 3, 24, 24)
        a = sure_gaussian(model, physics, y, 5 / 255, torch.Generator().manual_seed(4), margin=(2, 2), batched_probe=True)
        b = sure_gaussian(model, physics, y, 5 / 255, torch.Generator().manual_seed(4), margin=(2, 2), batched_probe=False)
        assert torch.allclose(a.loss, b.loss, atol=1e-6)
        assert torch.allclose(a.estimate, b.estimate, atol=1e-6)

    def test_gradients_flow_through_both_evaluations(self):
        physics = make_physics("deblurring", kernel="Box_R2", noise_level=5)
        model = fixed_network().train()
        y = torch.rand(2, 3, 24, 24)
        terms = sure_gaussian(model, physics, y, 5 / 255, torch.Generator().manual_seed(0), margin=(2, 2),
                              batched_probe=False)
        residual_grad = torch.autograd.grad(terms.residual, model.tail.weight, retain_graph=True)[0]
        divergence_grad = torch.autograd.grad(terms.divergence, model.tail.weight)[0]
        assert residual_grad.abs().sum() > 0 and divergence_grad.abs().sum() > 0


class TestErrors:
    def test_crop_smaller_than_margin(self):
        physics = make_physics("deblurring", kernel="Gaussian_R2")
        with pytest.raises(ImageTooSmallError, match="no interior"):
            sure_gaussian(fixed_network(), physics, torch.rand(1, 3, 12, 40), 0.02, margin=physics.margin)

    def test_bad_options(self):
        physics = make_physics("deblurring", kernel="Box_R2")
        with pytest.raises(ConfigError):
            sure_gaussian(fixed_network(), physics, torch.rand(1, 3, 16, 16), 0.02, constant="biased")
        with pytest.raises(ConfigError):
            sure_gaussian(fixed_network(), physics, torch.rand(1, 3, 16, 16), 0.02, tau=0)
