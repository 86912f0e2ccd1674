"""Test-time self-ensemble: the dihedral transforms, which ones an operator allows, and physics-aware networks."""

from __future__ import annotations

import pytest
import torch

from sei.inference.ensemble import ConjugatedOperator, SelfEnsemble, ensemble_by_default
from sei.physics.symmetry import DIHEDRAL, commutes, dihedral, dihedral_inverse, transform_count
from sei.core.errors import ConfigError
from sei.models import build_backbone
from sei.physics import make_physics


def motion_kernel() -> torch.Tensor:
    """A 9x9 motion-like PSF with no flip or rotation symmetry."""
    kernel = torch.zeros(9, 9)
    kernel[4, 1:8] = torch.linspace(1, 2, 7)
    kernel[3, 6] = 1.0
    return kernel / kernel.sum()


@pytest.mark.parametrize("index", range(8))
def test_each_transform_is_undone_by_its_inverse(index):
    x = torch.rand(2, 3, 5, 7)
    assert torch.equal(dihedral_inverse(dihedral(x, index), index), x)


@pytest.mark.parametrize("dims", [2, 3])
def test_sides_move_with_the_image(dims):
    from sei.physics.symmetry import dihedral_sides

    shape = (4, 6, 6)[-dims:]
    for index in range(len(DIHEDRAL) * (dims - 1)):
        for axis in range(dims):
            for end in (0, 1):
                image, sides = torch.zeros(shape), torch.zeros(dims, 2, dtype=torch.bool)
                image.select(axis, -end).fill_(1)  # the side's own pixels
                sides[axis, end] = True
                moved = dihedral(image, index)
                marked = [[bool(moved.select(a, -e).min() == 1) for e in (0, 1)] for a in range(dims)]
                assert dihedral_sides(sides, index).tolist() == marked


def test_the_eight_transforms_are_distinct():
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    images = [dihedral(x, index) for index in range(len(DIHEDRAL))]
    assert len({tuple(image.flatten().tolist()) + tuple(image.shape) for image in images}) == 8


def test_which_transforms_commute_with_the_operator():
    assert all(commutes(make_physics("deblurring", "Gaussian_R2", None, 5.0), i) for i in range(8))
    assert all(commutes(make_physics("deblurring", "Box_R3", None, 5.0), i) for i in range(8))
    assert all(commutes(make_physics("sr", None, 2, 5.0), i) for i in range(8))
    motion = make_physics("deblurring", motion_kernel(), None, 5.0)
    assert [commutes(motion, i) for i in range(8)] == [True] + [False] * 7


def test_conjugated_operator_is_exact(natural_image):
    physics = make_physics("deblurring", motion_kernel(), None, 5.0)
    x = natural_image[None, :, :40, :52].double()
    for index in range(8):
        conjugated = ConjugatedOperator(physics, index)
        torch.testing.assert_close(conjugated.A(dihedral(x, index)), dihedral(physics.A(x), index))
        y = dihedral(physics.A(x), index)
        z = dihedral(x, index)
        torch.testing.assert_close(conjugated.prox_l2(z, y, 3.0), dihedral(physics.prox_l2(x, physics.A(x), 3.0), index))


def test_equivariant_reconstructor_is_unchanged(natural_image):
    """Wiener filtering with a symmetric kernel is exactly equivariant: the ensemble equals the single estimate."""
    from sei.inference.baselines import build_baseline

    physics = make_physics("deblurring", "Gaussian_R1", None, 5.0)
    wiener = build_baseline("wiener", physics)
    y = physics.A(natural_image[None, :, :40, :56])
    ensemble = SelfEnsemble(wiener, physics)
    assert ensemble.transforms == list(range(8))
    torch.testing.assert_close(ensemble(y), wiener(y), atol=1e-5, rtol=1e-5)


def test_averaging_a_non_equivariant_network(natural_image):
    physics = make_physics("sr", None, 2, 5.0)
    torch.manual_seed(0)
    network = build_backbone("unet-tiny", upscale=2)
    with torch.no_grad():
        network.tail.weight.normal_(0, 0.1)
    y = physics.A(natural_image[None, :, :40, :56])
    with torch.no_grad():
        expected = sum(dihedral_inverse(network(dihedral(y, i)), i) for i in range(8)) / 8
        assert torch.allclose(SelfEnsemble(network, physics)(y), expected, atol=1e-6)
        assert not torch.allclose(expected, network(y), atol=1e-4)


def test_plain_network_and_motion_kernel_is_refused():
    physics = make_physics("deblurring", motion_kernel(), None, 5.0)
    with pytest.raises(ConfigError, match="unrolled"):
        SelfEnsemble(build_backbone("unet-tiny"), physics)


def test_plain_network_uses_the_kernels_own_symmetries():
    """A kernel symmetric under a half turn only allows the identity and the half turn."""
    kernel = torch.zeros(7, 7)
    kernel[3, 1:6] = torch.tensor([1.0, 2.0, 3.0, 2.0, 1.0])
    kernel[2, 4] = kernel[4, 2] = 1.0
    physics = make_physics("deblurring", kernel, None, 5.0)
    ensemble = SelfEnsemble(build_backbone("unet-tiny"), physics)
    assert ensemble.transforms == [0, 2]
    with pytest.raises(ConfigError, match="commute"):
        SelfEnsemble(build_backbone("unet-tiny"), physics, transforms=[0, 1])


