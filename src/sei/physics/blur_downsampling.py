"""Super-resolution with a point-spread function: blur by a kernel, then decimation by ``r``.

``A x = S (k * x)``: the image is blurred by the system's PSF (as :class:`FFTBlur`, with its boundary model), then
every ``r``-th pixel is kept along each axis, starting from pixel (0, 0). A volume blurred by a 3-D PSF keeps every
``r``-th plane, starting from the first (axial super-resolution, :mod:`sei.core.scaling`): a microscope that steps
``r`` times more coarsely along z than the PSF's sampling. Images (volumes) must be multiples of ``r`` in size
along the decimated axes (the data pipeline crops them so). With the circular model everything is exact and costs
a few FFTs:

- ``A^T y = k~ * (S^T y)``: zero-filled up-sampling, then correlation with the kernel;
- ``A A^T`` is circular on the low-resolution grid, with transfer function ``d(u) = mean_j |K(u + j h)|^2`` over
  the ``r^2`` frequencies (``r`` for volumes) of the high-resolution grid that alias to ``u`` (``h`` the
  low-resolution size);
- pseudo-inverse ``A^+ y = A^T (A A^T)^-1 y``, and, by the Woodbury identity,
  ``prox_l2(z, y, gamma) = b - gamma A^T (I + gamma A A^T)^-1 A b`` with ``b = z + gamma A^T y``.

With a boundary model that does not wrap (``reflect``, ``replicate``), ``A`` and ``A^T`` stay exact (the blur's
extension and its adjoint), and the proximal operator, the Wiener inverse and the (Tikhonov-regularised)
pseudo-inverse are solved by conjugate gradients, as for :class:`FFTBlur`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sei.core.errors import ConfigError, ShapeError
from sei.core.checks import check_image_batch
from sei.core.scaling import measured_margin, scale_factors, upscaled_size
from sei.physics.base import SEILinearPhysics, SizeCache, compute_dtype
from sei.physics.blur import FFTBlur, centred_kernel
from sei.physics.solvers import tikhonov_solve

__all__ = ["aliased_power", "BlurDownsampling"]


def aliased_power(transfer_power: torch.Tensor, factor: int | tuple[int, ...]) -> torch.Tensor:
    """``d(u) = mean_j P(u + j h)``: a power spectrum folded onto the decimated grid.

    :param transfer_power: ``(H, W)`` (or ``(D, H, W)``) power spectrum on the full grid.
    :param factor: the decimation along every axis, or one factor per axis (1: not decimated).
    :return: ``(H / r, W / r)`` (or each axis divided by its factor).
    """
    factors = (factor,) * transfer_power.ndim if isinstance(factor, int) else tuple(factor)
    folded = transfer_power.reshape([part for n, f in zip(transfer_power.shape, factors) for part in (f, n // f)])
    return folded.mean(dim=tuple(range(0, 2 * len(factors), 2)))


class BlurDownsampling(SEILinearPhysics):
    """``y = S (k * x) + e`` for ``(B, C, H, W)`` images with ``H`` and ``W`` multiples of ``factor``; with a 3-D
    PSF, for ``(B, C, D, H, W)`` volumes with ``D`` a multiple of ``factor``, every ``factor``-th plane kept.

    :param kernel: a kernel name, file or ``(kh, kw)`` tensor (the PSF at the high resolution), normalised to sum 1;
        or a ``(kd, kh, kw)`` PSF sampled at the planes of the estimate (the fine z-step).
    :param factor: integer decimation factor r >= 2.
    :param noise_model: deepinv noise model applied by ``forward``.
    :param boundary: the blur's boundary model (:data:`sei.physics.blur.BOUNDARIES`; default circular).

    >>> import torch
    >>> op = BlurDownsampling("Gaussian_R1", 2)  # a 7x7 PSF: 3 px of margin at the high resolution
    >>> op.A(torch.rand(1, 1, 32, 48)).shape, op.margin
    (torch.Size([1, 1, 16, 24]), (2, 2))
    >>> axial = BlurDownsampling(torch.ones(5, 3, 3), 2)  # 5 planes deep: 2 planes, or 1 kept plane, of margin
    >>> axial.A(torch.rand(1, 1, 12, 16, 16)).shape, axial.margin
    (torch.Size([1, 1, 6, 16, 16]), (1, 1, 1))
    """

    def __init__(self, kernel: str | Path | torch.Tensor, factor: int, noise_model=None, boundary: str = "circular",
                 **kwargs) -> None:
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
            raise ConfigError(f"super-resolution factor must be an integer >= 2, got {factor!r}")
        super().__init__(noise_model=noise_model, **kwargs)
        self.blur = FFTBlur(kernel, boundary=boundary)
        self.factor = factor
        self.upscale = factor
        self.factors = scale_factors(factor, self.blur.spatial_dims)
        self._kept = (..., *(slice(None, None, f) for f in self.factors))
        self._aliased = SizeCache()

    @property
    def kernel(self) -> torch.Tensor:
        return self.blur.kernel

    @property
    def boundary(self) -> str:
        return self.blur.boundary

    @property
    def periodic(self) -> bool:
        """Whether the blur wraps around the image (the circular model): the closed forms hold."""
        return self.blur.periodic

    @property
    def spatial_dims(self) -> int:
        """2 for images, 3 for volumes (the kernel's dimensionality)."""
        return self.blur.spatial_dims

    @property
    def margin(self) -> tuple[int, ...]:
        """Low-resolution rows/columns (and planes, first, for volumes) whose blurred pixel reaches across the
        border."""
        return measured_margin(self.blur.kernel.shape, self.upscale)

    def extra_repr(self) -> str:
        boundary = "" if self.periodic else f", boundary={self.boundary!r}"
        return f"kernel_size={tuple(self.kernel.shape)}, factor={self.factor}{boundary}"

    def _check(self, x: torch.Tensor, name: str) -> None:
        check_image_batch(x, name, self.spatial_dims)

    def _image_size(self, y: torch.Tensor, img_size) -> tuple[int, ...]:
        expected = upscaled_size(y.shape[-self.spatial_dims:], self.factor)
        if img_size is None:
            return expected
        size = tuple(int(s) for s in tuple(img_size)[-self.spatial_dims:])
        if size != expected:
            raise ShapeError(f"image size {'x'.join(map(str, size))} is not the measurement size "
                             f"{'x'.join(map(str, y.shape[-self.spatial_dims:]))} up-sampled by "
                             f"{'x'.join(map(str, self.factors))}")
        return size

    def _check_divisible(self, x: torch.Tensor) -> None:
        size = x.shape[-self.spatial_dims:]
        if any(n % f for n, f in zip(size, self.factors)):
            what = "planes" if self.spatial_dims == 3 else "image sizes"
            raise ShapeError(f"blur-then-decimate needs {what} that are multiples of {self.factor}, got "
                             f"{'x'.join(map(str, size))}; crop the {'volume' if self.spatial_dims == 3 else 'image'} "
                             "first")

    def _low_resolution_filter(self, y: torch.Tensor, multiplier) -> torch.Tensor:
        """``F^-1(multiplier(d) F y)`` on the low-resolution grid, ``d`` the aliased power of the kernel."""
        dtype = compute_dtype(y)
        size = tuple(y.shape[-self.spatial_dims:])
        axes = tuple(range(-self.spatial_dims, 0))
        key = (size, dtype, y.device)

        def compute() -> torch.Tensor:
            kernel = self.kernel.to(device=y.device, dtype=torch.float64)
            transfer = torch.fft.fftn(centred_kernel(kernel, *upscaled_size(size, self.factor)))
            return aliased_power(transfer.abs() ** 2, self.factors).to(dtype)

        power = self._aliased.get(key, compute)
        return torch.fft.ifftn(torch.fft.fftn(y.to(dtype), dim=axes) * multiplier(power), dim=axes).real

    # -- LinearPhysics interface --------------------------------------------------------------------------
    def A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        self._check(x, "x")
        self._check_divisible(x)
        return self.blur.A(x)[self._kept]

    def A_adjoint(self, y: torch.Tensor, img_size=None, **kwargs) -> torch.Tensor:
        self._check(y, "y")
        size = self._image_size(y, img_size)
        filled = y.new_zeros(*y.shape[:-self.spatial_dims], *size, dtype=compute_dtype(y))
        filled[self._kept] = y.to(filled.dtype)
        return self.blur.A_adjoint(filled)

    def A_A_adjoint(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        self._check(y, "y")
        if not self.periodic:
            return self.A(self.A_adjoint(y))
        return self._low_resolution_filter(y, lambda d: d)

    def A_dagger(self, y: torch.Tensor, rcond: float = 1e-6, img_size=None, tikhonov: float = 1e-4,
                 **kwargs) -> torch.Tensor:
        """Pseudo-inverse. Circular model: ``A^T (A A^T)^-1 y``, frequencies with ``d <= rcond * max d`` treated as
        zeros. Other boundaries: the Tikhonov-regularised ``(A^T A + tikhonov I)^-1 A^T y`` by conjugate gradients
        (see :meth:`FFTBlur.A_dagger <sei.physics.blur.FFTBlur.A_dagger>`)."""
        self._check(y, "y")
        if not self.periodic:
            size = self._image_size(y, img_size)
            start = y.new_zeros(*y.shape[:-self.spatial_dims], *size, dtype=compute_dtype(y))
            return tikhonov_solve(start, y, 1.0 / tikhonov, self.A, self.A_adjoint)

        def inverse(d: torch.Tensor) -> torch.Tensor:
            keep = d > rcond * d.max()
            return torch.where(keep, 1.0 / torch.where(keep, d, torch.ones_like(d)), torch.zeros_like(d))

        return self.A_adjoint(self._low_resolution_filter(y, inverse), img_size=img_size)

    def prox_l2(self, z: torch.Tensor, y: torch.Tensor, gamma: float, **kwargs) -> torch.Tensor:
        """Exact ``argmin_x gamma/2 ||A x - y||^2 + 1/2 ||x - z||^2``: the Woodbury identity for the circular model
        (see the module), conjugate gradients to the dtype's accuracy otherwise."""
        self._check(z, "z")
        self._check(y, "y")
        if not self.periodic:
            dtype = compute_dtype(y)
            return tikhonov_solve(z.to(dtype), y.to(dtype), gamma, self.A, self.A_adjoint)
        size = z.shape[-self.spatial_dims:]
        b = z.to(compute_dtype(y)) + gamma * self.A_adjoint(y, img_size=size)
        correction = self._low_resolution_filter(self.A(b), lambda d: 1.0 / (1.0 + gamma * d))
        return b - gamma * self.A_adjoint(correction, img_size=size)

    def wiener(self, y: torch.Tensor, reg: float, img_size=None) -> torch.Tensor:
        """Regularised inverse ``(A^T A + reg I)^-1 A^T y``, ``reg > 0``."""
        if reg <= 0:
            raise ValueError(f"Wiener regularisation must be > 0, got {reg}")
        size = self._image_size(y, img_size)
        return self.prox_l2(y.new_zeros(*y.shape[:-self.spatial_dims], *size), y, 1.0 / reg)
