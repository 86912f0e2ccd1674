"""SURE: its constant, the probe, gradients through both evaluations, the exact divergence (Jacobian-vector
product), errors (SURE against the true error, for every operator, both noise models and both divergence estimates,
is in test_loss_contracts.py)."""

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


class TestJacobianProduct:
    """``divergence="jvp"``: Hutchinson's ``b^T A J b`` with the exact Jacobian at ``y``."""

    def test_it_is_the_dense_jacobians_quadratic_form_with_the_same_probe(self):
        physics = make_physics("sr", sr_factor=2, noise_level=5)
        model = fixed_network(2).double()
        y = torch.rand(1, 3, 8, 8, dtype=torch.float64)
        terms = sure_gaussian(model, physics, y, 5 / 255, torch.Generator().manual_seed(3), divergence="jvp")
        probe = interior_probe(y, (0, 0), torch.Generator().manual_seed(3))  # the probe SURE drew
        jacobian = torch.autograd.functional.jacobian(lambda v: physics.A(model(v)), y).reshape(y.numel(), y.numel())
        expected = probe.flatten() @ jacobian @ probe.flatten() / y.numel()
        assert terms.divergence.item() == pytest.approx(expected.item(), rel=1e-9)
        gain = ((jacobian - torch.eye(y.numel(), dtype=y.dtype)) @ probe.flatten()).pow(2).mean()
        assert terms.noise_gain.item() == pytest.approx(gain.item(), rel=1e-9)

    def test_it_is_the_finite_differences_limit_and_so_are_its_gradients(self):
        physics = make_physics("deblurring", kernel="Box_R2", noise_level=5)
        model = fixed_network().double().train()
        y = torch.rand(2, 3, 24, 24, dtype=torch.float64)
        values, gradients = {}, {}
        for divergence, tau in (("jvp", 0.01), ("finite-difference", 1e-7), ("finite-difference", 0.01)):
            terms = sure_gaussian(model, physics, y, 5 / 255, torch.Generator().manual_seed(0), margin=(2, 2),
                                  tau=tau, divergence=divergence)
            values[divergence, tau] = terms.divergence.item()
            gradients[divergence, tau] = torch.autograd.grad(terms.loss, model.tail.weight)[0]
        assert values["jvp", 0.01] == pytest.approx(values["finite-difference", 1e-7], rel=1e-5)
        assert values["jvp", 0.01] != pytest.approx(values["finite-difference", 0.01], rel=1e-5)  # not a copy
        exact, limit = gradients["jvp", 0.01], gradients["finite-difference", 1e-7]
        assert (exact - limit).norm() / exact.norm() < 1e-4

    def test_under_bf16_autocast_it_stays_near_float32(self):
        """The finite difference subtracts two bf16 outputs that agree to two digits; the product is computed as
        such and keeps bf16's relative precision."""
        physics = make_physics("deblurring", kernel="Box_R2", noise_level=5)
        model, y = fixed_network(), torch.rand(4, 3, 32, 32)
        exact = sure_gaussian(model, physics, y, 5 / 255, torch.Generator().manual_seed(0), margin=(2, 2),
                              divergence="jvp").divergence.item()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = sure_gaussian(model, physics, y, 5 / 255, torch.Generator().manual_seed(0), margin=(2, 2),
                                divergence="jvp").divergence.float().item()
        assert low == pytest.approx(exact, rel=0.02)


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
        with pytest.raises(ConfigError, match="finite-difference, jvp"):
            sure_gaussian(fixed_network(), physics, torch.rand(1, 3, 16, 16), 0.02, divergence="exact")

    def test_a_network_without_forward_mode_derivatives_is_a_clear_error(self):
        class NoForwardMode(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return 2 * x

            @staticmethod
            def backward(ctx, grad):
                return 2 * grad

        physics = make_physics("deblurring", kernel="Box_R2")
        with pytest.raises(ConfigError, match="--divergence finite-difference"):
            sure_gaussian(NoForwardMode.apply, physics, torch.rand(1, 3, 16, 16), 0.02, divergence="jvp")


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
