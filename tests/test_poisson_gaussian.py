"""Poisson-Gaussian noise: the spec, seeded noise with the right mean and variance, errors (PG-SURE against the true
error is in test_loss_contracts.py)."""

from __future__ import annotations

import pytest
import torch
from helpers import fixed_network

from sei.core.errors import ConfigError, ImageError
from sei.losses.registry import build_method
from sei.physics import PhysicsSpec, add_noise, make_physics, measure, noise_parameters, resolve_spec
from sei.physics.noise import check_photon_data


def test_noise_is_seeded_with_poisson_gaussian_moments():
    physics = make_physics("deblurring", kernel="Box_R2", noise="poisson-gaussian", gain=0.02, noise_level=3)
    assert noise_parameters(physics) == (0.02, pytest.approx(3 / 255))
    mean = torch.full((1, 1, 200, 200), 0.4)
    a = add_noise(physics, mean, torch.Generator().manual_seed(0))
    b = add_noise(physics, mean, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert a.mean().item() == pytest.approx(0.4, rel=0.01)
    assert a.var().item() == pytest.approx(0.02 * 0.4 + (3 / 255) ** 2, rel=0.05)


def test_spec_records_gain_and_rejects_bad_ones():
    spec = resolve_spec(PhysicsSpec(kernel="Box_R2", noise="poisson_gaussian", gain=0.01, noise_level=2))
    assert (spec.noise, spec.gain) == ("poisson-gaussian", 0.01)
    assert "gain 0.01" in spec.describe()
    assert resolve_spec(PhysicsSpec.from_dict(spec.to_dict())) == spec
    for gain, message in ((-1, "> 0"), (0, "> 0"), (float("nan"), "> 0"), (None, "needs its gain")):
        with pytest.raises(ConfigError, match=message):
            resolve_spec(PhysicsSpec(kernel="Box_R2", noise="poisson-gaussian", gain=gain))
    with pytest.raises(ConfigError, match="poisson-gaussian"):
        resolve_spec(PhysicsSpec(kernel="Box_R2", gain=0.01))


def test_auto_waits_for_an_estimate():
    spec = resolve_spec(PhysicsSpec(kernel="Box_R2", noise_level="AUTO"))
    assert spec.noise_level == "auto" and spec.needs_estimate
    with pytest.raises(ConfigError, match="auto"):
        spec.build()
    with pytest.raises(ConfigError, match="auto"):
        _ = spec.sigma


def test_negative_data_is_refused_by_name():
    with pytest.raises(ImageError, match="negative values"):
        check_photon_data(torch.tensor([0.2, -0.1]), "clean image 3")


def test_sei_trains_with_pg_sure():
    physics = make_physics("deblurring", kernel="Box_R2", noise="poisson-gaussian", gain=0.02, noise_level=1)
    y = measure(physics, torch.rand(2, 3, 24, 24), torch.Generator().manual_seed(0))
    output = build_method("sei")(fixed_network().train(), physics, y, generator=torch.Generator().manual_seed(1))
    output.loss.backward()
    assert torch.isfinite(output.loss) and {"sure", "equivariance"} <= set(output.parts)


def test_gaussian_restorers_take_the_noise_at_mid_grey():
    from sei.inference.baselines.classical import Wiener
    from sei.physics import equivalent_sigma

    physics = make_physics("deblurring", kernel="Box_R2", noise="poisson-gaussian", gain=0.02, noise_level=2)
    assert equivalent_sigma(physics) == pytest.approx((0.02 * 0.5 + (2 / 255) ** 2) ** 0.5)
    assert equivalent_sigma(make_physics("deblurring", kernel="Box_R2", noise_level=5)) == pytest.approx(5 / 255)
    y = measure(physics, torch.rand(1, 3, 24, 24), torch.Generator().manual_seed(0))
    assert torch.isfinite(Wiener(physics)(y)).all()


def test_degrading_a_resized_photograph_with_photon_noise(tmp_path):
    # bicubic resizing undershoots below 0 at sharp edges; photon noise must not refuse the photograph for it
    import numpy as np
    from PIL import Image

    from sei.data.degradation import degrade_files
    from sei.physics.spec import PhysicsSpec

    image = np.zeros((64, 96, 3), dtype=np.uint8)
    image[:, 40:] = 255  # one sharp edge
    Image.fromarray(image).save(tmp_path / "edge.png")
    spec = PhysicsSpec(task="deblurring", kernel="Gaussian_R1", noise="poisson-gaussian", gain=1 / 40,
                       noise_level=2)
    report = degrade_files(spec, [(tmp_path / "edge.png", tmp_path / "out.png")], resize=40, progress=False)
    assert report.failed == [] and report.written == [tmp_path / "out.png"]
