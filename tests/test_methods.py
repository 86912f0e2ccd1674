"""Training methods: registry, stop-gradient, ground-truth checks, and short trainings that learn."""

from __future__ import annotations

import pytest
import torch

from sei.core.errors import ConfigError, MissingGroundTruthError, ShapeError, UnknownNameError
from sei.losses import equivariance_loss
from sei.losses.registry import METHOD_REGISTRY, build_method, canonical_method, method_entry, methods_help
from sei.losses.sei import SEILoss
from sei.metrics import psnr
from sei.models import build_backbone
from sei.physics import make_physics
from sei.transforms import RandomScale


def crop_pairs(image: torch.Tensor, physics, crop: int = 32, count: int = 6):
    """Measurement crops (crop x crop) and matching clean crops from one simulated measurement of ``image``."""
    r = physics.upscale
    y_full = physics(image[None], generator=torch.Generator().manual_seed(0))
    ys, xs = [], []
    for index in range(count):
        row, col = divmod(index, 2)
        ys.append(y_full[..., row * crop:(row + 1) * crop, col * crop:(col + 1) * crop])
        xs.append(image[None, :, row * crop * r:(row + 1) * crop * r, col * crop * r:(col + 1) * crop * r])
    return torch.cat(ys), torch.cat(xs)


def objective(method, model, physics, y, x) -> float:
    """The method's loss averaged over four fixed random draws (the same before and after training)."""
    return sum(method(model, physics, y, x, generator=torch.Generator().manual_seed(100 + seed)).loss.item()
               for seed in range(4)) / 4


class TestRegistry:
    @pytest.mark.parametrize("alias, name", [("proposed", "sei"), ("sup", "supervised"), ("SEI", "sei"),
                                             ("ei_shift", "ei-shift"), ("sei-no-stop-gradient", "sei-no-stop-grad")])
    def test_aliases(self, alias, name):
        assert canonical_method(alias) == name

    def test_unknown_method_lists_the_valid_ones(self):
        with pytest.raises(UnknownNameError, match="ei-rotate.*proposed|proposed.*ei-rotate"):
            build_method("noise2noise")

    def test_every_registered_method_builds(self):
        for entry in METHOD_REGISTRY:
            method = build_method(entry.name)
            assert method.name == entry.name
            assert method.needs_ground_truth == entry.needs_ground_truth
            for alias in entry.aliases:
                assert method_entry(alias) is entry and canonical_method(alias.upper().replace("-", "_")) == entry.name

    def test_the_sei_loss_has_a_name(self):
        assert isinstance(build_method("proposed"), SEILoss)
        assert isinstance(build_method("sei-no-stop-grad"), SEILoss)
        assert "sei (proposed)" in methods_help() and "supervised (sup)" in methods_help()

    def test_stop_gradient_flag(self):
        assert build_method("sei").stop_gradient
        assert not build_method("sei-no-stop-grad").stop_gradient
        assert build_method("sei", stop_gradient=False).name == "sei-no-stop-grad"
        assert isinstance(build_method("sei", scale_factors=(0.5,)).transform, RandomScale)

    def test_volume_scale_axes_reach_the_transform(self):
        assert build_method("sei").transform.volume_axes == "all"
        assert build_method("sei", scale_axes="lateral").transform.volume_axes == "lateral"
        with pytest.raises(ConfigError, match="lateral"):
            build_method("sei", scale_axes="z")


class TestGroundTruth:
    def test_supervised_without_x_is_a_clear_error(self):
        physics = make_physics("deblurring", kernel="Box_R2")
        with pytest.raises(MissingGroundTruthError, match="needs clean images"):
            build_method("sup")(build_backbone("unet-tiny"), physics, torch.rand(2, 3, 16, 16))

    def test_mismatched_x_shape(self):
        physics = make_physics("sr", sr_factor=2)
        with pytest.raises(ShapeError, match="32, 32"):
            build_method("sup")(build_backbone("unet-tiny", upscale=2), physics, torch.rand(2, 3, 16, 16),
                                torch.rand(2, 3, 16, 16))

    def test_loss_parts(self):
        physics = make_physics("deblurring", kernel="Box_R2")
        y = torch.rand(2, 3, 16, 16)
        parts = build_method("sei")(build_backbone("unet-tiny"), physics, y, generator=torch.Generator()).parts
        assert {"sure", "sure_residual", "sure_divergence", "equivariance"} <= set(parts)
        assert set(build_method("sure")(build_backbone("unet-tiny"), physics, y, generator=torch.Generator()).parts) \
            == {"sure", "sure_residual", "sure_divergence"}


