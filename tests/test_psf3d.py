"""3-D microscope PSFs (sei.physics.psf3d): the widths optics predicts, symmetry, aberration, confocal sectioning,
clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sei.core.errors import KernelError
from sei.physics.psf3d import confocal_psf_3d, widefield_psf_3d

OPTICS = dict(wavelength=520.0, numerical_aperture=1.4, pixel_size=40.0, z_step=100.0)


def full_width_at_half_maximum(profile: np.ndarray, spacing: float) -> float:
    """Width of a peaked 1-D profile at half its maximum, linearly interpolated, in ``spacing`` units."""
    profile = profile / profile.max()
    peak = int(profile.argmax())
    left = peak - np.argmax(profile[peak::-1] < 0.5)
    right = peak + np.argmax(profile[peak:] < 0.5)
    left_x = left + (0.5 - profile[left]) / (profile[left + 1] - profile[left])
    right_x = right - 1 + (profile[right - 1] - 0.5) / (profile[right - 1] - profile[right])
    return (right_x - left_x) * spacing


@pytest.fixture(scope="module")
def widefield() -> torch.Tensor:
    return widefield_psf_3d(**OPTICS, planes=41, size=41)


class TestWidefield:
    def test_a_normalised_kernel_centred_on_its_brightest_plane(self, widefield):
        assert widefield.shape == (41, 41, 41) and widefield.dtype == torch.float32
        assert widefield.min() >= 0 and float(widefield.sum()) == pytest.approx(1.0, abs=1e-5)
        assert int(widefield[:, 20, 20].argmax()) == 20 and int(widefield[20].argmax()) == 20 * 41 + 20

    def test_widths_are_what_optics_predicts(self, widefield):
        lateral = full_width_at_half_maximum(widefield[20, 20].double().numpy(), OPTICS["pixel_size"])
        axial = full_width_at_half_maximum(widefield[:, 20, 20].double().numpy(), OPTICS["z_step"])
        n, na, wavelength = 1.515, OPTICS["numerical_aperture"], OPTICS["wavelength"]
        assert lateral == pytest.approx(0.51 * wavelength / na, rel=0.1)  # the Airy disc's half width
        assert axial == pytest.approx(0.88 * wavelength / (n - np.sqrt(n**2 - na**2)), rel=0.15)
        assert axial > 2.5 * lateral  # several times longer along z than across

    def test_matched_indices_give_a_symmetric_psf_and_a_mismatch_does_not(self, widefield):
        assert torch.allclose(widefield, widefield.flip(0), atol=1e-6)
        assert torch.allclose(widefield, widefield.flip(2), atol=1e-6)
        assert torch.allclose(widefield, widefield.transpose(1, 2), atol=1e-6)
        deep = widefield_psf_3d(**OPTICS, sample_index=1.333, depth=10_000, planes=41, size=41)
        assert (deep - deep.flip(0)).abs().max() > 0.1 * deep.max()  # spherical aberration: asymmetric along z
        deep_axial = full_width_at_half_maximum(deep[:, 20, 20].double().numpy(), OPTICS["z_step"])
        assert deep_axial > 1.5 * full_width_at_half_maximum(widefield[:, 20, 20].double().numpy(), OPTICS["z_step"])

    def test_default_extent_holds_the_psf(self):
        psf = widefield_psf_3d(wavelength=520, numerical_aperture=1.2, pixel_size=100, z_step=300,
                               immersion_index=1.333)
        planes, size = psf.shape[0], psf.shape[1]
        assert planes % 2 == 1 and size % 2 == 1 and psf.shape[2] == size
        assert psf[planes // 2].sum() > 20 * psf[0].max() and psf[planes // 2, size // 2, 0] < 0.05 * psf.max()


class TestConfocal:
    def test_sections_optically(self, widefield):
        confocal = confocal_psf_3d(**OPTICS, excitation_wavelength=488.0, pinhole=1.0, planes=41, size=41)
        widefield_axial = full_width_at_half_maximum(widefield[:, 20, 20].double().numpy(), 1.0)
        confocal_axial = full_width_at_half_maximum(confocal[:, 20, 20].double().numpy(), 1.0)
        assert confocal_axial < 0.85 * widefield_axial
        # the out-of-focus planes hold far less light than the widefield's (which keeps each plane's total)
        assert confocal[0].sum() < 0.1 * widefield[0].sum()

    def test_a_larger_pinhole_lets_more_out_of_focus_light_through(self):
        small, large = (confocal_psf_3d(**OPTICS, excitation_wavelength=488.0, pinhole=p, planes=21, size=31)
                        for p in (0.0, 2.0))
        assert large[0].sum() > small[0].sum()


@pytest.mark.parametrize("change, message", [
    (dict(numerical_aperture=1.6), "below the immersion's refractive index"),
    (dict(wavelength=-520.0), "wavelength must be a positive number"),
    (dict(pixel_size=65.0, wavelength=0.52), "in one unit"),  # micrometres and nanometres mixed
    (dict(pixel_size=0.01), "larger than 255x255"),  # a default size that no microscope needs
    (dict(z_step=float("nan")), "z-step must be a positive number"),
])
def test_bad_optics_are_refused_in_one_line(change, message):
    with pytest.raises(KernelError, match=message):
        sizes = {} if "pixel_size" in change else dict(planes=5, size=5)
        widefield_psf_3d(**{**OPTICS, **change}, **sizes)


def test_sizes_must_be_odd_and_depth_non_negative():
    with pytest.raises(KernelError, match="odd"):
        widefield_psf_3d(**OPTICS, planes=4, size=5)
    with pytest.raises(KernelError, match="depth"):
        widefield_psf_3d(**OPTICS, depth=-1.0, planes=5, size=5)
