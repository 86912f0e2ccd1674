"""Transforms: geometry of the paper's down-scaling, shifts, rotations, and their random parameters."""

from __future__ import annotations

import pytest
import torch

from sei.core.errors import ConfigError, ImageTooSmallError
from sei.transforms import (
    RandomRotate, RandomScale, RandomShift, draw_rotation_params, draw_scale_params, draw_shift_params,
    random_scale, rotate, scale, shift,
)


class TestScale:
    def test_keeps_size_on_non_square_images(self, generator):
        x = torch.rand(3, 3, 37, 52)
        assert random_scale(x, generator).shape == x.shape

    def test_factor_one_is_the_identity(self):
        x = torch.rand(2, 3, 21, 34, dtype=torch.float64)
        centers = torch.tensor([[3.3, 20.0], [10.0, 1.5]])
        assert torch.allclose(scale(x, torch.ones(2), centers), x, atol=1e-10)

    def test_downscaling_geometry(self):
        # with factor 1/2 about centre c, output pixel c + d shows input pixel c + 2d
        x = torch.rand(1, 1, 40, 50, dtype=torch.float64)
        center = torch.tensor([[12.0, 20.0]])
        out = scale(x, torch.tensor([0.5]), center)
        for d_row, d_col in [(0, 0), (3, 2), (-4, 5), (6, -7)]:
            expected = x[0, 0, 12 + 2 * d_row, 20 + 2 * d_col]
            assert out[0, 0, 12 + d_row, 20 + d_col].item() == pytest.approx(expected.item(), abs=1e-9)

    def test_reflection_padding_fills_the_border(self):
        x = torch.rand(1, 1, 16, 16, dtype=torch.float64)
        out = scale(x, torch.tensor([0.5]), torch.tensor([[0.0, 0.0]]))
        # pixel 10 samples position 20, reflected about the last pixel (15) to 10
        assert out[0, 0, 10, 0].item() == pytest.approx(x[0, 0, 10, 0].item(), abs=1e-9)

    def test_per_image_factors(self):
        x = torch.rand(1, 3, 24, 24).expand(2, -1, -1, -1)
        centers = torch.full((2, 2), 11.5)
        out = scale(x, torch.tensor([1.0, 0.5]), centers)
        assert torch.allclose(out[0], x[0], atol=1e-5)
        assert not torch.allclose(out[1], x[1], atol=1e-2)

    def test_draw_params(self, generator):
        factors, centers = draw_scale_params(2000, 30, 50, generator)
        assert set(factors.tolist()) == {0.75, 0.5}
        assert 0.45 < (factors == 0.5).double().mean().item() < 0.55
        assert (centers[:, 0] >= 0).all() and (centers[:, 0] <= 29).all()
        assert (centers[:, 1] >= 0).all() and (centers[:, 1] <= 49).all()
        assert centers[:, 1].max() > 45 and centers[:, 1].min() < 5  # uniform over the whole image

    def test_custom_factors_module(self, generator):
        transform = RandomScale(factors=(1.0,))
        x = torch.rand(2, 3, 16, 20)
        assert torch.allclose(transform(x, generator), x, atol=1e-5)

    def test_same_generator_state_same_output(self):
        x = torch.rand(4, 3, 16, 16)
        a = random_scale(x, torch.Generator().manual_seed(5))
        b = random_scale(x, torch.Generator().manual_seed(5))
        assert torch.equal(a, b)

    def test_gradient_flows_when_asked(self):
        x = torch.rand(1, 3, 12, 12, requires_grad=True)
        scale(x, torch.tensor([0.75]), torch.tensor([[5.0, 6.0]])).sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0

    @pytest.mark.parametrize(
        "factors, centers, error",
        [([1.0], [[0.0, 0.0], [1.0, 1.0]], ConfigError), ([0.0, 1.0], [[0.0, 0.0], [1.0, 1.0]], ConfigError)],
    )
    def test_parameter_errors(self, factors, centers, error):
        with pytest.raises(error):
            scale(torch.rand(2, 1, 8, 8), torch.tensor(factors), torch.tensor(centers))

    def test_too_small(self):
        with pytest.raises(ImageTooSmallError):
            scale(torch.rand(1, 1, 1, 8), torch.tensor([0.5]), torch.tensor([[0.0, 0.0]]))

    def test_bad_module_factors(self):
        with pytest.raises(ConfigError):
            RandomScale(factors=(0.5, -1.0))


