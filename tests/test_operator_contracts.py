"""The contract every registered operator keeps (sei.physics.registry), on odd and non-square sizes, on every device;
an operator of volumes keeps it on odd volumes of non-square planes.

Adding an operator kind means adding its examples to ``EXAMPLES``: the first test fails until it has some. The
operator-specific behaviour (that blur is the convolution it claims, that bicubic down-sampling is PyTorch's
``interpolate``, ...) is tested in each operator's own file.
"""

from __future__ import annotations

import functools
import pickle

import pytest
import torch
from helpers import OPERATOR_EXAMPLES, relative_difference, seeded, tolerance

from sei.core.scaling import scale_factors, upscaled_size
from sei.inference.baselines import build_baseline
from sei.physics.symmetry import commutes, transform_count
from sei.physics import PhysicsSpec, resolve_spec
from sei.physics.registry import OPERATORS

EXAMPLES = OPERATOR_EXAMPLES
CASES = [pytest.param(kind, words, id=f"{kind}-{index}")
         for kind, examples in EXAMPLES.items() for index, words in enumerate(examples)]
FAST_BASELINES = {"tv_iterations": 5, "dip_iterations": 2, "dip_channels": 8, "progress": False}


def build(words: dict, noise_level: float = 5.0):
    return resolve_spec(PhysicsSpec(**words, noise_level=noise_level)).build()


def image_size(physics, small: bool = False) -> tuple[int, ...]:
    """Odd, non-square measurement sizes (13 x 17, or 7 x 9 for gradcheck), a volume of 7 planes (3 for gradcheck) of
    them, up-sampled by the operator's upscale (:mod:`sei.core.scaling`)."""
    height, width = (7, 9) if small else (13, 17)
    depth = ((3 if small else 7),) if spatial_dims(physics) == 3 else ()
    return upscaled_size((*depth, height, width), physics.upscale)


def spatial_dims(physics) -> int:
    return physics.spec.spatial_dims


def spatial_size(x: torch.Tensor, physics) -> tuple[int, ...]:
    """The spatial sizes of an image or volume batch (the operator's ``img_size``)."""
    return tuple(x.shape[-spatial_dims(physics):])


def random_pair(physics, dtype: torch.dtype, device: torch.device, seed: int = 0, small: bool = False):
    """An image ``x`` and a measurement-shaped ``y`` (1 channel for gradcheck's sake when small)."""
    generator = seeded(seed)
    channels = 1 if small else 2
    x = torch.randn(2, channels, *image_size(physics, small), generator=generator, dtype=dtype).to(device)
    y = torch.randn_like(physics.A(x.cpu()).to(dtype), device="cpu").to(device)
    return x, y


def regularised_pseudo_inverse(physics) -> bool:
    """Whether ``A_dagger`` is the Tikhonov-regularised one (a blur whose boundary does not wrap): an exact
    pseudo-inverse of a Gaussian blur without the FFT's diagonalisation is out of an iterative solver's reach."""
    return getattr(physics, "periodic", True) is False


def test_every_registered_operator_has_examples():
    assert set(EXAMPLES) == set(OPERATORS)
    for kind, examples in EXAMPLES.items():
        for words in examples:
            spec = resolve_spec(PhysicsSpec(**words))
            assert spec.kind == kind and spec.spatial_dims == OPERATORS[kind].spatial_dims


