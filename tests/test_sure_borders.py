"""SURE at a measurement's own borders: the region where SURE's terms are exact (sei.losses.sure.SureRegion), which
sides of a crop keep their margin in (sei.physics.base.sure_exact_sides), and the crops' border flags
(sei.data.pairs.CropDataset, cut sides of the blocks of a stack too large to hold).

The contract, over every registered operator example: on the region, the operator applied to a crop of the clean
image gives exactly the crop of the operator applied to the whole image. The margin a crop leaves out is where it
does not (the test can fail: claiming every side exact breaks it)."""

from __future__ import annotations

from unittest import mock

import pytest
import torch
from helpers import OPERATOR_EXAMPLES, fixed_network, seeded

from sei.core.defaults import BOUNDARIES
from sei.core.errors import ImageTooSmallError, ShapeError
from sei.data.pairs import CropDataset, MeasurementSet
from sei.data.sources import ImageSet
from sei.losses import sure_gaussian
from sei.losses.sure import SureRegion
from sei.physics import PhysicsSpec, resolve_spec
from sei.physics.base import sure_exact_sides
from sei.physics.blur import FFTBlur
from sei.physics.registry import OPERATORS

# operators with a boundary model (the paper's bicubic down-sampling has none: its SURE keeps every pixel)
EXAMPLES = [(kind, index) for kind, examples in OPERATOR_EXAMPLES.items() for index in range(len(examples))
            if OPERATORS[kind].boundaries == BOUNDARIES]


def noiseless(kind: str, index: int):
    return resolve_spec(PhysicsSpec(**OPERATOR_EXAMPLES[kind][index], noise_level=0.0)).build()


def crops_with_borders(physics, image: torch.Tensor, crop_size: int, count: int) -> dict[str, torch.Tensor]:
    """``count`` training crops of one clean image (batched, with their clean crops and border flags)."""
    images = ImageSet("test", ["image"], [image], ground_truth=True)
    dataset = CropDataset(MeasurementSet(images, physics), crop_size, seed=3)
    items = [dataset[(0, sample)] for sample in range(count)]
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


class TestSureRegion:
    def test_without_exact_sides_it_is_the_interior(self):
        y = torch.rand(2, 3, 12, 14)
        region = SureRegion(y, (2, 3))
        assert region.mask is None
        assert torch.equal(region.select(y), y[..., 2:10, 3:11])
        untouched = SureRegion(y, (2, 3), torch.zeros(2, 2, 2, dtype=torch.bool))
        assert untouched.mask is None  # no side exact: the plain interior, as fast as before

    def test_an_exact_side_keeps_its_margin_in_for_that_crop_only(self):
        y = torch.arange(2 * 1 * 6 * 8, dtype=torch.float32).reshape(2, 1, 6, 8)
        sides = torch.tensor([[[False, True], [True, False]], [[False, False], [False, False]]])
        region = SureRegion(y, (1, 2), sides)
        expected = torch.cat([y[0, :, 1:, :6].flatten(), y[1, :, 1:5, 2:6].flatten()])
        assert torch.equal(region.select(y), expected)

    def test_the_mean_is_over_the_region(self, generator):
        y = torch.rand(3, 2, 6, 9, generator=generator)
        sides = torch.tensor([[[False, True], [True, False]], [[False, False], [False, False]],
                              [[True, True], [True, True]]])
        for exact in (None, torch.zeros_like(sides), sides):
            region = SureRegion(y, (1, 2), exact)
            assert region.mean(y).item() == pytest.approx(region.select(y).mean().item(), rel=1e-6)

    def test_on_a_device_the_flags_are_never_read_back(self):
        # meta tensors have no values: reading the flags on the host (a wait on an accelerator) would raise
        y = torch.zeros(2, 1, 5, 6, 7, device="meta")
        sides = torch.zeros(2, 3, 2, dtype=torch.bool, device="meta")
        region = SureRegion(y, (1, 2, 2), sides)
        assert region.mask.shape == (2, 1, 5, 6, 7) and region.mask.device.type == "meta"
        assert region.mean(y).shape == ()

    def test_the_probe_is_zero_outside_the_region_only(self, generator):
        y = torch.zeros(2, 3, 5, 10, 12)
        sides = torch.zeros(2, 3, 2, dtype=torch.bool)
        sides[0, 0] = True  # the first crop spans its stack's depth
        probe = SureRegion(y, (2, 3, 3), sides).probe(y, generator)
        expected = torch.zeros_like(y, dtype=torch.bool)
        expected[0, :, :, 3:7, 3:9] = True  # all five planes
        expected[1, :, 2:3, 3:7, 3:9] = True  # the one plane off the depth's margins
        assert torch.equal(probe != 0, expected)
        assert probe[expected].std().item() == pytest.approx(1.0, rel=0.15)

    def test_bad_sides_are_refused(self):
        y = torch.zeros(2, 1, 8, 8)
        with pytest.raises(ShapeError, match="exact_sides"):
            SureRegion(y, (2, 2), torch.ones(2, 3, 2, dtype=torch.bool))
        with pytest.raises(ShapeError, match="exact_sides"):  # refused even when it marks no side
            SureRegion(y, (2, 2), torch.zeros(1, 2, 2, dtype=torch.bool))
        with pytest.raises(ImageTooSmallError, match="no interior"):
            SureRegion(y, (4, 2), torch.ones(2, 2, 2, dtype=torch.bool))


