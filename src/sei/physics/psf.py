"""Point-spread functions from optics parameters: Gaussian, motion, defocus disc, diffraction-limited (Airy).

Each function returns a float32 ``(k, k)`` kernel, ``k`` odd, non-negative and summing to 1, its centre at
pixel ``(k // 2, k // 2)`` (the convention of :mod:`sei.physics.kernels`). Lengths are in pixels unless said
otherwise. Pixels integrate the continuous PSF: each is averaged over ``oversample`` x ``oversample`` sub-pixel
samples, so small PSFs (a disc of radius 1.5 px) are rendered faithfully rather than point-sampled.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from sei.core.errors import KernelError, SEIWarning
from sei.io.voxels import VoxelSize

__all__ = ["MAX_KERNEL_SIZE", "MAX_NUMERICAL_APERTURE", "OVERSAMPLE", "PSF_KINDS", "positive_parameter", "airy_first_zero", "airy_psf", "disc_psf", "gaussian_psf",
           "make_psf", "motion_psf", "odd_size", "psf_with_sampling"]

MAX_KERNEL_SIZE = 255
# the largest numerical aperture objectives reach (high-index immersion); more is a unit mix-up, warned about
MAX_NUMERICAL_APERTURE = 1.7
OVERSAMPLE = 7


def odd_size(radius: float, size: int | None = None) -> int:
    """``size`` checked (odd, 1..255), or the smallest odd size holding a disc of ``radius`` px."""
    if size is None:
        size = 2 * int(math.ceil(radius)) + 1
    if not isinstance(size, int) or isinstance(size, bool) or size < 1 or size % 2 == 0:
        raise KernelError(f"kernel size must be an odd positive integer, got {size!r}")
    if size > MAX_KERNEL_SIZE:
        raise KernelError(f"a {size}x{size} kernel is larger than {MAX_KERNEL_SIZE}x{MAX_KERNEL_SIZE}; "
                          "check the units of the parameters (pixels, and wavelength and pixel size in one unit)")
    return size


def _sample_grid(size: int, oversample: int) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel sample coordinates ``(y, x)`` in pixels from the centre, shape ``(size * o, size * o)``."""
    offsets = (np.arange(size * oversample) + 0.5) / oversample - size / 2.0
    return np.meshgrid(offsets, offsets, indexing="ij")


def _integrate(values: np.ndarray, size: int, oversample: int) -> np.ndarray:
    """Average ``(size * o, size * o)`` samples over each pixel's ``o x o`` block."""
    return values.reshape(size, oversample, size, oversample).mean(axis=(1, 3))


def _normalised(kernel: np.ndarray, what: str) -> torch.Tensor:
    kernel = np.clip(kernel, 0.0, None)
    total = kernel.sum()
    if not np.isfinite(total) or total <= 0:
        raise KernelError(f"the {what} PSF is empty at this size; enlarge it or check its parameters")
    return torch.from_numpy(kernel / total).to(torch.float32)


def positive_parameter(name: str, value: float) -> float:
    """``value`` as a float, checked finite and above zero.

    :raises KernelError: naming the parameter otherwise.
    """
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise KernelError(f"{name} must be a positive number, got {value}")
    return value


def gaussian_psf(sigma_x: float, sigma_y: float | None = None, angle: float = 0.0, size: int | None = None,
                 oversample: int = OVERSAMPLE) -> torch.Tensor:
    """Anisotropic Gaussian: standard deviations ``sigma_x`` and ``sigma_y`` px along axes rotated by ``angle``
    degrees (counter-clockwise from the image's x axis); default size covers 3 standard deviations."""
    sigma_x = positive_parameter("sigma_x", sigma_x)
    sigma_y = positive_parameter("sigma_y", sigma_y if sigma_y is not None else sigma_x)
    size = odd_size(3 * max(sigma_x, sigma_y), size)
    y, x = _sample_grid(size, oversample)
    theta = math.radians(angle)
    u = x * math.cos(theta) - y * math.sin(theta)  # image rows grow downwards: -y is "up"
    v = x * math.sin(theta) + y * math.cos(theta)
    values = np.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    return _normalised(_integrate(values, size, oversample), "Gaussian")