@pytest.mark.parametrize("kind, words", CASES)
class TestContract:
    def test_built_from_its_spec(self, kind, words):
        physics = build(words)
        assert physics.spec.kind == kind and physics.spec.resolved
        assert physics_upscale_matches(physics)
        restored = resolve_spec(PhysicsSpec.from_dict(physics.spec.record()))
        assert restored.same_operator(physics.spec)  # a weights record rebuilds the same operator

    def test_linearity(self, kind, words, device, dtype):
        physics = build(words).to(device)
        x, _ = random_pair(physics, dtype, device)
        z = torch.randn(x.shape, generator=seeded(9), dtype=dtype).to(device)
        combined = physics.A(2.5 * x - 0.75 * z)
        assert relative_difference(combined, 2.5 * physics.A(x) - 0.75 * physics.A(z)) < 10 * tolerance(dtype)

    def test_adjointness(self, kind, words, device, dtype):
        physics = build(words).to(device)
        x, y = random_pair(physics, dtype, device)
        ax, aty = physics.A(x), physics.A_adjoint(y, img_size=spatial_size(x, physics))
        assert ax.shape == y.shape and aty.shape == x.shape and ax.dtype == dtype and ax.device.type == device.type
        lhs, rhs = (ax * y).sum(), (x * aty).sum()
        # relative to the Cauchy-Schwarz bound, the scale of rounding errors in either inner product
        assert abs(lhs - rhs) / (ax.norm() * y.norm()) < tolerance(dtype)

    def test_normal_operators(self, kind, words, device, dtype):
        physics = build(words).to(device)
        x, y = random_pair(physics, dtype, device)
        size = spatial_size(x, physics)
        assert relative_difference(physics.A_adjoint_A(x), physics.A_adjoint(physics.A(x), img_size=size)) \
            < 10 * tolerance(dtype)
        assert relative_difference(physics.A_A_adjoint(y), physics.A(physics.A_adjoint(y, img_size=size))) \
            < 10 * tolerance(dtype)

    def test_pseudo_inverse_penrose_conditions(self, kind, words, device):
        physics = build(words).to(device)
        x, y = random_pair(physics, torch.float64, device)
        size = spatial_size(x, physics)
        pinv_y = physics.A_dagger(y, img_size=size)
        assert pinv_y.shape == x.shape
        if regularised_pseudo_inverse(physics):  # (A^T A + t I) x = A^T y, t = 1e-4: the normal equations hold
            residual = physics.A_adjoint_A(pinv_y) + 1e-4 * pinv_y - physics.A_adjoint(y, img_size=size)
            assert residual.norm() < 1e-9 * physics.A_adjoint(y, img_size=size).norm()
            return
        assert relative_difference(physics.A(physics.A_dagger(physics.A(x), img_size=size)), physics.A(x)) < 1e-6
        assert relative_difference(physics.A_dagger(physics.A(pinv_y), img_size=size), pinv_y) < 1e-6

    @pytest.mark.parametrize("gamma", [0.3, 7.0])
    def test_prox_l2_is_the_minimiser(self, kind, words, gamma, device):
        physics = build(words).to(device)
        z, y = random_pair(physics, torch.float64, device)
        x = physics.prox_l2(z, y, gamma)
        # the gradient of gamma/2 ||A x - y||^2 + 1/2 ||x - z||^2 vanishes at the minimiser
        gradient = gamma * physics.A_adjoint(physics.A(x) - y, img_size=spatial_size(z, physics)) + (x - z)
        assert gradient.abs().max() < 1e-9 * (1 + gamma)

    def test_gradients_in_float64(self, kind, words):
        physics = build(words)
        x, y = random_pair(physics, torch.float64, torch.device("cpu"), small=True)
        x, y = x[:1].requires_grad_(), y[:1].requires_grad_()
        size = spatial_size(x, physics)
        # a volume has many inputs and a slow Jacobian: checked along random directions (gradcheck's fast mode)
        check = functools.partial(torch.autograd.gradcheck, fast_mode=spatial_dims(physics) == 3)
        assert check(physics.A, (x,))
        assert check(lambda v: physics.A_adjoint(v, img_size=size), (y,))
        if not regularised_pseudo_inverse(physics):  # otherwise A_dagger is prox_l2(0, y, 1e4), checked below
            assert check(lambda v: physics.A_dagger(v, img_size=size), (y,))
        assert check(lambda z, v: physics.prox_l2(z, v, 0.7), (x, y))

    def test_margin_is_where_a_crop_differs_from_the_whole(self, kind, words):
        physics = build(words)
        margin = tuple(physics.margin)
        assert len(margin) == spatial_dims(physics)
        factors = scale_factors(physics.upscale, len(margin))
        sizes = (24, 40, 44)[-len(margin):]  # planes are fewer and the axial PSF shorter
        x = torch.randn(1, 1, *upscaled_size(sizes, physics.upscale), generator=seeded(3), dtype=torch.float64)
        whole = physics.A(x)
        starts, lengths = (7, 9, 11)[-len(margin):], (12, 18, 20)[-len(margin):]  # away from the image's borders
        crop = physics.A(x[(..., *(slice(s * f, (s + n) * f) for s, n, f in zip(starts, lengths, factors)))])
        expected = whole[(..., *(slice(s, s + n) for s, n in zip(starts, lengths)))]
        inner = (..., *(slice(m, n - m) for m, n in zip(margin, lengths)))
        if OPERATORS[kind].periodic:
            assert relative_difference(crop[inner], expected[inner]) < 1e-12
            if any(margin):  # the margin is needed: the wrap-around reaches exactly that far
                assert relative_difference(crop, expected) > 1e-3
            for axis, m in enumerate(margin):  # one voxel less along any axis would take in the wrap-around
                if m:
                    short = list(inner)
                    short[1 + axis] = slice(m - 1, lengths[axis] - m + 1)
                    assert relative_difference(crop[tuple(short)], expected[tuple(short)]) > 1e-6
        else:
            assert not any(margin)  # the operator's own borders (the paper's margin for bicubic SR)

    def test_noise_model_draws_from_the_generator(self, kind, words, device):
        physics = build(words, noise_level=12.0).to(device)
        x = torch.rand(2, 1, *image_size(physics), generator=seeded(4)).to(device)
        first, second = physics(x, generator=seeded(5)), physics(x, generator=seeded(5))
        assert torch.equal(first, second)
        assert (first - physics.A(x)).std().item() == pytest.approx(12 / 255, rel=0.15)
        on_cpu = build(words, noise_level=12.0)(x.cpu(), generator=seeded(5))
        assert relative_difference(first, on_cpu) < 1e-5  # the same draw on every device

    def test_deepinv_interface_and_pickling(self, kind, words):
        physics = build(words)
        u = torch.randn(1, 3, *image_size(physics), generator=seeded(6))
        assert physics.adjointness_test(u).abs().item() < 1e-4
        again = pickle.loads(pickle.dumps(physics))
        assert torch.equal(again.A(u), physics.A(u))

    def test_the_declared_baselines_apply_and_the_others_are_refused(self, kind, words):
        physics = build(words)
        x = torch.rand(1, 3, *image_size(physics), generator=seeded(7))
        y = physics(x, generator=seeded(8))
        entry = OPERATORS[kind]
        for baseline in ("identity", "bicubic", "wiener", "tv", "richardson-lucy", "dip", "bm3d"):
            if baseline not in entry.baselines:
                with pytest.raises(Exception, match="does not apply"):
                    build_baseline(baseline, physics, FAST_BASELINES)
                continue
            if baseline == "bm3d" and pytest.importorskip("bm3d") is None:
                continue
            assert build_baseline(baseline, physics, FAST_BASELINES)(y).shape == x.shape

    def test_ensemble_transforms_are_declared_and_checked(self, kind, words):
        physics = build(words)
        declared = OPERATORS[kind].transforms
        assert 0 in declared and set(declared) <= set(range(transform_count(physics)))
        valid = [index for index in declared if commutes(physics, index)]
        assert 0 in valid


def physics_upscale_matches(physics) -> bool:
    """The operator's upscale is the spec's, and its measurements are that much smaller."""
    x = torch.zeros(1, 1, *image_size(physics))
    measured = physics.A(x).shape[-spatial_dims(physics):]
    return physics.upscale == physics.spec.upscale and upscaled_size(measured, physics.upscale) == spatial_size(x, physics)
