"""Super-resolution with a point-spread function: blur by a kernel, then decimation by ``r``.

``A x = S (k * x)``: the image is blurred by the system's PSF (as :class:`FFTBlur`, with its boundary model), then
every ``r``-th pixel is kept along each axis, starting from pixel (0, 0). Images must be multiples of ``r`` in
size (the data pipeline crops them so). With the circular model everything is exact and costs a few FFTs:

- ``A^T y = k~ * (S^T y)``: zero-filled up-sampling, then correlation with the kernel;
- ``A A^T`` is circular on the low-resolution grid, with transfer function ``d(u) = mean_j |K(u + j h)|^2`` over
  the ``r^2`` frequencies of the high-resolution grid that alias to ``u`` (``h`` the low-resolution size);
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
from sei.physics.base import SEILinearPhysics, SizeCache, compute_dtype
from sei.physics.blur import FFTBlur, centred_kernel
from sei.physics.solvers import tikhonov_solve

__all__ = ["aliased_power", "BlurDownsampling"]


def aliased_power(transfer_power: torch.Tensor, factor: int) -> torch.Tensor:
    """``d(u) = mean_j P(u + j h)``: an ``(H, W)`` power spectrum folded onto the ``(H/r, W/r)`` grid."""
    height, width = transfer_power.shape[-2:]
    return transfer_power.reshape(factor, height // factor, factor, width // factor).mean(dim=(0, 2))


class BlurDownsampling(SEILinearPhysics):
    """``y = S (k * x) + e`` for ``(B, C, H, W)`` images with ``H`` and ``W`` multiples of ``factor``.

    :param kernel: a kernel name, file or ``(kh, kw)`` tensor (the PSF at the high resolution), normalised to sum 1.
    :param factor: integer decimation factor r >= 2.
    :param noise_model: deepinv noise model applied by ``forward``.
    :param boundary: the blur's boundary model (:data:`sei.physics.blur.BOUNDARIES`; default circular).

    >>> import torch
    >>> op = BlurDownsampling("Gaussian_R1", 2)  # a 7x7 PSF: 3 px of margin at the high resolution
    >>> op.A(torch.rand(1, 1, 32, 48)).shape, op.margin
    (torch.Size([1, 1, 16, 24]), (2, 2))
    """

    def __init__(self, kernel: str | Path | torch.Tensor, factor: int, noise_model=None, boundary: str = "circular",
                 **kwargs) -> None:
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
            raise ConfigError(f"super-resolution factor must be an integer >= 2, got {factor!r}")
        super().__init__(noise_model=noise_model, **kwargs)
        self.blur = FFTBlur(kernel, boundary=boundary)
        self.factor = factor
        self.upscale = factor
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
    def margin(self) -> tuple[int, int]:
        """Low-resolution rows/columns whose blurred pixel reaches across the image border."""
        mh, mw = self.blur.margin
        return (-(-mh // self.factor), -(-mw // self.factor))

    def extra_repr(self) -> str:
        boundary = "" if self.periodic else f", boundary={self.boundary!r}"
        return f"kernel_size={tuple(self.kernel.shape)}, factor={self.factor}{boundary}"

    def _image_size(self, y: torch.Tensor, img_size) -> tuple[int, int]:
        if img_size is None:
            return (y.shape[-2] * self.factor, y.shape[-1] * self.factor)
        height, width = (int(s) for s in tuple(img_size)[-2:])
        if (height, width) != (y.shape[-2] * self.factor, y.shape[-1] * self.factor):
            raise ShapeError(f"image size {height}x{width} is not {self.factor} times the measurement size "
                             f"{y.shape[-2]}x{y.shape[-1]}")
        return height, width

    def _check_divisible(self, x: torch.Tensor) -> None:
        if x.shape[-2] % self.factor or x.shape[-1] % self.factor:
            raise ShapeError(f"blur-then-decimate needs image sizes that are multiples of {self.factor}, got "
                             f"{x.shape[-2]}x{x.shape[-1]}; crop the image first")

    def _low_resolution_filter(self, y: torch.Tensor, multiplier) -> torch.Tensor:
        """``F^-1(multiplier(d) F y)`` on the low-resolution grid, ``d`` the aliased power of the kernel."""
        dtype = compute_dtype(y)
        height, width = y.shape[-2:]
        key = (height, width, dtype, y.device)

        def compute() -> torch.Tensor:
            kernel = self.kernel.to(device=y.device, dtype=torch.float64)
            transfer = torch.fft.fft2(centred_kernel(kernel, height * self.factor, width * self.factor))
            return aliased_power(transfer.abs() ** 2, self.factor).to(dtype)

        power = self._aliased.get(key, compute)
        return torch.fft.ifft2(torch.fft.fft2(y.to(dtype)) * multiplier(power)).real

    # -- LinearPhysics interface --------------------------------------------------------------------------
    def A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        check_image_batch(x)
        self._check_divisible(x)
        return self.blur.A(x)[..., :: self.factor, :: self.factor]

    def A_adjoint(self, y: torch.Tensor, img_size=None, **kwargs) -> torch.Tensor:
        check_image_batch(y, "y")
        height, width = self._image_size(y, img_size)
        filled = y.new_zeros(*y.shape[:-2], height, width, dtype=compute_dtype(y))
        filled[..., :: self.factor, :: self.factor] = y.to(filled.dtype)
        return self.blur.A_adjoint(filled)

    def A_A_adjoint(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        check_image_batch(y, "y")
        if not self.periodic:
            return self.A(self.A_adjoint(y))
        return self._low_resolution_filter(y, lambda d: d)

    def A_dagger(self, y: torch.Tensor, rcond: float = 1e-6, img_size=None, tikhonov: float = 1e-4,
                 **kwargs) -> torch.Tensor:
        """Pseudo-inverse. Circular model: ``A^T (A A^T)^-1 y``, frequencies with ``d <= rcond * max d`` treated as
        zeros. Other boundaries: the Tikhonov-regularised ``(A^T A + tikhonov I)^-1 A^T y`` by conjugate gradients
        (see :meth:`FFTBlur.A_dagger <sei.physics.blur.FFTBlur.A_dagger>`)."""
        check_image_batch(y, "y")
        if not self.periodic:
            height, width = self._image_size(y, img_size)
            start = y.new_zeros(*y.shape[:-2], height, width, dtype=compute_dtype(y))
            return tikhonov_solve(start, y, 1.0 / tikhonov, self.A, self.A_adjoint)

        def inverse(d: torch.Tensor) -> torch.Tensor:
            keep = d > rcond * d.max()
            return torch.where(keep, 1.0 / torch.where(keep, d, torch.ones_like(d)), torch.zeros_like(d))

        return self.A_adjoint(self._low_resolution_filter(y, inverse), img_size=img_size)

    def prox_l2(self, z: torch.Tensor, y: torch.Tensor, gamma: float, **kwargs) -> torch.Tensor:
        """Exact ``argmin_x gamma/2 ||A x - y||^2 + 1/2 ||x - z||^2``: the Woodbury identity for the circular model
        (see the module), conjugate gradients to the dtype's accuracy otherwise."""
        check_image_batch(z, "z")
        check_image_batch(y, "y")
        if not self.periodic:
            dtype = compute_dtype(y)
            return tikhonov_solve(z.to(dtype), y.to(dtype), gamma, self.A, self.A_adjoint)
        b = z.to(compute_dtype(y)) + gamma * self.A_adjoint(y, img_size=z.shape[-2:])
        correction = self._low_resolution_filter(self.A(b), lambda d: 1.0 / (1.0 + gamma * d))
        return b - gamma * self.A_adjoint(correction, img_size=z.shape[-2:])

    def wiener(self, y: torch.Tensor, reg: float, img_size=None) -> torch.Tensor:
        """Regularised inverse ``(A^T A + reg I)^-1 A^T y``, ``reg > 0``."""
        if reg <= 0:
            raise ValueError(f"Wiener regularisation must be > 0, got {reg}")
        height, width = self._image_size(y, img_size)
        return self.prox_l2(y.new_zeros(*y.shape[:-2], height, width), y, 1.0 / reg)
