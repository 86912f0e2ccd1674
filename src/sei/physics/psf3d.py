"""3-D point-spread functions of fluorescence microscopes from optics parameters: widefield and confocal.

The widefield PSF is the scalar Gibson-Lanni model with the coverslip and immersion used as designed: a point at
depth ``z_p`` below the coverslip in a sample of refractive index ``n_s``, imaged through immersion of index ``n_i``
by an objective of numerical aperture ``NA``, with the focal plane moved by ``z`` (the stack's axis). Its intensity
at lateral distance ``r`` is

.. math::

    h(r, z) = \\Bigl| \\int_0^1 J_0(k\\,\\mathrm{NA}\\,r\\,\\rho)\\;
              e^{\\,i k\\,\\mathrm{OPD}(\\rho, z)}\\,\\rho\\,d\\rho \\Bigr|^2, \\qquad
    \\mathrm{OPD}(\\rho, z) = z_p \\sqrt{n_s^2 - \\mathrm{NA}^2\\rho^2} + z \\sqrt{n_i^2 - \\mathrm{NA}^2\\rho^2},

with ``k = 2 pi / lambda`` (``lambda`` the emission wavelength in vacuum). With ``n_s = n_i`` it is the non-paraxial
defocus of a perfect objective (``z = -z_p`` is in focus); with a mismatch the depth adds spherical aberration and
moves the best focus, and the PSF grows longer and asymmetric along z. A confocal PSF (pinhole of ``pinhole`` Airy
units) is the excitation PSF times the emission PSF seen through the pinhole.

Each function returns a float32 ``(planes, size, size)`` kernel, non-negative, summing to 1, its brightest plane in
the middle (the kernel convention of :mod:`sei.physics.kernels`; a PSF's axial offset would only shift the image).
Lateral pixels average ``oversample x oversample`` sub-pixel samples; planes are sampled at their centres.
Wavelengths, pixel size, z-step and depth are in one length unit (nanometres, say).

>>> psf = widefield_psf_3d(wavelength=520, numerical_aperture=1.4, pixel_size=100, z_step=250, planes=9, size=15)
>>> psf.shape, round(float(psf.sum()), 4), int(psf.sum(dim=(1, 2)).argmax())
(torch.Size([9, 15, 15]), 1.0, 4)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from sei.core.errors import KernelError
from sei.io.voxels import VoxelSize
from sei.physics.psf import MAX_KERNEL_SIZE, airy_first_zero, odd_size, positive_parameter

__all__ = ["PSF3D_KINDS", "PUPIL_SAMPLES", "bead_psf", "bead_psf_file", "confocal_psf_3d", "default_extent", "optics_sampling",
           "widefield_psf_3d"]

PSF3D_KINDS = ("widefield", "confocal")
# Samples of the pupil radius rho in [0, 1] (Simpson's rule): enough for defocus phases of a few hundred radians.
PUPIL_SAMPLES = 401
LATERAL_OVERSAMPLE = 3
WATER, OIL = 1.333, 1.515


def optics_sampling(wavelength: float, pixel_size: float, z_step: float) -> VoxelSize:
    """The voxel size in micrometres of a PSF made from optics given in one length unit, the unit read off the
    wavelength: a light microscope's lies between 0.2 and 2 um, so a wavelength above 50 is in nanometres.

    >>> optics_sampling(520, 100, 300), optics_sampling(0.52, 0.1, 0.3) == optics_sampling(520, 100, 300)
    (VoxelSize(z=0.3, y=0.1, x=0.1, source='sei psf'), True)
    """
    factor = 1e-3 if wavelength > 50 else 1.0
    return VoxelSize(round(z_step * factor, 9), round(pixel_size * factor, 9), round(pixel_size * factor, 9),
                     "sei psf")


def default_extent(wavelength: float, numerical_aperture: float, immersion_index: float, pixel_size: float,
                   z_step: float) -> tuple[int, int]:
    """``(planes, size)`` holding the widefield PSF out to about its third dark ring laterally and four axial
    half-widths (``2 n lambda / NA^2`` each) along z; both odd."""
    lateral = airy_first_zero(wavelength, pixel_size, numerical_aperture) * 3.2 / 1.22
    axial = 4 * 2 * immersion_index * wavelength / numerical_aperture**2 / z_step
    return odd_size(axial), odd_size(lateral)


def _simpson_weights(count: int) -> np.ndarray:
    weights = np.ones(count)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    return weights / (3.0 * (count - 1))


def _radial_field(radii: np.ndarray, defocus: np.ndarray, wavelength: float, numerical_aperture: float,
                  immersion_index: float, sample_index: float, depth: float) -> np.ndarray:
    """The complex field ``(len(defocus), len(radii))`` of the Gibson-Lanni integral (before squaring)."""
    from scipy.special import j0

    rho = np.linspace(0.0, 1.0, PUPIL_SAMPLES)
    k = 2 * np.pi / wavelength
    sine = (numerical_aperture * rho).astype(np.complex128)
    # a complex root beyond the sample's critical angle: the evanescent wave decays with depth
    opd = depth * np.sqrt(sample_index**2 - sine**2) + defocus[:, None] * np.sqrt(immersion_index**2 - sine**2)
    phase = np.exp(1j * k * opd)  # (z, rho)
    bessel = j0(k * numerical_aperture * radii[:, None] * rho[None, :])  # (r, rho)
    return (phase * (rho * _simpson_weights(PUPIL_SAMPLES))) @ bessel.T


def _check_optics(wavelength: float, numerical_aperture: float, immersion_index: float, sample_index: float,
                  pixel_size: float, z_step: float, depth: float) -> None:
    for name, value in (("wavelength", wavelength), ("numerical aperture", numerical_aperture),
                        ("immersion refractive index", immersion_index), ("sample refractive index", sample_index),
                        ("pixel size", pixel_size), ("z-step", z_step)):
        positive_parameter(name, value)
    if numerical_aperture >= immersion_index:
        raise KernelError(f"the numerical aperture ({numerical_aperture:g}) must be below the immersion's refractive "
                          f"index ({immersion_index:g}): NA = n sin(theta)")
    if not math.isfinite(depth) or depth < 0:
        raise KernelError(f"the depth below the coverslip must be 0 or more, got {depth!r}")
    if pixel_size > wavelength:
        raise KernelError(f"a pixel size ({pixel_size:g}) above the wavelength ({wavelength:g}) is unusual for a "
                          "microscope: give both in one unit, at the sample")


def _intensity(wavelength: float, numerical_aperture: float, immersion_index: float, sample_index: float,
               pixel_size: float, z_step: float, depth: float, planes: int, size: int) -> np.ndarray:
    """``(planes, size, size)`` widefield intensity, its brightest plane in the middle, not normalised."""
    # Sample a longer axis first, so that the brightest plane can be centred (a mismatch moves the focus).
    search = planes + 2 * max(planes, 8)
    offsets = (np.arange(search) - search // 2) * z_step - depth * immersion_index / sample_index
    samples = (np.arange(size * LATERAL_OVERSAMPLE) + 0.5) / LATERAL_OVERSAMPLE - size / 2.0
    grid_y, grid_x = np.meshgrid(samples, samples, indexing="ij")
    distance = np.hypot(grid_y, grid_x) * pixel_size
    radii = np.linspace(0.0, distance.max(), 4 * size * LATERAL_OVERSAMPLE)
    on_axis = np.abs(_radial_field(np.zeros(1), offsets, wavelength, numerical_aperture, immersion_index,
                                   sample_index, depth)[:, 0]) ** 2
    centre = int(np.argmax(on_axis))
    centre = min(max(centre, planes // 2), search - 1 - planes // 2)
    chosen = offsets[centre - planes // 2: centre + planes // 2 + 1]
    profile = np.abs(_radial_field(radii, chosen, wavelength, numerical_aperture, immersion_index, sample_index,
                                   depth)) ** 2
    volume = np.stack([np.interp(distance, radii, row) for row in profile])
    return volume.reshape(planes, size, LATERAL_OVERSAMPLE, size, LATERAL_OVERSAMPLE).mean(axis=(2, 4))


def _finish(volume: np.ndarray, what: str) -> torch.Tensor:
    total = volume.sum()
    if not np.isfinite(total) or total <= 0:
        raise KernelError(f"the {what} PSF is empty at this size; enlarge it or check its parameters")
    return torch.from_numpy(np.clip(volume, 0.0, None) / total).to(torch.float32)


def _extent(planes: int | None, size: int | None, wavelength: float, numerical_aperture: float,
            immersion_index: float, pixel_size: float, z_step: float) -> tuple[int, int]:
    if planes is None or size is None:
        default_planes, default_size = default_extent(wavelength, numerical_aperture, immersion_index, pixel_size,
                                                      z_step)
        planes, size = planes or default_planes, size or default_size
    planes, size = odd_size(0, planes), odd_size(0, size)
    if planes * size * size > MAX_KERNEL_SIZE**2 * 64:
        raise KernelError(f"a {planes}x{size}x{size} PSF is too large; check the units of the parameters")
    return planes, size


def widefield_psf_3d(wavelength: float, numerical_aperture: float, pixel_size: float, z_step: float,
                     immersion_index: float = OIL, sample_index: float | None = None, depth: float = 0.0,
                     planes: int | None = None, size: int | None = None) -> torch.Tensor:
    """The widefield (epifluorescence) PSF of the module's model, ``(planes, size, size)``.

    :param wavelength: emission wavelength in vacuum.
    :param numerical_aperture: the objective's NA, below ``immersion_index``.
    :param pixel_size: lateral pixel size at the sample; ``z_step``: the distance between planes (same unit).
    :param immersion_index: refractive index of the immersion medium (1.515 oil, 1.333 water, 1.0 air).
    :param sample_index: refractive index of the sample (default: the immersion's, no aberration).
    :param depth: depth of the point below the coverslip (matters only when the indices differ).
    :param planes: odd number of planes; ``size``: odd lateral size (defaults: :func:`default_extent`).
    :raises KernelError: for non-positive or inconsistent parameters.
    """
    sample_index = immersion_index if sample_index is None else sample_index
    _check_optics(wavelength, numerical_aperture, immersion_index, sample_index, pixel_size, z_step, depth)
    planes, size = _extent(planes, size, wavelength, numerical_aperture, immersion_index, pixel_size, z_step)
    return _finish(_intensity(wavelength, numerical_aperture, immersion_index, sample_index, pixel_size, z_step,
                              depth, planes, size), "widefield")


def confocal_psf_3d(wavelength: float, excitation_wavelength: float, numerical_aperture: float, pixel_size: float,
                    z_step: float, immersion_index: float = OIL, sample_index: float | None = None,
                    depth: float = 0.0, pinhole: float = 1.0, planes: int | None = None,
                    size: int | None = None) -> torch.Tensor:
    """A point-scanning confocal PSF: the excitation PSF times the emission PSF seen through a pinhole of
    ``pinhole`` Airy units (each plane of the emission PSF averaged over a disc of that diameter; 0: a point).

    Parameters as :func:`widefield_psf_3d`; ``wavelength`` is the emission's, ``excitation_wavelength`` the laser's.
    """
    sample_index = immersion_index if sample_index is None else sample_index
    _check_optics(wavelength, numerical_aperture, immersion_index, sample_index, pixel_size, z_step, depth)
    positive_parameter("excitation wavelength", excitation_wavelength)
    if not math.isfinite(pinhole) or pinhole < 0:
        raise KernelError(f"the pinhole must be 0 or more Airy units, got {pinhole!r}")
    planes, size = _extent(planes, size, wavelength, numerical_aperture, immersion_index, pixel_size, z_step)
    optics = (numerical_aperture, immersion_index, sample_index, pixel_size, z_step, depth, planes, size)
    emission = _intensity(wavelength, *optics)
    excitation = _intensity(excitation_wavelength, *optics)
    radius = pinhole * airy_first_zero(wavelength, pixel_size, numerical_aperture)  # one Airy unit: 1.22 lambda/NA
    if radius > 0.5:
        from scipy.signal import fftconvolve

        from sei.physics.psf import disc_psf

        disc = disc_psf(radius).numpy()
        emission = np.stack([fftconvolve(plane, disc, mode="same") for plane in emission])
    return _finish(excitation * emission, "confocal")


def bead_psf(volume: torch.Tensor | np.ndarray, planes: int | None = None, size: int | None = None) -> torch.Tensor:
    """A measured PSF from an image of one sub-resolution bead: background subtracted, centred and normalised.

    The background is the volume's median (a bead stack is mostly background), subtracted and clipped at 0. The
    centre is the brightest voxel after a 3x3 median in each plane (a hot pixel is not a bead) and a 3x3x3 mean,
    refined to the rounded intensity-weighted centroid of the window around it; the kernel is the ``(planes, size,
    size)`` window about that voxel (zeros beyond the volume), so the bead's centre is the kernel's (to the voxel: a
    sub-voxel shift would interpolate, i.e. blur, the PSF).

    :param volume: ``(D, H, W)`` bead stack (or one ``(H, W)`` image, giving a 2-D PSF), any non-negative units.
    :param planes: odd number of planes kept (default: the stack's, made odd); ``size``: odd lateral size (default:
        the stack's shorter side, made odd).
    :return: float32 kernel summing to 1.
    :raises KernelError: for an empty or flat volume, or even sizes.

    >>> bead = torch.zeros(9, 21, 21); bead[5, 12, 8] = 1.0; bead[4:7, 11:14, 7:10] += 0.1
    >>> psf = bead_psf(bead + 0.05, planes=5, size=7)
    >>> psf.shape, tuple(int(i) for i in (psf == psf.max()).nonzero()[0])
    (torch.Size([5, 7, 7]), (2, 3, 3))
    """
    data = torch.as_tensor(volume).detach().to(torch.float64)
    flat = data.ndim == 2
    if flat:
        data = data[None]
    if data.ndim != 3 or data.numel() == 0:
        raise KernelError(f"a bead image is (planes, height, width) or (height, width), got shape {tuple(data.shape)}")
    if not torch.isfinite(data).all():
        raise KernelError("the bead image holds NaN or infinite values")
    signal = (data - data.median()).clamp(min=0)
    if float(signal.max()) <= 0:
        raise KernelError("the bead image is flat: no bead stands above the background")
    # a 3x3 median in each plane removes isolated hot pixels, then a 3x3x3 mean finds the brightest bead voxel
    planes_padded = torch.nn.functional.pad(signal[:, None], (1, 1, 1, 1), mode="replicate")
    median = planes_padded.unfold(2, 3, 1).unfold(3, 3, 1).flatten(-2).median(-1).values[:, 0]
    box = tuple(3 if n >= 3 else 1 for n in signal.shape)  # a single image is smoothed within its plane
    smoothed = torch.nn.functional.avg_pool3d(median[None, None], box, stride=1, padding=tuple(k // 2 for k in box),
                                              count_include_pad=False)[0, 0]
    peak = np.unravel_index(int(smoothed.argmax()), tuple(smoothed.shape))
    depth, height, width = data.shape
    planes = 1 if flat else (planes if planes is not None else depth - (depth + 1) % 2)
    size = size if size is not None else min(height, width) - (min(height, width) + 1) % 2
    for name, value in (("planes", planes), ("size", size)):
        if value < 1 or value % 2 == 0:
            raise KernelError(f"the PSF's {name} must be an odd number >= 1, got {value}")
    half = (planes // 2, size // 2, size // 2)
    window = tuple(slice(max(0, c - h), c + h + 1) for c, h in zip(peak, half))
    weights = signal[window]
    grids = torch.meshgrid(*(torch.arange(s.start, s.start + n, dtype=torch.float64)
                             for s, n in zip(window, weights.shape)), indexing="ij")
    centre = [int(round(float((g * weights).sum() / weights.sum()))) for g in grids]
    kernel = torch.zeros(planes, size, size, dtype=torch.float64)
    source = tuple(slice(max(0, c - h), min(n, c + h + 1)) for c, h, n in zip(centre, half, data.shape))
    target = tuple(slice(s.start - (c - h), s.stop - (c - h)) for s, c, h in zip(source, centre, half))
    kernel[target] = signal[source]
    return _finish((kernel[0] if flat else kernel).numpy(), "bead")


def bead_psf_file(path: str | Path, planes: int | None = None, size: int | None = None
                  ) -> tuple[torch.Tensor, VoxelSize | None]:
    """:func:`bead_psf` of an image file (a z-stack, or one image) of one sub-resolution bead, and the voxel size the
    file states (``None`` for a 2-D PSF or a file that states none): what ``sei psf bead`` writes.

    :raises KernelError: for a colour image, or what :func:`bead_psf` refuses; :class:`ImageError` for a file that
        cannot be read.
    """
    from sei.io.images import read_image_file
    from sei.io.voxels import stated_voxel_size

    file = read_image_file(path)
    if any(page.ndim != 2 for page in file.pages):
        raise KernelError(f"{path}: a bead image has one channel")
    psf = bead_psf(np.stack(file.pages).astype(np.float64), planes, size)
    sampling = stated_voxel_size(path)
    described = any(value is not None for value in (sampling.z, sampling.y, sampling.x))
    return psf, sampling if described and psf.ndim == 3 else None