def motion_psf(length: float, angle: float = 0.0, size: int | None = None, oversample: int = OVERSAMPLE
               ) -> torch.Tensor:
    """Linear motion blur: a segment of ``length`` px through the centre at ``angle`` degrees (counter-clockwise
    from the x axis), rendered with sub-pixel accuracy (the segment is sampled densely and splatted bilinearly)."""
    length = positive_parameter("motion length", length)
    size = odd_size(length / 2.0, size)
    fine = size * oversample
    grid = np.zeros((fine, fine))
    theta = math.radians(angle)
    samples = max(int(math.ceil(length * oversample * 4)), 2)
    t = np.linspace(-length / 2.0, length / 2.0, samples)
    # continuous coordinates in fine-grid pixels, origin at the kernel's centre
    col = (t * math.cos(theta) + size / 2.0) * oversample - 0.5
    row = (-t * math.sin(theta) + size / 2.0) * oversample - 0.5
    r0, c0 = np.floor(row).astype(int), np.floor(col).astype(int)
    fr, fc = row - r0, col - c0
    for dr, dc, weight in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc), (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):
        rows, cols = r0 + dr, c0 + dc
        inside = (rows >= 0) & (rows < fine) & (cols >= 0) & (cols < fine)
        np.add.at(grid, (rows[inside], cols[inside]), weight[inside])
    return _normalised(_integrate(grid, size, oversample), "motion")


def disc_psf(radius: float, size: int | None = None, oversample: int = OVERSAMPLE) -> torch.Tensor:
    """Defocus blur: a uniform disc of ``radius`` px (pixels on its edge weighted by the area they cover)."""
    radius = positive_parameter("defocus radius", radius)
    size = odd_size(radius, size)
    y, x = _sample_grid(size, oversample)
    return _normalised(_integrate((x**2 + y**2 <= radius**2).astype(np.float64), size, oversample), "defocus")


def airy_first_zero(wavelength: float, pixel_size: float, numerical_aperture: float | None = None,
                    f_number: float | None = None) -> float:
    """Radius in pixels of the Airy pattern's first dark ring: ``0.61 lambda / NA`` (a microscope) or
    ``1.22 lambda N`` (a telescope or camera with f-number ``N``), divided by the pixel size (same unit as
    ``wavelength``, at the sample for a microscope, on the sensor for a telescope)."""
    wavelength = positive_parameter("wavelength", wavelength)
    pixel_size = positive_parameter("pixel size", pixel_size)
    if (numerical_aperture is None) == (f_number is None):
        raise KernelError("give the numerical aperture (microscope) or the f-number (telescope, camera), not both")
    if numerical_aperture is not None:
        numerical_aperture = positive_parameter("numerical aperture", numerical_aperture)
        if numerical_aperture > MAX_NUMERICAL_APERTURE:  # NA = n sin(theta) <= the immersion's refractive index
            warnings.warn(f"a numerical aperture of {numerical_aperture:g} is above any objective's (about "
                          f"{MAX_NUMERICAL_APERTURE:g} at most, with high-index immersion); is it the f-number "
                          "(--f-number)?", SEIWarning, stacklevel=2)
        return 0.6098 * wavelength / numerical_aperture / pixel_size
    return 1.2197 * wavelength * positive_parameter("f-number", f_number) / pixel_size


def airy_psf(wavelength: float, pixel_size: float, numerical_aperture: float | None = None,
             f_number: float | None = None, rings: int = 3, size: int | None = None,
             oversample: int = OVERSAMPLE) -> torch.Tensor:
    """Diffraction-limited PSF of a circular aperture (the Airy pattern) ``I(r) = (2 J1(v) / v)^2`` with
    ``v = 3.8317 r / r0``, ``r0`` the first dark ring's radius (see :func:`airy_first_zero`).

    :param rings: the default size holds this many dark rings (the n-th at about ``(n + 0.22) / 1.22 * r0``).
    """
    from scipy.special import j1

    first_zero = airy_first_zero(wavelength, pixel_size, numerical_aperture, f_number)
    if rings < 1:
        raise KernelError(f"rings must be >= 1, got {rings}")
    size = odd_size(first_zero * (rings + 0.22) / 1.22, size)
    y, x = _sample_grid(size, oversample)
    v = 3.8317 * np.sqrt(x**2 + y**2) / first_zero
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(v > 1e-8, (2.0 * j1(v) / v) ** 2, 1.0)
    return _normalised(_integrate(values, size, oversample), "diffraction")


PSF_KINDS = ("gaussian", "motion", "defocus", "diffraction", "widefield", "confocal")