class TestStopGradient:
    def setup_method(self):
        torch.manual_seed(0)
        self.model = build_backbone("unet-tiny")
        self.model.tail.reset_parameters()
        self.physics = make_physics("deblurring", kernel="Box_R2", noise_level=5)
        self.y = torch.rand(2, 3, 24, 24)

    def _terms(self, stop_gradient: bool):
        estimate = self.model(self.y)
        loss, target = equivariance_loss(self.model, self.physics, estimate, RandomScale(),
                                         torch.Generator().manual_seed(3), stop_gradient=stop_gradient)
        return estimate, loss, target

    def test_no_gradient_path_through_the_target(self):
        estimate, loss, target = self._terms(stop_gradient=True)
        assert not target.requires_grad
        assert torch.autograd.grad(loss, estimate, allow_unused=True)[0] is None

    def test_without_stop_gradient_the_target_carries_gradient(self):
        estimate, loss, target = self._terms(stop_gradient=False)
        assert target.requires_grad
        gradient = torch.autograd.grad(loss, estimate)[0]
        assert gradient.abs().sum() > 0


class TestPhotonTarget:
    """Under Poisson-Gaussian noise the equivariance target is clipped at zero (what a photon count can come from);
    under Gaussian noise it is left as it is."""

    @staticmethod
    def _target(noise: dict) -> torch.Tensor:
        physics = make_physics("deblurring", kernel="Box_R2", **noise)
        estimate = torch.rand(2, 1, 24, 24) - 0.5  # half the pixels negative
        _, target = equivariance_loss(build_backbone("unet-tiny", in_chans=1), physics, estimate, RandomScale(),
                                      torch.Generator().manual_seed(3))
        return target

    def test_poisson_target_is_non_negative(self):
        target = self._target(dict(noise="poisson-gaussian", gain=0.01, noise_level=2))
        assert target.min() == 0 and (target == 0).float().mean() > 0.3

    def test_gaussian_target_keeps_negative_values(self):
        assert self._target(dict(noise_level=5)).min() < -0.2


class TestShortTraining:
    """A tiny network trained for a few dozen steps on six crops: the loss goes down and PSNR goes up.

    The network's last layer is re-initialised at random (the U-Net otherwise starts as the identity), so that
    every method starts far from a solution.
    """

    def _train(self, name: str, task: str, natural_image, steps: int = 60):
        physics = make_physics(task, kernel="Gaussian_R1" if task == "deblurring" else None,
                               sr_factor=2 if task == "sr" else None, noise_level=5)
        y, x = crop_pairs(natural_image, physics, crop=32 if task == "deblurring" else 16)
        torch.manual_seed(0)
        model = build_backbone("unet-tiny", upscale=physics.upscale)
        model.tail.reset_parameters()
        method = build_method(name)
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            before = (objective(method, model, physics, y, x), psnr(model(y), x).mean().item())
        for _ in range(steps):
            loss = method(model, physics, y, x, generator=generator).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            after = (objective(method, model, physics, y, x), psnr(model(y), x).mean().item())
        baseline = torch.nn.functional.interpolate(y, scale_factor=2, mode="bicubic") if task == "sr" else y
        input_psnr = psnr(baseline, x).mean().item()
        return before, after, input_psnr

    @pytest.mark.parametrize("name", [e.name for e in METHOD_REGISTRY])
    def test_deblurring(self, name, natural_image):
        (loss0, psnr0), (loss1, psnr1), input_psnr = self._train(name, "deblurring", natural_image)
        assert loss1 < 0.5 * loss0
        assert psnr1 > psnr0 + 3.0
        if name in ("sei", "supervised", "ei-shift"):
            assert psnr1 > input_psnr + 0.3  # better than the blurry input itself

    @pytest.mark.parametrize("name", ["sei", "supervised", "ei-shift"])
    def test_super_resolution(self, name, natural_image):
        (loss0, psnr0), (loss1, psnr1), input_psnr = self._train(name, "sr", natural_image, steps=150)
        assert loss1 < 0.5 * loss0
        assert psnr1 > psnr0 + 3.0
        assert psnr1 > input_psnr  # better than bicubic up-sampling