class TestShift:
    def test_matches_roll_per_image(self):
        x = torch.rand(3, 2, 9, 14)
        shifts = torch.tensor([[1, 2], [-3, 0], [8, 13]])
        out = shift(x, shifts)
        for i in range(3):
            assert torch.equal(out[i], torch.roll(x[i], shifts=tuple(shifts[i].tolist()), dims=(-2, -1)))

    def test_draw_params_cover_the_image(self, generator):
        shifts = draw_shift_params(500, 7, 11, generator)
        assert set(shifts[:, 0].tolist()) == set(range(7))
        assert set(shifts[:, 1].tolist()) == set(range(11))

    def test_module_is_a_permutation(self, generator):
        x = torch.rand(4, 3, 10, 12)
        out = RandomShift()(x, generator)
        for i in range(4):
            assert torch.equal(out[i].flatten().sort().values, x[i].flatten().sort().values)


class TestRotate:
    def test_90_degrees_matches_rot90(self):
        x = torch.rand(1, 3, 15, 15)
        assert torch.allclose(rotate(x, torch.tensor([90.0])), torch.rot90(x, 1, dims=(2, 3)), atol=1e-6)
        assert torch.allclose(rotate(x, torch.tensor([180.0]), mode="bilinear"), x.flip(2, 3), atol=1e-5)

    def test_zero_angle_is_identity_and_size_is_kept(self):
        x = torch.rand(2, 3, 13, 20)
        out = rotate(x, torch.tensor([0.0, 45.0]))
        assert out.shape == x.shape
        assert torch.allclose(out[0], x[0], atol=1e-6)
        assert out[1, :, 0, 0].abs().sum() == 0  # corners come from outside the image

    def test_draw_params_are_integer_degrees(self, generator):
        angles = draw_rotation_params(1000, generator)
        assert torch.equal(angles, angles.round())
        assert angles.min() >= 0 and angles.max() < 360 and len(set(angles.tolist())) > 300
        assert set(draw_rotation_params(200, generator, multiples=90).tolist()) == {0.0, 90.0, 180.0, 270.0}

    def test_modules(self, generator):
        assert RandomShift()(torch.rand(2, 1, 8, 8), generator).shape == (2, 1, 8, 8)
        with pytest.raises(ConfigError):
            RandomRotate(multiples=0)


