"""Circular convolution computed with the FFT, for images of any size.

deepinv's ``BlurFFT`` fixes the image size at construction; SEI needs one operator for 48x48 training
crops, full validation images and whatever size a user brings, so the transfer function is computed per
(size, dtype, device) and cached on the operator.

With ``K`` the transfer function (the 2-D DFT of the kernel zero-padded to the image size and centred at
the origin), the operator and its relatives are diagonal in the Fourier domain:

- ``A x = F^-1(K F x)``, ``A^T y = F^-1(conj(K) F y)``;
- pseudo-inverse ``A^+ y = F^-1(conj(K) / |K|^2 F y)`` where ``|K| > rcond * max|K|``, 0 elsewhere;
- ``prox_l2(z, y, gamma) = F^-1((F z + gamma conj(K) F y) / (1 + gamma |K|^2))``;
- Wiener-regularised inverse ``F^-1(conj(K) F y / (|K|^2 + reg))``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sei.core.errors import ImageTooSmallError
from sei.core.checks import check_image_batch
from sei.physics.base import SEILinearPhysics, SizeCache, compute_dtype
from sei.physics.kernels import load_kernel

__all__ = ["centred_kernel", "FFTBlur", "laplacian_power", "transfer_function"]


def centred_kernel(kernel: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``kernel`` zero-padded to ``height x width`` with its centre moved to pixel (0, 0).

    :param kernel: ``(kh, kw)`` tensor, ``kh <= height`` and ``kw <= width``.
    :raises ImageTooSmallError: if the image is smaller than the kernel.
    """
    kh, kw = kernel.shape
    if kh > height or kw > width:
        raise ImageTooSmallError(
            f"image of size {height}x{width} is smaller than the {kh}x{kw} blur kernel; "
            f"images must be at least {kh}x{kw}"
        )
    padded = kernel.new_zeros(height, width)
    padded[:kh, :kw] = kernel
    return torch.roll(padded, shifts=(-(kh // 2), -(kw // 2)), dims=(0, 1))


def transfer_function(kernel: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Real-input DFT of ``kernel`` zero-padded to ``height x width`` with its centre moved to pixel (0, 0).

    :return: complex tensor of shape ``(height, width // 2 + 1)``.
    """
    return torch.fft.rfft2(centred_kernel(kernel, height, width))


def laplacian_power(height: int, width: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``|L(f)|^2`` of the 5-point discrete Laplacian on a ``height x width`` grid, shape ``(height, width // 2 + 1)``.

    Used as a per-frequency Wiener regularisation: it penalises high frequencies like the ``1/|f|^2`` power
    spectrum of natural images suggests.
    """
    u = torch.fft.fftfreq(height, dtype=dtype).view(-1, 1)
    v = torch.fft.rfftfreq(width, dtype=dtype).view(1, -1)
    return (4 - 2 * torch.cos(2 * torch.pi * u) - 2 * torch.cos(2 * torch.pi * v)) ** 2


class FFTBlur(SEILinearPhysics):
    """Circular blur ``y = k * x + e`` for ``(B, C, H, W)`` images of any size, every channel by the same kernel.

    :param kernel: a kernel name (``"Gaussian_R2"``), a kernel file, or a ``(kh, kw)`` tensor; normalised to sum 1.
    :param noise_model: deepinv noise model applied by ``forward`` (default: none).

    >>> import torch
    >>> blur = FFTBlur("Box_R2")
    >>> x, y = torch.randn(2, 1, 1, 20, 24, dtype=torch.float64)
    >>> bool(torch.isclose((blur.A(x) * y).sum(), (x * blur.A_adjoint(y)).sum()))  # <A x, y> = <x, A^T y>
    True
    """

    upscale = 1

    def __init__(self, kernel: str | Path | torch.Tensor, noise_model=None, **kwargs) -> None:
        super().__init__(noise_model=noise_model, **kwargs)
        self.register_buffer("kernel", load_kernel(kernel))
        self._transfer = SizeCache()

    @property
    def margin(self) -> tuple[int, int]:
        """Rows/columns at each border of ``A x`` that mix in pixels from the opposite border."""
        kh, kw = self.kernel.shape
        return ((kh - 1) // 2, (kw - 1) // 2)

    def extra_repr(self) -> str:
        return f"kernel_size={tuple(self.kernel.shape)}"

    def transfer(self, height: int, width: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """Cached transfer function for ``height x width`` images, complex ``(height, width // 2 + 1)``."""
        key = (height, width, dtype, torch.device(device))

        def compute() -> torch.Tensor:
            # Built in float64 so that float32 operators are accurate to float32 rounding.
            transfer = transfer_function(self.kernel.to(device=device, dtype=torch.float64), height, width)
            return transfer.to(torch.complex128 if dtype == torch.float64 else torch.complex64)

        return self._transfer.get(key, compute)

    def _filter(self, x: torch.Tensor, multiplier) -> torch.Tensor:
        """``F^-1(multiplier(K) F x)`` over the last two axes, computed in float32 or float64."""
        check_image_batch(x)
        dtype = compute_dtype(x)
        height, width = x.shape[-2:]
        transfer = self.transfer(height, width, dtype, x.device)
        spectrum = torch.fft.rfft2(x.to(dtype))
        return torch.fft.irfft2(spectrum * multiplier(transfer), s=(height, width))

    def A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        return self._filter(x, lambda k: k)

    def A_adjoint(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        return self._filter(y, torch.conj)

    def A_adjoint_A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        return self._filter(x, lambda k: k.abs() ** 2)

    def A_A_adjoint(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        return self._filter(y, lambda k: k.abs() ** 2)

    def A_dagger(self, y: torch.Tensor, rcond: float = 1e-6, **kwargs) -> torch.Tensor:
        """Pseudo-inverse: frequencies with ``|K| <= rcond * max|K|`` are treated as zeros of ``K``."""

        def inverse(k: torch.Tensor) -> torch.Tensor:
            magnitude = k.abs()
            keep = magnitude > rcond * magnitude.max()
            return torch.where(keep, 1.0 / torch.where(keep, k, torch.ones_like(k)), torch.zeros_like(k))

        return self._filter(y, inverse)

    def prox_l2(self, z: torch.Tensor, y: torch.Tensor, gamma: float, **kwargs) -> torch.Tensor:
        """Exact ``argmin_x gamma/2 ||A x - y||^2 + 1/2 ||x - z||^2``."""
        check_image_batch(z, "z")
        check_image_batch(y, "y")
        dtype = compute_dtype(y)
        height, width = y.shape[-2:]
        k = self.transfer(height, width, dtype, y.device)
        numerator = torch.fft.rfft2(z.to(dtype)) + gamma * torch.conj(k) * torch.fft.rfft2(y.to(dtype))
        return torch.fft.irfft2(numerator / (1.0 + gamma * k.abs() ** 2), s=(height, width))

    def wiener(self, y: torch.Tensor, reg: float | torch.Tensor) -> torch.Tensor:
        """Wiener-regularised inverse ``F^-1(conj(K) F y / (|K|^2 + reg))``.

        :param reg: the noise-to-signal power ratio: a positive number (flat signal spectrum), or a per-frequency
            tensor broadcastable to ``(H, W // 2 + 1)`` (e.g. ``lam * laplacian_power(H, W)``), positive wherever
            ``K`` vanishes. For white noise of variance ``sigma^2`` and signal power spectrum ``P``,
            ``reg = sigma^2 / P`` is the minimum-mean-squared-error choice.
        """
        if not isinstance(reg, torch.Tensor) and reg <= 0:
            raise ValueError(f"Wiener regularisation must be > 0, got {reg}")
        if isinstance(reg, torch.Tensor):
            reg = reg.to(device=y.device, dtype=compute_dtype(y))
        return self._filter(y, lambda k: torch.conj(k) / (k.abs() ** 2 + reg))