class TestExactSides:
    @pytest.mark.parametrize("boundary", ["reflect", "replicate"])
    def test_non_wrapping_models_trust_each_border(self, boundary):
        borders = torch.tensor([[[True, False], [False, False]], [[True, True], [False, True]]])
        assert torch.equal(sure_exact_sides(FFTBlur(torch.ones(3, 3) / 9, boundary=boundary), borders), borders)

    def test_the_circular_model_needs_both_borders_of_an_axis(self):
        borders = torch.tensor([[[True, False], [True, True]]])
        sides = sure_exact_sides(FFTBlur(torch.ones(3, 3) / 9), borders)
        assert sides.tolist() == [[[False, False], [True, True]]]

    def test_an_operator_of_unknown_boundary_trusts_none(self):
        import deepinv

        assert sure_exact_sides(deepinv.physics.Denoising(), torch.ones(1, 2, 2, dtype=torch.bool)) is None
        assert sure_exact_sides(FFTBlur(torch.ones(3, 3) / 9, boundary="reflect"), None) is None


@pytest.mark.parametrize("kind, index", EXAMPLES)
def test_the_operator_on_a_crop_is_exact_on_its_region(kind, index, natural_image):
    """``A(x_crop) == (A x)_crop`` on the SURE region of every crop, border crops included; not on the whole crop."""
    physics = noiseless(kind, index)
    r, crop_size = physics.upscale, 10
    if physics.spec.spatial_dims == 3:  # every crop spans the measurement's 8 planes: z's borders, laterally some
        image = torch.rand(1, 8 * r, crop_size + 6, crop_size + 6, generator=seeded(0))
    else:
        image = natural_image[:, :(crop_size + 6) * r, :(crop_size + 8) * r]
    batch = crops_with_borders(physics, image, crop_size, 24)
    assert batch["borders"].any() and not batch["borders"].all()  # crops at the borders and inside
    on_crops = physics.A(batch["x"])
    region = SureRegion(batch["y"], physics.margin, sure_exact_sides(physics, batch["borders"]))
    assert torch.allclose(region.select(on_crops), region.select(batch["y"]), atol=1e-5)
    if any(physics.margin):
        claimed = SureRegion(batch["y"], physics.margin, torch.ones_like(batch["borders"]))
        assert not torch.allclose(claimed.select(on_crops), claimed.select(batch["y"]), atol=1e-3)


class TestCropBorders:
    def test_a_crop_through_a_thin_stack_has_its_depths_borders(self):
        volume = torch.rand(1, 6, 20, 20)
        images = ImageSet("stack", ["stack"], [volume], ground_truth=False)
        dataset = CropDataset(MeasurementSet(images, None), 8, seed=0)
        for sample in range(10):
            borders = dataset[(0, sample)]["borders"]
            assert borders.shape == (3, 2) and borders[0].all()

    def test_the_cut_sides_of_a_block_are_not_borders(self):
        volume = torch.rand(1, 6, 8, 20)
        cut = ((True, False), (False, False), (False, True))
        images = ImageSet("stack", ["stack_z4_y0_x0"], [volume], ground_truth=False, cut_sides=[cut])
        borders = CropDataset(MeasurementSet(images, None), 8, seed=0)[(0, 0)]["borders"]
        assert borders.tolist()[0] == [False, True]  # the block's first plane is a cut, its last the stack's
        assert borders.tolist()[1] == [True, True] and not borders[2, 1]

    def test_blocks_of_a_stack_too_large_to_hold_record_their_cut_sides(self, tmp_path):
        import tifffile

        from sei.data.sources import _read_files

        path = tmp_path / "stack.tif"
        tifffile.imwrite(path, (torch.rand(100, 16, 16) * 1000).to(torch.int16).numpy())
        with mock.patch("sei.io.images.STACK_CHUNK_BYTES", 48 * 16 * 16 * 4 * 2), \
                mock.patch("sei.io.images.StackHeader.too_large_to_hold", return_value=True):
            images = _read_files([path], "stacks", False, None, volumes=True)  # slabs of planes 0-47 and 52-99
        assert len(images.cut_sides) == len(images.images) == 2
        first, last = images.cut_sides[0], images.cut_sides[-1]
        assert first[0] == (False, True) and last[0] == (True, False)
        assert all(sides[1:] == ((False, False), (False, False)) for sides in images.cut_sides)


def test_sure_over_a_border_crop_trains_its_border_band(natural_image):
    """With the crop's sides marked exact, the residual and divergence cover the margin band too."""
    physics = resolve_spec(PhysicsSpec(task="deblurring", kernel="Box_R2", padding="reflect", noise_level=5.0)).build()
    y = physics(natural_image[None, :, :24, :24], generator=seeded(0))
    model = fixed_network()
    plain = sure_gaussian(model, physics, y, 5 / 255, seeded(1), margin=physics.margin)
    whole = sure_gaussian(model, physics, y, 5 / 255, seeded(1), margin=physics.margin,
                          exact_sides=sure_exact_sides(physics, torch.ones(1, 2, 2, dtype=torch.bool)))
    expected = (physics.A(whole.estimate) - y).pow(2).mean()
    assert whole.residual.item() == pytest.approx(expected.item(), rel=1e-5)
    assert plain.residual.item() != pytest.approx(whole.residual.item(), rel=1e-3)
