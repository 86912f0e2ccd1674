"""Super-resolution with a PSF: blur by a kernel, then decimate; its margin in measurement pixels (the operator
contract, adjoint, inverses and gradients included, is in test_operator_contracts.py)."""

from __future__ import annotations

import pytest
import torch

from sei.core.errors import ConfigError, ShapeError
from sei.physics import BlurDownsampling, FFTBlur, make_physics, physics_margin
from sei.physics.spec import PhysicsSpec


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


class TestBoundaryModels:
    """Super-resolution of a field of view that does not wrap: the blur's boundary model, then decimation."""

    @pytest.mark.parametrize("boundary", ["reflect", "replicate"])
    def test_forward_is_the_blur_with_the_boundary_then_every_rth_pixel(self, boundary):
        op = BlurDownsampling("Gaussian_R1", 2, boundary=boundary)
        x = torch.rand(2, 1, 24, 30, dtype=torch.float64)
        assert torch.allclose(op.A(x), FFTBlur("Gaussian_R1", boundary=boundary).A(x)[..., ::2, ::2])
        assert op.boundary == boundary and not op.periodic and f"boundary='{boundary}'" in repr(op)

    def test_the_spec_builds_it_and_the_right_model_removes_the_edge_error(self, natural_image):
        from test_blur import band_and_interior_error

        x = natural_image[None, :1, :96, :96].double()
        y = PhysicsSpec(task="sr", sr_factor=2, kernel="Gaussian_R2", padding="reflect").build().A(x)
        errors = {boundary: band_and_interior_error(
            BlurDownsampling("Gaussian_R2", 2, boundary=boundary).wiener(y, 1e-3), x, 16)
            for boundary in ("circular", "reflect")}
        assert errors["reflect"][0] < 0.5 * errors["circular"][0]  # the edge ringing is gone
        assert errors["reflect"][1] <= 1.05 * errors["circular"][1]  # and the interior loses nothing


def test_a_volume_keeps_every_rth_plane_of_its_3d_blur_from_the_first():
    """Axial super-resolution (sei.core.scaling): the planes are decimated, each plane's pixels are not."""
    from sei.physics import FFTBlur

    psf = torch.rand(5, 3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = torch.rand(1, 2, 12, 9, 10, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for boundary in ("circular", "reflect"):
        expected = FFTBlur(psf, boundary=boundary).A(x)[:, :, 0::3]
        assert torch.allclose(BlurDownsampling(psf, 3, boundary=boundary).A(x), expected, atol=1e-12)
    assert BlurDownsampling(psf, 3).margin == (1, 1, 1)  # 2 planes of the PSF's half-depth: 1 kept plane
    with pytest.raises(ShapeError, match="planes that are multiples of 3"):
        BlurDownsampling(psf, 3).A(x[:, :, :10])
