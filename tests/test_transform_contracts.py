"""The contract of every random transform a training method draws (sei.transforms): the image keeps its shape and
dtype on non-square sizes, each image of a batch gets its own parameters, every draw comes from the generator of
the call, and a GPU computes what the CPU does. What each transform does (the paper's down-scaling about a random
centre, circular shifts, rotations) is tested in test_transforms.py."""

from __future__ import annotations

import pytest
import torch
from helpers import relative_difference, seeded

from sei.losses.registry import METHOD_REGISTRY, build_method

# The transform of every equivariance method in the registry, by its class's name.
TRANSFORMS = {type(method.transform).__name__: method.transform
              for method in (build_method(entry.name) for entry in METHOD_REGISTRY)
              if getattr(method, "transform", None) is not None}


def test_the_registry_draws_the_three_transforms_of_the_paper():
    assert set(TRANSFORMS) == {"RandomScale", "RandomShift", "RandomRotate"}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
class TestContract:
    def test_shape_and_dtype_are_kept_on_non_square_images(self, name, dtype):
        x = torch.rand(3, 2, 19, 26, generator=seeded(0)).to(dtype)
        out = TRANSFORMS[name](x, seeded(1))
        assert out.shape == x.shape and out.dtype == dtype and torch.isfinite(out).all()

    def test_every_draw_comes_from_the_generator(self, name):
        x = torch.rand(4, 3, 24, 30, generator=seeded(0))
        assert torch.equal(TRANSFORMS[name](x, seeded(1)), TRANSFORMS[name](x, seeded(1)))
        assert not torch.equal(TRANSFORMS[name](x, seeded(1)), TRANSFORMS[name](x, seeded(2)))

    def test_each_image_gets_its_own_parameters(self, name):
        x = torch.rand(1, 1, 24, 30, generator=seeded(0)).expand(6, -1, -1, -1)
        out = TRANSFORMS[name](x, seeded(1))
        assert len({tuple(image.flatten()[:64].tolist()) for image in out}) > 1

    def test_the_device_computes_what_the_cpu_computes(self, name, device):
        x = torch.rand(4, 3, 24, 30, generator=seeded(0))
        on_device = TRANSFORMS[name].to(device)(x.to(device), seeded(1))
        assert on_device.device.type == device.type
        assert relative_difference(on_device, TRANSFORMS[name](x, seeded(1))) < 1e-5
