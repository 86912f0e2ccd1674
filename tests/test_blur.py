"""FFT blur: agreement with a direct circular convolution, its inverses, caching, errors (the operator contract,
adjointness included, is in test_operator_contracts.py)."""

from __future__ import annotations

import pytest
import torch

from sei.core.errors import ImageTooSmallError, ShapeError
from sei.physics import FFTBlur


def circular_convolution(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Reference: sum over kernel taps of shifted images, kernel centred at (kh // 2, kw // 2)."""
    out = torch.zeros_like(x)
    kh, kw = kernel.shape
    for i in range(kh):
        for j in range(kw):
            out += kernel[i, j] * torch.roll(x, shifts=(i - kh // 2, j - kw // 2), dims=(-2, -1))
    return out


class TestForward:
    @pytest.mark.parametrize("kernel", ["Gaussian_R1", "Box_R2"])
    @pytest.mark.parametrize("size", [(20, 27), (13, 13), (32, 17)])
    def test_matches_direct_circular_convolution(self, kernel, size):
        physics = FFTBlur(kernel)
        x = torch.randn(2, 3, *size, dtype=torch.float64)
        expected = circular_convolution(x, physics.kernel.double())
        assert torch.allclose(physics.A(x), expected, atol=1e-10)

    def test_asymmetric_kernel_is_not_flipped_wrongly(self):
        kernel = torch.zeros(3, 5)
        kernel[0, 4] = 1.0  # a pure shift by (-1, +2)
        physics = FFTBlur(kernel)
        x = torch.randn(1, 1, 12, 15, dtype=torch.float64)
        assert torch.allclose(physics.A(x), torch.roll(x, shifts=(-1, 2), dims=(-2, -1)), atol=1e-12)

    def test_constant_image_is_preserved(self):
        physics = FFTBlur("Gaussian_R2")
        x = torch.full((1, 3, 30, 40), 0.37)
        assert torch.allclose(physics.A(x), x, atol=1e-6)

    def test_margin(self):
        assert FFTBlur("Gaussian_R2").margin == (6, 6)
        assert FFTBlur("Box_R3").margin == (3, 3)
        assert FFTBlur(torch.ones(5, 9)).margin == (2, 4)

    def test_low_precision_inputs_compute_in_float32(self):
        physics = FFTBlur("Box_R2")
        x = torch.rand(1, 3, 16, 16)
        out = physics.A(x.to(torch.bfloat16))
        assert out.dtype == torch.float32
        assert torch.allclose(out, physics.A(x), atol=1e-2)


class TestInverses:
    def test_pseudo_inverse_of_box_blur_drops_its_zeros(self):
        # a 5-px box has exact zeros in its transfer function on a 20-px grid
        physics = FFTBlur("Box_R2")
        x = torch.randn(1, 1, 20, 20, dtype=torch.float64)
        recovered = physics.A_dagger(physics.A(x))
        assert torch.isfinite(recovered).all()
        assert torch.allclose(physics.A(recovered), physics.A(x), atol=1e-8)

    def test_wiener_reduces_error_on_a_natural_image(self, natural_image, generator):
        physics = FFTBlur("Gaussian_R2")
        x = natural_image[None]
        y = physics.A(x) + 0.02 * torch.randn(x.shape, generator=generator)
        restored = physics.wiener(y, reg=1e-2)
        assert (restored - x).pow(2).mean() < (y - x).pow(2).mean()
        with pytest.raises(ValueError):
            physics.wiener(y, reg=0)


def band_and_interior_error(estimate: torch.Tensor, truth: torch.Tensor, band: int) -> tuple[float, float]:
    """Mean squared error on the outer ``band`` pixels and on the rest."""
    error = (estimate - truth).pow(2)
    inner = torch.zeros_like(error, dtype=torch.bool)
    inner[..., band:-band, band:-band] = True
    return error[~inner].mean().item(), error[inner].mean().item()


class TestBoundaryModels:
    """``reflect`` and ``replicate``: the blur of the image extended as ``F.pad`` extends it, cropped back."""

    @pytest.mark.parametrize("boundary", ["reflect", "replicate"])
    @pytest.mark.parametrize("kernel", ["Gaussian_R1", torch.arange(15.0).reshape(3, 5)])
    def test_matches_direct_convolution_of_the_padded_image(self, boundary, kernel):
        physics = FFTBlur(kernel, boundary=boundary)
        x = torch.randn(2, 3, 17, 22, dtype=torch.float64)
        mh, mw = physics.margin
        padded = torch.nn.functional.pad(x, (mw, mw, mh, mh), mode=boundary)
        expected = circular_convolution(padded, physics.kernel.double())[..., mh:-mh, mw:-mw]
        assert torch.allclose(physics.A(x), expected, atol=1e-12)

    def test_no_pixel_mixes_with_the_opposite_border(self):
        x = torch.zeros(1, 1, 20, 20, dtype=torch.float64)
        x[..., 0, 0] = 1.0
        circular, reflect = FFTBlur("Box_R2").A(x), FFTBlur("Box_R2", boundary="reflect").A(x)
        assert circular[..., -1, -1] > 0.01 and abs(reflect[..., -1, -1]) < 1e-15

    def test_constant_image_is_preserved(self):
        for boundary in ("reflect", "replicate"):
            x = torch.full((1, 1, 15, 18), 0.37, dtype=torch.float64)
            assert torch.allclose(FFTBlur("Gaussian_R2", boundary=boundary).A(x), x, atol=1e-12)

    def test_prox_l2_is_differentiable_in_a_learned_step_size(self):
        physics = FFTBlur("Gaussian_R1", boundary="reflect")
        z, y = torch.randn(2, 1, 1, 9, 11, dtype=torch.float64)
        gamma = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda g, v: physics.prox_l2(z, v, g), (gamma, y.requires_grad_()))

    def test_the_right_model_removes_the_edge_error_of_wiener(self, natural_image):
        x = natural_image[None, :1].double()
        y = FFTBlur("Gaussian_R2", boundary="reflect").A(x)  # a field of view that does not wrap
        errors = {boundary: band_and_interior_error(FFTBlur("Gaussian_R2", boundary=boundary).wiener(y, 1e-4), x, 16)
                  for boundary in ("circular", "reflect")}
        assert errors["reflect"][0] < 0.2 * errors["circular"][0]  # the edge ringing is gone
        assert errors["reflect"][1] <= 1.05 * errors["circular"][1]  # and the interior loses nothing

    def test_unknown_boundary_and_too_small_image(self):
        from sei.core.errors import UnknownNameError

        with pytest.raises(UnknownNameError, match="periodic"):
            FFTBlur("Box_R2", boundary="periodic")
        with pytest.raises(ImageTooSmallError, match="reflected"):
            FFTBlur("Gaussian_R2", boundary="reflect").A(torch.randn(1, 1, 5, 40))


class TestCacheAndErrors:
    def test_transfer_functions_are_cached_per_size(self):
        physics = FFTBlur("Gaussian_R1")
        physics.A(torch.randn(1, 1, 16, 16))
        physics.A(torch.randn(3, 1, 16, 16))
        assert len(physics._transfer) == 1
        physics.A(torch.randn(1, 1, 16, 20))
        physics.A(torch.randn(1, 1, 16, 20, dtype=torch.float64))
        assert len(physics._transfer) == 3

    def test_image_smaller_than_kernel(self):
        with pytest.raises(ImageTooSmallError, match="smaller than the 13x13"):
            FFTBlur("Gaussian_R2").A(torch.randn(1, 3, 10, 40))

    @pytest.mark.parametrize("bad", [torch.randn(3, 16, 16), torch.randint(0, 5, (1, 1, 16, 16))])
    def test_bad_input_shapes(self, bad):
        with pytest.raises(ShapeError):
            FFTBlur("Box_R2").A(bad)


def anisotropic_psf() -> torch.Tensor:
    """A small 3-D PSF, longer along z than across and not symmetric (flips would show)."""
    z, y, x = torch.meshgrid(torch.arange(5.0) - 2, torch.arange(3.0) - 1, torch.arange(5.0) - 2, indexing="ij")
    psf = torch.exp(-(z**2) / 4 - (y**2 + x**2) / 1.5) * (1 + 0.2 * (x + 2)) * (1 + 0.1 * (z + 2))
    return psf / psf.sum()


def direct_convolution_3d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Reference: sum over the PSF's taps of shifted volumes, centred at (kd // 2, kh // 2, kw // 2)."""
    out = torch.zeros_like(x)
    for (i, j, k), weight in zip(torch.cartesian_prod(*(torch.arange(n) for n in kernel.shape)).tolist(),
                                 kernel.flatten().tolist()):
        shifts = (i - kernel.shape[0] // 2, j - kernel.shape[1] // 2, k - kernel.shape[2] // 2)
        out += weight * torch.roll(x, shifts=shifts, dims=(-3, -2, -1))
    return out


class TestVolumes:
    """A 3-D PSF blurs ``(B, C, D, H, W)`` volumes: the same operator, its FFTs over three axes."""

    @pytest.mark.parametrize("boundary", ["circular", "reflect", "replicate"])
    def test_matches_direct_convolution(self, boundary):
        physics = FFTBlur(anisotropic_psf(), boundary=boundary)
        x = torch.randn(2, 1, 9, 10, 13, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        assert physics.spatial_dims == 3 and physics.margin == (2, 1, 2)
        kernel = physics.kernel.double()
        if boundary == "circular":
            expected = direct_convolution_3d(x, kernel)
        else:
            padded = torch.nn.functional.pad(x, (2, 2, 1, 1, 2, 2), mode=boundary)
            expected = direct_convolution_3d(padded, kernel)[..., 2:-2, 1:-1, 2:-2]
        assert torch.allclose(physics.A(x), expected, atol=1e-12)

    @pytest.mark.parametrize("boundary", ["circular", "reflect", "replicate"])
    def test_adjoint_normal_operators_and_prox(self, boundary):
        physics = FFTBlur(anisotropic_psf(), boundary=boundary)
        generator = torch.Generator().manual_seed(1)
        x, y = torch.randn(2, 1, 2, 7, 8, 11, dtype=torch.float64, generator=generator)
        lhs, rhs = (physics.A(x) * y).sum(), (x * physics.A_adjoint(y)).sum()
        assert abs(lhs - rhs) < 1e-12 * physics.A(x).norm() * y.norm()
        assert torch.allclose(physics.A_adjoint_A(x), physics.A_adjoint(physics.A(x)), atol=1e-12)
        estimate = physics.prox_l2(x, y, 0.7)
        gradient = 0.7 * physics.A_adjoint(physics.A(estimate) - y) + (estimate - x)
        assert gradient.abs().max() < 1e-9

    def test_gradients_in_float64(self):
        physics = FFTBlur(anisotropic_psf(), boundary="reflect")
        x = torch.randn(1, 1, 6, 5, 7, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(physics.A, (x,))
        assert torch.autograd.gradcheck(physics.A_adjoint, (x,))

    def test_margin_is_where_a_crop_differs_from_the_whole(self):
        physics = FFTBlur(anisotropic_psf())
        x = torch.randn(1, 1, 20, 16, 18, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
        whole, crop = physics.A(x), physics.A(x[..., 5:15, 4:12, 3:15])
        inner = (..., slice(2, -2), slice(1, -1), slice(2, -2))
        assert torch.allclose(crop[inner], whole[..., 5:15, 4:12, 3:15][inner], atol=1e-12)
        assert not torch.allclose(crop, whole[..., 5:15, 4:12, 3:15], atol=1e-3)

    def test_wiener_restores_a_blurred_volume(self):
        from sei.physics.blur import laplacian_power

        generator = torch.Generator().manual_seed(3)
        x = torch.nn.functional.avg_pool3d(torch.rand(1, 1, 16, 24, 24, generator=generator), 3, 1, 1)
        physics = FFTBlur(anisotropic_psf(), boundary="reflect")
        y = physics.A(x) + 0.002 * torch.randn(x.shape, generator=generator)
        estimate = physics.wiener(y, lambda *size: 1e-3 * laplacian_power(*size))
        assert estimate.shape == x.shape
        assert (estimate - x).norm() < 0.7 * (y - x).norm()

    def test_the_other_dimensionality_is_refused_in_one_line(self):
        with pytest.raises(ShapeError, match=r"\(B, C, D, H, W\) \(volumes\)"):
            FFTBlur(anisotropic_psf()).A(torch.randn(1, 1, 16, 16))
        with pytest.raises(ShapeError, match=r"\(B, C, H, W\) \(images\)"):
            FFTBlur("Box_R2").A(torch.randn(1, 1, 8, 16, 16))
        with pytest.raises(ImageTooSmallError, match="volume of size 4x16x16 is smaller than the 5x3x5"):
            FFTBlur(anisotropic_psf()).A(torch.randn(1, 1, 4, 16, 16))

    def test_a_3d_psf_is_refused_where_only_2d_kernels_apply(self, tmp_path):
        import numpy as np

        from sei.core.errors import KernelError
        from sei.physics.kernels import VOLUME_DIMS, load_kernel

        path = tmp_path / "psf.npy"
        np.save(path, anisotropic_psf().numpy())
        assert load_kernel(path, dims=VOLUME_DIMS).shape == (5, 3, 5)
        with pytest.raises(KernelError, match=r"must be 2-D \(kh, kw\) here \(a 3-D PSF blurs volumes\)"):
            load_kernel(path)
        np.save(path, anisotropic_psf()[:1].numpy())  # one plane: a 2-D kernel
        assert load_kernel(path).shape == (3, 5)
