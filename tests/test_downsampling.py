"""Bicubic down-sampling: agreement with interpolate, exact separable matrices, image sizes that are not multiples of
the factor (the operator contract is in test_operator_contracts.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sei.core.errors import ConfigError, ImageTooSmallError, ShapeError
from sei.physics import BicubicDownsampling, downsampling_matrix

FACTORS = (2, 3, 4)


class TestForward:
    @pytest.mark.parametrize("factor", FACTORS)
    @pytest.mark.parametrize("size", [(48, 36), (50, 41), (13, 29)])
    def test_is_antialiased_bicubic_interpolate(self, factor, size):
        physics = BicubicDownsampling(factor)
        x = torch.rand(2, 3, *size)
        expected = F.interpolate(x, scale_factor=1 / factor, mode="bicubic", antialias=True)
        out = physics.A(x)
        assert out.shape == (2, 3, size[0] // factor, size[1] // factor)
        assert torch.equal(out, expected)

    @pytest.mark.parametrize("factor", FACTORS)
    @pytest.mark.parametrize("size", [(48, 36), (50, 41), (9, 70)])
    def test_separable_matrices_reproduce_interpolate(self, factor, size):
        x = torch.randn(1, 2, *size, dtype=torch.float64)
        m_h = downsampling_matrix(size[0], factor)
        m_w = downsampling_matrix(size[1], factor)
        assert torch.allclose(m_h @ x @ m_w.T, BicubicDownsampling(factor).A(x), atol=1e-12)
        assert torch.allclose(m_h.sum(dim=1), torch.ones(size[0] // factor, dtype=torch.float64))

    def test_upscale_and_margin(self):
        physics = BicubicDownsampling(3)
        assert physics.upscale == 3 and physics.margin == (0, 0)


class TestAdjointAndInverses:
    @pytest.mark.parametrize("factor", FACTORS)
    @pytest.mark.parametrize("size", [(50, 41), (31, 23)])
    def test_adjointness_when_sizes_are_not_multiples_of_the_factor(self, factor, size):
        physics = BicubicDownsampling(factor)
        generator = torch.Generator().manual_seed(factor)
        for dtype in (torch.float64, torch.float32):
            x = torch.randn(2, 3, *size, generator=generator, dtype=dtype)
            ax = physics.A(x)
            y = torch.randn(ax.shape, generator=generator, dtype=dtype)
            lhs = (ax * y).sum()
            rhs = (x * physics.A_adjoint(y, img_size=size)).sum()
            assert abs(lhs - rhs) / (ax.norm() * y.norm()) < 1e-5
            if dtype == torch.float64:
                assert abs(lhs - rhs) / abs(lhs) < 1e-5

    def test_adjoint_uses_operator_img_size_attribute(self):
        physics = BicubicDownsampling(2)
        physics.img_size = (3, 51, 33)
        assert physics.A_adjoint(torch.randn(1, 3, 25, 16)).shape == (1, 3, 51, 33)

    def test_adjoint_rejects_inconsistent_size(self):
        with pytest.raises(ShapeError, match="does not down-sample"):
            BicubicDownsampling(2).A_adjoint(torch.randn(1, 3, 25, 16), img_size=(40, 33))

    @pytest.mark.parametrize("factor", FACTORS)
    def test_pseudo_inverse(self, factor):
        physics = BicubicDownsampling(factor)
        x = torch.randn(2, 3, 11 * factor + 1, 9 * factor, dtype=torch.float64)
        y = physics.A(x)
        x_dagger = physics.A_dagger(y, img_size=x.shape[-2:])
        assert x_dagger.shape == x.shape
        assert torch.allclose(physics.A(x_dagger), y, atol=1e-9)
        # minimum norm: A^+ y lies in the row space of A, which A^+ A projects onto
        assert torch.allclose(physics.A_dagger(physics.A(x_dagger), img_size=x.shape[-2:]), x_dagger, atol=1e-9)

    def test_wiener_beats_the_adjoint(self, natural_image, generator):
        physics = BicubicDownsampling(2)
        x = natural_image[None]
        y = physics.A(x) + 0.01 * torch.randn(1, 3, 48, 64, generator=generator)
        restored = physics.wiener(y, reg=1e-3)
        upsampled = F.interpolate(y, scale_factor=2, mode="nearest")
        assert restored.shape == x.shape
        assert (restored - x).pow(2).mean() < (upsampled - x).pow(2).mean()


class TestErrors:
    @pytest.mark.parametrize("factor", [1, 0, 2.5, "2", True])
    def test_bad_factor(self, factor):
        with pytest.raises(ConfigError):
            BicubicDownsampling(factor)

    def test_image_smaller_than_factor(self):
        with pytest.raises(ImageTooSmallError):
            BicubicDownsampling(4).A(torch.randn(1, 3, 3, 10))