def test_unrolled_network_gets_the_transformed_operator(natural_image):
    """An untrained unrolled network is a chain of exact proximal steps, equivariant when the operator is
    transformed with the measurement: its ensemble equals its single estimate even for a motion kernel. Feeding
    transformed measurements with the untransformed operator would not."""
    physics = make_physics("deblurring", motion_kernel(), None, 5.0)
    network = build_backbone("unrolled-tiny", physics=physics)
    y = physics.A(natural_image[None, :, :36, :48])
    ensemble = SelfEnsemble(network, physics)
    assert ensemble.transforms == list(range(8))
    with torch.no_grad():
        single = network(y)
        torch.testing.assert_close(ensemble(y), single, atol=1e-5, rtol=1e-5)
        naive = sum(dihedral_inverse(network(dihedral(y, i)), i) for i in range(8)) / 8
    assert (naive - single).abs().max() > 1e-3
    assert network.physics is physics  # restored after the ensemble


def test_unrolled_super_resolution_with_non_square_images(natural_image):
    physics = make_physics("sr", None, 2, 5.0)
    network = build_backbone("unrolled-tiny", upscale=2, physics=physics)
    y = physics.A(natural_image[None, :, :36, :52])
    with torch.no_grad():
        torch.testing.assert_close(SelfEnsemble(network, physics)(y), network(y), atol=1e-5, rtol=1e-5)


def test_a_widefield_psf_commutes_with_every_transform_of_a_volume_and_an_asymmetric_one_with_none():
    from helpers import ASYMMETRIC_VOLUME

    from sei.physics import FFTBlur
    from sei.physics.psf3d import widefield_psf_3d

    symmetric = FFTBlur(widefield_psf_3d(520, 1.3, 100, 300, planes=5, size=9))
    assert transform_count(symmetric) == 16 and all(commutes(symmetric, index) for index in range(16))
    assert [index for index in range(16) if commutes(FFTBlur(ASYMMETRIC_VOLUME), index)] == [0]
    # spherical aberration (a sample index below the immersion's, 10 um deep) breaks the z symmetry alone
    aberrated = FFTBlur(widefield_psf_3d(520, 1.3, 100, 300, sample_index=1.33, depth=10000, planes=5, size=9))
    assert [index for index in range(16) if commutes(aberrated, index)] == list(range(8))
    volume = torch.rand(1, 1, 6, 12, 12)
    ensemble = SelfEnsemble(lambda y: y.square(), symmetric)
    assert ensemble.transforms == list(range(16))
    assert torch.allclose(ensemble(volume), volume.square(), atol=1e-6)  # each transform undone on every plane
    assert ensemble_by_default(symmetric) and ensemble_by_default(aberrated)  # sei restore's default: on
    assert not ensemble_by_default(FFTBlur(ASYMMETRIC_VOLUME))  # nothing but the identity


class TestRestoreDefault:
    """``sei restore`` ensembles a network on images by default where the operator allows it."""

    @pytest.fixture
    def blurry(self, tmp_path):
        import numpy as np
        from PIL import Image

        image = (np.random.default_rng(0).random((40, 44)) * 255).astype(np.uint8)
        Image.fromarray(image).save(tmp_path / "blurry.png")
        return tmp_path / "blurry.png"

    def weights(self, tmp_path, kernel) -> str:
        from helpers import fixed_network

        from sei.models.weights import save_weights
        from sei.physics.spec import PhysicsSpec

        model = fixed_network()
        model.head = torch.nn.Conv2d(1, model.head.out_channels, 3, padding=1)  # grayscale
        model.tail = torch.nn.Conv2d(model.tail.in_channels, 1, 3, padding=1)
        model.sei_architecture = {**model.sei_architecture, "in_chans": 1}
        return str(save_weights(model, tmp_path / "net.pt", PhysicsSpec(task="deblurring", kernel=kernel,
                                                                       noise_level=5.0)))

    def restored(self, blurry, tmp_path, weights, *flags):
        import numpy as np
        from PIL import Image

        from sei.cli import main

        out = tmp_path / f"out{len(list(tmp_path.glob('out*')))}.png"
        assert main(["restore", str(blurry), str(out), "--weights", weights, "--quiet", *flags]) == 0
        return np.asarray(Image.open(out))

    def test_a_symmetric_blur_is_ensembled_unless_told_not_to(self, blurry, tmp_path, capsys):
        import numpy as np

        weights = self.weights(tmp_path, "Gaussian_R2")
        default = self.restored(blurry, tmp_path, weights)
        assert "restored 8 times" in capsys.readouterr().out
        assert np.array_equal(default, self.restored(blurry, tmp_path, weights, "--ensemble"))
        capsys.readouterr()
        single = self.restored(blurry, tmp_path, weights, "--no-ensemble")
        assert "restored 8 times" not in capsys.readouterr().out
        assert not np.array_equal(default, single)

    def test_an_asymmetric_blur_restores_in_one_pass_and_an_asked_ensemble_is_refused(self, blurry, tmp_path):
        import numpy as np

        from sei.cli import main

        weights = self.weights(tmp_path, motion_kernel())
        assert np.array_equal(self.restored(blurry, tmp_path, weights),
                              self.restored(blurry, tmp_path, weights, "--no-ensemble"))
        assert main(["restore", str(blurry), str(tmp_path / "asked.png"), "--weights", weights, "--ensemble",
                     "--quiet"]) == 2
