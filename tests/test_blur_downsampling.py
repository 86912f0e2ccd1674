"""Super-resolution with a PSF: blur by a kernel, then decimate; its margin in measurement pixels (the operator
contract, adjoint, inverses and gradients included, is in test_operator_contracts.py)."""

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


class TestExceptions:
    def test_sizes_must_be_multiples(self):
        with pytest.raises(ShapeError, match="multiples of 3"):
            BlurDownsampling("Box_R2", 3).A(torch.rand(1, 3, 20, 21))

    @pytest.mark.parametrize("factor", [1, 0, 2.5, True])
    def test_bad_factor(self, factor):
        with pytest.raises(ConfigError, match="factor"):
            BlurDownsampling("Box_R2", factor)