def make_psf(kind: str, size: int | None = None, **params: float | None) -> torch.Tensor:
    """A PSF by kind with its parameters (``None`` values are left to the defaults), or a named kernel.

    ========================  ================================================================================
    kind                      parameters
    ========================  ================================================================================
    ``gaussian``              ``sigma`` (px), ``sigma_y`` (px, default ``sigma``), ``angle`` (degrees)
    ``motion``                ``length`` (px), ``angle`` (degrees)
    ``defocus``               ``radius`` (px)
    ``diffraction``           ``wavelength``, ``pixel_size`` (one unit), ``na`` or ``f_number``, ``rings``
    ``widefield`` (3-D)       ``wavelength``, ``na``, ``pixel_size``, ``z_step``, ``immersion_index``,
                              ``sample_index``, ``depth``, ``planes`` (:mod:`sei.physics.psf3d`)
    ``confocal`` (3-D)        the same and ``excitation_wavelength``, ``pinhole`` (Airy units)
    ``Gaussian_R2`` ...       a named kernel (no parameters)
    ========================  ================================================================================

    :raises KernelError: for missing or invalid parameters; :class:`UnknownNameError` for an unknown kind.
    """
    params = {k: v for k, v in params.items() if v is not None}
    key = str(kind).strip().lower()

    def need(*names: str) -> None:
        missing = [n for n in names if n not in params]
        if missing:
            raise KernelError(f"a {key} PSF needs {', '.join('--' + n.replace('_', '-') for n in missing)}")

    def only(*names: str) -> None:
        extra = sorted(set(params) - set(names))
        if extra:
            raise KernelError(f"a {key} PSF takes no {', '.join('--' + n.replace('_', '-') for n in extra)}")

    if key == "gaussian":
        need("sigma")
        only("sigma", "sigma_y", "angle")
        return gaussian_psf(params["sigma"], params.get("sigma_y"), params.get("angle", 0.0), size)
    if key == "motion":
        need("length")
        only("length", "angle")
        return motion_psf(params["length"], params.get("angle", 0.0), size)
    if key in ("defocus", "disc"):
        need("radius")
        only("radius")
        return disc_psf(params["radius"], size)
    if key in ("diffraction", "airy"):
        need("wavelength", "pixel_size")
        only("wavelength", "pixel_size", "na", "f_number", "rings")
        return airy_psf(params["wavelength"], params["pixel_size"], params.get("na"), params.get("f_number"),
                        int(params.get("rings", 3)), size)
    if key in ("widefield", "confocal"):
        from sei.physics.psf3d import confocal_psf_3d, widefield_psf_3d

        optics = ("wavelength", "na", "pixel_size", "z_step")
        need(*optics, *(("excitation_wavelength",) if key == "confocal" else ()))
        extra = ("excitation_wavelength", "pinhole") if key == "confocal" else ()
        only(*optics, "immersion_index", "sample_index", "depth", "planes", *extra)
        values = dict(wavelength=params["wavelength"], numerical_aperture=params["na"],
                      pixel_size=params["pixel_size"], z_step=params["z_step"],
                      **{name: params[name] for name in ("immersion_index", "sample_index", "depth", *extra)
                         if name in params},
                      planes=int(params["planes"]) if "planes" in params else None, size=size)
        return confocal_psf_3d(**values) if key == "confocal" else widefield_psf_3d(**values)
    from sei.core.errors import UnknownNameError
    from sei.physics.kernels import PAPER_KERNELS, kernel_from_name

    try:
        kernel = kernel_from_name(str(kind))
    except UnknownNameError:
        raise UnknownNameError("PSF kind", kind, (*PSF_KINDS, *PAPER_KERNELS),
                               hint="any Gaussian_R<int> or Box_R<int> works too") from None
    if params or size is not None:
        raise KernelError(f"the named kernel {kind} takes no parameters")
    return kernel


def psf_with_sampling(kind: str, size: int | None = None, **params: float | None
                      ) -> tuple[torch.Tensor, VoxelSize | None]:
    """:func:`make_psf`, and the voxel size in micrometres a 3-D PSF was made for (``None`` for a 2-D one, whose
    lengths are pixels): what ``sei psf`` records beside the kernel so that stacks of other voxels are refused.

    :raises KernelError: like :func:`make_psf`.

    >>> kernel, sampling = psf_with_sampling("widefield", wavelength=520, na=1.4, pixel_size=100, z_step=250,
    ...                                      planes=5, size=9)
    >>> tuple(kernel.shape), sampling.z, sampling.x
    ((5, 9, 9), 0.25, 0.1)
    """
    kernel = make_psf(kind, size=size, **params)
    if kernel.ndim != 3:
        return kernel, None
    from sei.physics.psf3d import optics_sampling

    return kernel, optics_sampling(params["wavelength"], params["pixel_size"], params["z_step"])
