"""``sei psf``'s point-spread functions: normalised, odd-sized, checked, and where optics puts them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sei.cli import main
from sei.core.errors import KernelError, UnknownNameError
from sei.physics.kernels import kernel_from_file
from sei.physics.psf import airy_first_zero, airy_psf, disc_psf, gaussian_psf, make_psf, motion_psf


def _centre_of_mass(kernel: torch.Tensor) -> tuple[float, float]:
    rows, cols = torch.meshgrid(torch.arange(kernel.shape[0]), torch.arange(kernel.shape[1]), indexing="ij")
    return float((rows * kernel).sum()), float((cols * kernel).sum())


class TestSmoke:
    @pytest.mark.parametrize("kernel", [
        gaussian_psf(2.0), gaussian_psf(3.0, 1.0, 30.0), motion_psf(9, 30), motion_psf(4.5, 0), disc_psf(3.5),
        disc_psf(0.8), airy_psf(520, 65, numerical_aperture=1.4), airy_psf(0.55, 3.76, f_number=8.0),
    ])
    def test_normalised_odd_centred(self, kernel):
        assert kernel.dtype == torch.float32 and kernel.ndim == 2
        assert kernel.shape[0] % 2 == 1 and kernel.shape[0] == kernel.shape[1]
        assert (kernel >= 0).all() and kernel.sum().item() == pytest.approx(1.0, abs=1e-6)
        centre = kernel.shape[0] // 2
        assert _centre_of_mass(kernel) == pytest.approx((centre, centre), abs=0.05)

    def test_gaussian_spread_and_orientation(self):
        kernel = gaussian_psf(3.0, 1.0, 0.0, size=31).double()
        rows, cols = torch.meshgrid(torch.arange(31.0) - 15, torch.arange(31.0) - 15, indexing="ij")
        assert math.sqrt(float((cols**2 * kernel).sum())) == pytest.approx(3.0, rel=0.02)
        assert math.sqrt(float((rows**2 * kernel).sum())) == pytest.approx(1.0, rel=0.05)
        turned = gaussian_psf(3.0, 1.0, 90.0, size=31)
        assert torch.allclose(turned, kernel.float().T, atol=1e-6)

    def test_motion_length_and_angle(self):
        flat = motion_psf(9, 0)
        assert flat.shape == (11, 11) and flat.sum(dim=1)[5] == pytest.approx(1.0, abs=1e-6)  # one row only
        spread = (flat.sum(dim=0) > 1e-3).sum().item()
        assert spread in (9, 10, 11)
        vertical = motion_psf(9, 90)
        assert torch.allclose(vertical, flat.T, atol=1e-6)

    def test_disc_area(self):
        kernel = disc_psf(4.0, size=11)
        covered = (kernel / kernel.max()).sum().item()  # each pixel weighted by the area it covers
        assert covered == pytest.approx(math.pi * 16, rel=0.02)
        assert kernel[5, 5] == pytest.approx(kernel.max().item())  # flat inside

    def test_named_kernels_pass_through(self):
        from sei.physics.kernels import gaussian_kernel

        assert torch.equal(make_psf("Gaussian_R2"), gaussian_kernel(2))


class TestOptics:
    @pytest.mark.parametrize("wavelength, pixel, aperture", [(520.0, 65.0, 1.4), (600.0, 40.0, 0.8)])
    def test_first_dark_ring_where_the_formula_puts_it(self, wavelength, pixel, aperture):
        expected = 0.61 * wavelength / aperture / pixel  # pixels
        kernel = airy_psf(wavelength, pixel, numerical_aperture=aperture, size=41, rings=3).double()
        centre = 20
        profile = kernel[centre, centre:]  # along a row, from the centre outwards
        first_minimum = next(i for i in range(1, len(profile) - 1)
                             if profile[i] <= profile[i - 1] and profile[i] <= profile[i + 1])
        assert abs(first_minimum - expected) <= 1.0
        assert airy_first_zero(wavelength, pixel, numerical_aperture=aperture) == pytest.approx(expected, rel=1e-3)

    def test_telescope_formula(self):
        assert airy_first_zero(0.55, 3.76, f_number=8.0) == pytest.approx(1.22 * 0.55 * 8 / 3.76, rel=1e-3)


class TestExceptions:
    @pytest.mark.parametrize("call, message", [
        (lambda: gaussian_psf(-1.0), "positive"),
        (lambda: motion_psf(float("nan")), "positive"),
        (lambda: disc_psf(3, size=4), "odd"),
        (lambda: disc_psf(500), "larger than"),
        (lambda: airy_psf(520, 65), "numerical aperture"),
        (lambda: airy_psf(520, 65, numerical_aperture=1.4, f_number=8), "not both"),
        (lambda: make_psf("motion"), "--length"),
        (lambda: make_psf("defocus", radius=2, length=3), "takes no --length"),
        (lambda: make_psf("Box_R2", radius=2), "no parameters"),
    ])
    def test_clear_errors(self, call, message):
        with pytest.raises(KernelError, match=message):
            call()

    def test_unknown_kind(self):
        with pytest.raises(UnknownNameError, match="Gaussian_R2"):
            make_psf("lorentzian")


class TestCommand:
    def test_writes_a_kernel_and_a_preview(self, tmp_path, capsys):
        out = tmp_path / "psf.npy"
        assert main(["psf", "diffraction", str(out), "--wavelength", "520", "--pixel-size", "65", "--na", "1.4"]) == 0
        kernel = kernel_from_file(out)
        assert kernel.sum().item() == pytest.approx(1.0, abs=1e-6)
        assert np.load(out).dtype == np.float32
        assert (tmp_path / "psf.png").is_file() and "sums to 1" in capsys.readouterr().out

    def test_bad_parameters_exit_2(self, tmp_path, capsys):
        assert main(["psf", "motion", str(tmp_path / "m.npy")]) == 2
        assert "needs --length" in capsys.readouterr().err
        assert not (tmp_path / "m.npy").exists()

    def test_writes_a_3d_microscope_psf_that_blurs_volumes(self, tmp_path, capsys):
        from PIL import Image

        from sei.physics import FFTBlur
        from sei.physics.kernels import VOLUME_DIMS

        out = tmp_path / "psf3d.npy"
        assert main(["psf", "widefield", str(out), "--wavelength", "520", "--na", "1.4", "--pixel-size", "65",
                     "--z-step", "200", "--planes", "15"]) == 0
        kernel = kernel_from_file(out, dims=VOLUME_DIMS)
        assert kernel.shape[0] == 15 and kernel.shape[1] == kernel.shape[2] and "15x" in capsys.readouterr().out
        assert Image.open(tmp_path / "psf3d.png").size[0] > Image.open(tmp_path / "psf3d.png").size[1]  # xy | xz
        assert FFTBlur(out).A(torch.rand(1, 1, 20, 32, 32)).shape == (1, 1, 20, 32, 32)
        with pytest.raises(KernelError, match="3-D PSF blurs volumes"):
            kernel_from_file(out)  # where only 2-D kernels apply

    def test_a_3d_psf_records_the_voxel_size_it_was_made_for(self, tmp_path, capsys):
        from sei.io.voxels import VoxelSize, read_psf_voxel_size

        out = tmp_path / "psf3d.npy"
        flags = ["--wavelength", "520", "--na", "1.4", "--pixel-size", "65", "--z-step", "200", "--planes", "9"]
        assert main(["psf", "widefield", str(out), *flags]) == 0
        assert "0.2 x 0.065 x 0.065 um (z y x), in" in capsys.readouterr().out
        assert read_psf_voxel_size(out) == VoxelSize(0.2, 0.065, 0.065, "psf3d.json")
        assert main(["psf", "widefield", str(out), *flags]) == 2  # nothing replaced unless asked
        assert main(["psf", "gaussian", str(out), "--sigma", "2", "--overwrite"]) == 0
        assert read_psf_voxel_size(out) is None  # a 2-D kernel in its place: the old record goes with the old PSF

    def test_3d_kinds_say_what_they_need(self, tmp_path, capsys):
        assert main(["psf", "confocal", str(tmp_path / "c.npy"), "--wavelength", "520", "--na", "1.4",
                     "--pixel-size", "65", "--z-step", "200"]) == 2
        assert "needs --excitation-wavelength" in capsys.readouterr().err
        assert main(["psf", "gaussian", str(tmp_path / "g.npy"), "--sigma", "2", "--z-step", "200"]) == 2
        assert "takes no --z-step" in capsys.readouterr().err
