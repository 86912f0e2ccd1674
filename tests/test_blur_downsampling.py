"""Super-resolution with a PSF: blur by a kernel, then decimate. Exact adjoint, pseudo-inverse, prox, margin."""

from __future__ import annotations

import pytest
import torch

from sei.core.errors import ConfigError, ShapeError
from sei.physics import BlurDownsampling, FFTBlur, make_physics, physics_margin


def _inner(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() * b.double()).sum())


@pytest.mark.parametrize("factor", [2, 3, 4])
@pytest.mark.parametrize("size", [(24, 36), (36, 24)])
class TestOperator:
    def test_forward_is_blur_then_every_rth_pixel(self, factor, size):
        op = BlurDownsampling("Gaussian_R1", factor)
        x = torch.rand(2, 3, *size, dtype=torch.float64)
        y = op.A(x)
        assert y.shape == (2, 3, size[0] // factor, size[1] // factor)
        assert torch.allclose(y, FFTBlur("Gaussian_R1").A(x)[..., ::factor, ::factor])

    def test_adjoint(self, factor, size):
        op = BlurDownsampling("Box_R2", factor)
        x = torch.randn(2, 3, *size, dtype=torch.float64)
        y = torch.randn(2, 3, size[0] // factor, size[1] // factor, dtype=torch.float64)
        assert _inner(op.A(x), y) == pytest.approx(_inner(x, op.A_adjoint(y)), rel=1e-10)

    def test_a_a_adjoint_in_closed_form(self, factor, size):
        op = BlurDownsampling("Gaussian_R1", factor)
        y = torch.randn(1, 2, size[0] // factor, size[1] // factor, dtype=torch.float64)
        assert torch.allclose(op.A_A_adjoint(y), op.A(op.A_adjoint(y)), atol=1e-10)

    def test_pseudo_inverse(self, factor, size):
        op = BlurDownsampling("Gaussian_R1", factor)
        y = torch.randn(1, 3, size[0] // factor, size[1] // factor, dtype=torch.float64)
        x = op.A_dagger(y)
        assert torch.allclose(op.A(x), y, atol=1e-6)  # A A^+ = I (A has full row rank)
        # minimum norm: x lies in the range of A^T, so it is unchanged by the projection A^+ A
        assert torch.allclose(op.A_dagger(op.A(x)), x, atol=1e-6)

    def test_prox_solves_its_normal_equations(self, factor, size):
        op = BlurDownsampling("Box_R2", factor)
        z = torch.randn(1, 3, *size, dtype=torch.float64)
        y = torch.randn(1, 3, size[0] // factor, size[1] // factor, dtype=torch.float64)
        gamma = 3.0
        x = op.prox_l2(z, y, gamma)
        residual = x - z + gamma * op.A_adjoint(op.A(x) - y)  # the gradient of the prox objective
        assert residual.abs().max().item() < 1e-9


class TestAgainstDeepinv:
    def test_same_as_deepinv_downsampling_with_a_circular_filter(self):
        import deepinv

        kernel = make_physics("deblurring", kernel="Gaussian_R1").kernel
        x = torch.rand(1, 3, 32, 40)
        ours = BlurDownsampling(kernel, 2).A(x)
        theirs = deepinv.physics.Downsampling(img_size=(3, 32, 40), filter=kernel[None, None], factor=2,
                                               padding="circular").A(x)
        assert torch.allclose(ours, theirs, atol=1e-5)


class TestSpecAndMargin:
    def test_built_from_the_spec(self):
        op = make_physics("sr", sr_factor=3, kernel="Box_R3", noise_level=2)
        assert isinstance(op, BlurDownsampling) and op.upscale == 3 and op.kernel.shape == (7, 7)

    @pytest.mark.parametrize("kernel, factor, margin", [("Gaussian_R2", 2, 3), ("Gaussian_R2", 4, 2), ("Box_R2", 3, 1)])
    def test_margin_in_measurement_pixels(self, kernel, factor, margin):
        assert physics_margin(BlurDownsampling(kernel, factor)) == (margin, margin)

    def test_interior_of_a_crop_matches_the_whole_image(self):
        # the margin is what makes SURE on crops exact: inside it, a crop's measurement equals the image's
        op = BlurDownsampling("Gaussian_R2", 2)
        x = torch.rand(1, 1, 64, 64, dtype=torch.float64)
        whole = op.A(x)
        crop = op.A(x[..., 16:48, 16:48])
        m = op.margin[0]
        assert torch.allclose(crop[..., m:-m, m:-m], whole[..., 8 + m:24 - m, 8 + m:24 - m])


class TestExceptions:
    def test_sizes_must_be_multiples(self):
        with pytest.raises(ShapeError, match="multiples of 3"):
            BlurDownsampling("Box_R2", 3).A(torch.rand(1, 3, 20, 21))

    @pytest.mark.parametrize("factor", [1, 0, 2.5, True])
    def test_bad_factor(self, factor):
        with pytest.raises(ConfigError, match="factor"):
            BlurDownsampling("Box_R2", factor)


class TestGradient:
    def test_gradients_flow_through_the_operator(self):
        op = BlurDownsampling("Box_R2", 2)
        x = torch.rand(1, 3, 16, 16, requires_grad=True)
        op.A(x).square().sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0
