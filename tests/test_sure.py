"""SURE: its constant, the probe, gradients through both evaluations, errors (SURE against the true error, for
every operator and both noise models, is in test_loss_contracts.py)."""

from __future__ import annotations

import pytest
import torch
from helpers import fixed_network

from sei.core.errors import ConfigError, ImageTooSmallError
from sei.losses import interior, interior_probe, sure_gaussian
from sei.physics import make_physics


class TestConstant:
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


def test_sure_matches_the_true_error_in_expectation_for_volumes():
    """A 3-D PSF, a linear restorer of a volume: SURE's average over noise draws is the measurement-domain error's."""
    from sei.data.phantoms import fluorescence_phantom
    from sei.physics import FFTBlur
    from sei.physics.noise import GaussianNoise
    from sei.physics.psf3d import widefield_psf_3d

    psf = widefield_psf_3d(wavelength=520, numerical_aperture=1.3, pixel_size=100, z_step=300, planes=5, size=7)
    physics = FFTBlur(psf, noise_model=GaussianNoise(10.0))
    x = fluorescence_phantom((12, 24, 24), seed=0, anisotropy=3.0)[None, None].double()
    sigma = 10 / 255
    restorer = lambda y: 0.5 * y + 0.5 * physics.A_adjoint(y)  # noqa: E731  a fixed linear map, not the identity
    margin = physics.margin
    estimates, errors = [], []
    for draw in range(40):
        y = physics(x, generator=torch.Generator().manual_seed(draw))
        terms = sure_gaussian(restorer, physics, y, sigma, torch.Generator().manual_seed(100 + draw), margin=margin)
        estimates.append(float(terms.loss))
        errors.append(float(interior(physics.A(restorer(y)) - physics.A(x), margin).pow(2).mean()))
    assert len(margin) == 3
    assert sum(estimates) / 40 == pytest.approx(sum(errors) / 40, rel=0.05)
