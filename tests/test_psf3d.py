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


@pytest.fixture(scope="module")
def measured():
    """A widefield PSF recorded off-centre in a larger stack, 2e5 photons over a background of 100, Poisson."""
    psf = widefield_psf_3d(520, 1.3, 100, 300, planes=15, size=21).double()
    stack = torch.zeros(24, 40, 40, dtype=torch.float64)
    stack[3:18, 9:30, 14:35] = psf * 2e5
    return psf, torch.poisson(stack + 100, generator=torch.Generator().manual_seed(0))


class TestBeadPSF:
    def test_a_noisy_off_centre_bead_gives_back_the_centred_psf(self, measured):
        from sei.physics.psf3d import bead_psf

        psf, stack = measured
        estimate = bead_psf(stack, planes=15, size=21).double()
        assert estimate.shape == psf.shape and float(estimate.sum()) == pytest.approx(1.0, abs=1e-5)
        assert (estimate == estimate.max()).nonzero()[0].tolist() == [7, 10, 10]
        assert float((estimate - psf).norm() / psf.norm()) < 0.15  # 0.116 measured: the photon noise's share
        flat = bead_psf(stack[10], size=21)  # one image gives a 2-D PSF
        assert flat.shape == (21, 21)

    def test_a_hot_pixel_is_not_taken_for_the_bead(self, measured):
        from sei.physics.psf3d import bead_psf

        psf, stack = measured
        hot = stack.clone()
        hot[0, 0, 0] = 10 * stack.max()
        assert (bead_psf(hot, planes=15, size=21) == bead_psf(stack, planes=15, size=21)).float().mean() > 0.99

    @pytest.mark.parametrize("volume, options, message", [
        (torch.full((5, 9, 9), 3.0), {}, "flat"),
        (torch.rand(5, 9, 9), {"planes": 4}, "odd"),
        (torch.rand(2, 3, 9, 9), {}, "bead image is"),
    ])
    def test_bad_beads(self, volume, options, message):
        from sei.physics.psf3d import bead_psf

        with pytest.raises(KernelError, match=message):
            bead_psf(volume, **options)

    def test_sei_psf_bead_writes_the_kernel(self, measured, tmp_path, capsys):
        import numpy as np
        import tifffile

        from sei.cli import main

        _, stack = measured
        tifffile.imwrite(tmp_path / "bead.tif", stack.numpy().astype(np.uint16))
        assert main(["psf", "bead", str(tmp_path / "psf.npy"), "--bead", str(tmp_path / "bead.tif"), "--planes", "15",
                     "--size", "21"]) == 0
        assert np.load(tmp_path / "psf.npy").shape == (15, 21, 21)
        assert main(["psf", "widefield", str(tmp_path / "w.npy"), "--bead", str(tmp_path / "bead.tif")]) == 2
        assert "--bead is for `sei psf bead`" in capsys.readouterr().err