class TestScaleVolume:
    """SEI's down-scaling of volumes: laterally (every plane by the paper's transform), or along all three axes."""

    def test_lateral_scaling_is_the_paper_transform_on_every_plane(self):
        from sei.transforms import scale_volume

        x = torch.rand(2, 1, 5, 16, 20, dtype=torch.float64)
        factors, centres = torch.tensor([0.5, 0.75]), torch.tensor([[2.0, 7.0, 9.0], [1.0, 3.0, 15.0]])
        out = scale_volume(x, factors, centres, "lateral")
        for plane in range(5):
            assert torch.allclose(out[:, :, plane], scale(x[:, :, plane], factors, centres[:, 1:]))

    def test_all_axes_shrink_along_z_too_and_lateral_does_not(self):
        from sei.transforms import scale_volume

        z = torch.arange(17.0).view(1, 1, -1, 1, 1)
        blob = torch.exp(-((z - 8) ** 2) / 8).expand(1, 1, 17, 9, 9).contiguous()
        centre = torch.tensor([[8.0, 4.0, 4.0]])
        lateral = scale_volume(blob, torch.tensor([0.5]), centre, "lateral")
        everywhere = scale_volume(blob, torch.tensor([0.5]), centre, "all")
        assert torch.allclose(lateral, blob, atol=1e-6)  # constant across: nothing to shrink laterally
        # two planes from the centre the shrunk profile has the original's value four planes away
        assert float(everywhere[0, 0, 10, 4, 4]) == pytest.approx(float(blob[0, 0, 12, 4, 4]), abs=1e-6)
        assert float(everywhere[0, 0, 10, 4, 4]) < 0.5 * float(blob[0, 0, 10, 4, 4])

    def test_axial_shrinks_z_only_and_independent_each_axis_group_by_its_own_factor(self):
        from sei.transforms import scale_volume

        x = torch.rand(2, 1, 9, 11, 13, dtype=torch.float64)
        centres = torch.tensor([[4.0, 5.0, 6.0], [2.0, 3.0, 9.0]])
        axial = scale_volume(x, torch.tensor([0.5, 0.75]), centres, "axial")
        flat = x[:, :, :, :1, :1].expand(x.shape)  # constant across: shrinking all axes changes only z
        assert torch.allclose(scale_volume(flat, torch.tensor([0.5, 0.75]), centres, "axial"),
                              scale_volume(flat, torch.tensor([0.5, 0.75]), centres, "all"))
        pairs = torch.tensor([[0.5, 0.75], [0.75, 1.0]])  # (axial, lateral)
        both = scale_volume(x, pairs, centres, "independent")
        assert torch.allclose(both[1:], axial[1:])  # lateral factor 1: z only
        # separable: z by the first factor, then the planes by the second
        then_planes = scale_volume(axial, torch.tensor([[1.0, 0.75], [1.0, 1.0]]), centres, "independent")
        assert torch.allclose(both, then_planes, atol=1e-12)
        assert torch.allclose(scale_volume(x, torch.tensor([[0.5, 0.5]] * 2), centres, "independent"),
                              scale_volume(x, torch.tensor([0.5, 0.5]), centres, "all"))

    def test_z_is_interpolated_by_the_papers_bicubic_kernel_whatever_autocast_says(self):
        from sei.transforms import scale_volume

        # a volume constant along y, shrunk in all three axes, is its (z, x) image shrunk by the paper's transform
        image = torch.rand(1, 1, 9, 14, dtype=torch.float64)
        volume = image[:, :, :, None, :].expand(1, 1, 9, 5, 14)
        shrunk = scale_volume(volume, torch.tensor([0.6]), torch.tensor([[3.2, 2.0, 8.7]]), "all")
        expected = scale(image, torch.tensor([0.6]), torch.tensor([[3.2, 8.7]]))
        assert torch.allclose(shrunk, expected[:, :, :, None, :].expand_as(shrunk), atol=1e-12)
        x = torch.rand(1, 1, 8, 12, 12)
        centres = torch.tensor([[3.5, 5.5, 5.5]])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            shrunk = scale_volume(x, torch.tensor([0.5]), centres, "all")
        assert shrunk.dtype == torch.float32
        assert torch.allclose(shrunk, scale_volume(x, torch.tensor([0.5]), centres, "all"), atol=1e-6)

    def test_independent_draws_every_pair_but_the_identity(self):
        from sei.transforms import draw_volume_scale_params

        factors, centres = draw_volume_scale_params(400, (6, 10, 12), torch.Generator().manual_seed(0), (0.75, 0.5),
                                                    "independent")
        assert factors.shape == (400, 2) and centres.shape == (400, 3)
        pairs = {tuple(pair) for pair in factors.tolist()}
        assert len(pairs) == 8 and (1.0, 1.0) not in pairs

    def test_random_draws_are_reproducible_and_errors_are_clear(self):
        from sei.core.errors import ConfigError, ShapeError
        from sei.transforms import random_scale_volume, scale_volume

        x = torch.rand(3, 1, 6, 10, 12)
        first = random_scale_volume(x, torch.Generator().manual_seed(1), axes="all")
        assert torch.equal(first, random_scale_volume(x, torch.Generator().manual_seed(1), axes="all"))
        with pytest.raises(ConfigError, match="lateral"):
            random_scale_volume(x, axes="z")
        with pytest.raises(ShapeError, match="volumes"):
            random_scale_volume(torch.rand(1, 1, 10, 12))
        with pytest.raises(ConfigError, match="axial, lateral"):  # one factor per volume where two are needed
            scale_volume(x, torch.full((3,), 0.5), torch.zeros(3, 3), "independent")
        with pytest.raises(ConfigError, match="reflecting"):
            scale_volume(x, torch.full((3,), 0.5), torch.zeros(3, 3), "all", padding_mode="zeros")
