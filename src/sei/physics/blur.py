"""Convolution computed with the FFT, for images of any size, with a circular or a non-wrapping boundary.

deepinv's ``BlurFFT`` fixes the image size at construction; SEI needs one operator for 48x48 training
crops, full validation images and whatever size a user brings, so the transfer function is computed per
(size, dtype, device) and cached on the operator.

With ``K`` the transfer function (the 2-D DFT of the kernel zero-padded to the image size and centred at
the origin), the operator and its relatives are diagonal in the Fourier domain:

- ``A x = F^-1(K F x)``, ``A^T y = F^-1(conj(K) F y)``;
- pseudo-inverse ``A^+ y = F^-1(conj(K) / |K|^2 F y)`` where ``|K| > rcond * max|K|``, 0 elsewhere;
- ``prox_l2(z, y, gamma) = F^-1((F z + gamma conj(K) F y) / (1 + gamma |K|^2))``;
- Wiener-regularised inverse ``F^-1(conj(K) F y / (|K|^2 + reg))``.

A real field of view does not wrap around: near its borders a measurement sees the scene beyond the image, which
the circular model replaces by the opposite border. The ``reflect`` and ``replicate`` boundary models extend the
image by ``m`` pixels (the kernel's radius) as ``F.pad`` does, blur that circularly and keep the centre:
``A = C P``, with ``P`` the padding and ``C`` the crop, so no pixel mixes with the opposite border; the adjoint is
``A^T = P^T K^T C^T`` (``C^T`` pads with zeros, ``P^T`` folds the added rows and columns back onto those they
copy). Without the FFT diagonalisation the pseudo-inverse and the proximal operator are solved by conjugate
gradients with implicit gradients (:mod:`sei.physics.solvers`), and the Wiener inverse is taken on the image
extended by the same model.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sei.core.defaults import BOUNDARIES
from sei.core.errors import ImageTooSmallError, UnknownNameError
from sei.core.checks import check_image_batch
from sei.physics.base import SEILinearPhysics, SizeCache, compute_dtype
from sei.physics.kernels import load_kernel
from sei.physics.solvers import tikhonov_solve

__all__ = ["BOUNDARIES", "boundary_pad", "boundary_pad_adjoint", "centred_kernel", "FFTBlur", "laplacian_power",
           "transfer_function"]

def _pad_axis_adjoint(v: torch.Tensor, margin: int, mode: str, axis: int) -> torch.Tensor:
    """The adjoint of padding one axis of a tensor by ``margin`` at each end with ``mode``: ``v``'s centre, plus
    the added entries folded back onto those they copy."""
    if margin == 0:
        return v
    size = v.shape[axis] - 2 * margin
    centre = v.narrow(axis, margin, size).clone()
    before, after = v.narrow(axis, 0, margin), v.narrow(axis, margin + size, margin)
    if mode == "reflect":  # padded[i] = x[margin - i], padded[margin + size + j] = x[size - 2 - j]
        centre.narrow(axis, 1, margin).add_(before.flip(axis))
        centre.narrow(axis, size - 1 - margin, margin).add_(after.flip(axis))
    else:  # replicate: every added entry copies the edge
        centre.narrow(axis, 0, 1).add_(before.sum(axis, keepdim=True))
        centre.narrow(axis, size - 1, 1).add_(after.sum(axis, keepdim=True))
    return centre


def boundary_pad(x: torch.Tensor, margin: tuple[int, int], mode: str) -> torch.Tensor:
    """``x`` (``(..., H, W)``) extended by ``margin = (rows, columns)`` at each border, ``mode`` ``reflect`` or
    ``replicate`` (reflection needs ``H > rows`` and ``W > columns``)."""
    mh, mw = margin
    if mh == 0 and mw == 0:
        return x
    shape = x.shape
    flat = x.reshape(-1, 1, *shape[-2:])  # F.pad's non-constant modes want (N, C, H, W)
    return torch.nn.functional.pad(flat, (mw, mw, mh, mh), mode=mode).reshape(*shape[:-2], shape[-2] + 2 * mh,
                                                                             shape[-1] + 2 * mw)


def boundary_pad_adjoint(v: torch.Tensor, margin: tuple[int, int], mode: str) -> torch.Tensor:
    """The adjoint of :func:`boundary_pad`: ``(..., H + 2 rows, W + 2 columns) -> (..., H, W)``."""
    return _pad_axis_adjoint(_pad_axis_adjoint(v, margin[1], mode, -1), margin[0], mode, -2)


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
    """Blur ``y = k * x + e`` for ``(B, C, H, W)`` images of any size, every channel by the same kernel.

    :param kernel: a kernel name (``"Gaussian_R2"``), a kernel file, or a ``(kh, kw)`` tensor; normalised to sum 1.
    :param noise_model: deepinv noise model applied by ``forward`` (default: none).
    :param boundary: what lies beyond the image's borders (one of :data:`BOUNDARIES`): ``circular`` (the opposite
        border: the paper's model), ``reflect`` (the image mirrored about its edge pixels) or ``replicate`` (the
        edge pixels repeated).
    :raises ConfigError: for an unknown boundary model.

    >>> import torch
    >>> blur = FFTBlur("Box_R2")
    >>> x, y = torch.randn(2, 1, 1, 20, 24, dtype=torch.float64)
    >>> bool(torch.isclose((blur.A(x) * y).sum(), (x * blur.A_adjoint(y)).sum()))  # <A x, y> = <x, A^T y>
    True
    """

    upscale = 1

    def __init__(self, kernel: str | Path | torch.Tensor, noise_model=None, boundary: str = "circular",
                 **kwargs) -> None:
        super().__init__(noise_model=noise_model, **kwargs)
        if boundary not in BOUNDARIES:
            raise UnknownNameError("boundary model", boundary, BOUNDARIES)
        self.boundary = boundary
        self.register_buffer("kernel", load_kernel(kernel))
        self._transfer = SizeCache()

    @property
    def periodic(self) -> bool:
        """Whether the blur wraps around the image's borders (the circular model)."""
        return self.boundary == "circular"

    @property
    def margin(self) -> tuple[int, int]:
        """Rows/columns at each border of ``A x`` that depend on what lies beyond the image (the opposite border,
        or the boundary model's extension): there, the measurement of a crop differs from the crop of the whole
        image's measurement, so SURE on training crops leaves them out; also the boundary extension's width."""
        kh, kw = self.kernel.shape
        return ((kh - 1) // 2, (kw - 1) // 2)

    def extra_repr(self) -> str:
        boundary = "" if self.periodic else f", boundary={self.boundary!r}"
        return f"kernel_size={tuple(self.kernel.shape)}{boundary}"

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

    def _extended(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` extended beyond its borders by the boundary model (checked: reflection needs a larger image)."""
        check_image_batch(x)
        mh, mw = self.margin
        height, width = x.shape[-2:]
        if self.boundary == "reflect" and (height <= mh or width <= mw):
            raise ImageTooSmallError(f"a {height}x{width} image cannot be reflected about its borders by the "
                                     f"{tuple(self.kernel.shape)} kernel's radius; images must be larger than {mh}x{mw}")
        return boundary_pad(x.to(compute_dtype(x)), self.margin, self.boundary)

    def _centre(self, x: torch.Tensor) -> torch.Tensor:
        mh, mw = self.margin
        return x[..., mh : x.shape[-2] - mh, mw : x.shape[-1] - mw]

    def A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        if not self.periodic:
            return self._centre(self._filter(self._extended(x), lambda k: k))
        return self._filter(x, lambda k: k)

    def A_adjoint(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        if not self.periodic:
            check_image_batch(y)
            mh, mw = self.margin
            padded = torch.nn.functional.pad(y.to(compute_dtype(y)), (mw, mw, mh, mh))  # the crop's adjoint
            return boundary_pad_adjoint(self._filter(padded, torch.conj), self.margin, self.boundary)
        return self._filter(y, torch.conj)

    def A_adjoint_A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        if not self.periodic:
            return self.A_adjoint(self.A(x))
        return self._filter(x, lambda k: k.abs() ** 2)

    def A_A_adjoint(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        if not self.periodic:
            return self.A(self.A_adjoint(y))
        return self._filter(y, lambda k: k.abs() ** 2)

    def A_dagger(self, y: torch.Tensor, rcond: float = 1e-6, tikhonov: float = 1e-4, **kwargs) -> torch.Tensor:
        """Pseudo-inverse. Circular model: exact, frequencies with ``|K| <= rcond * max|K|`` treated as zeros of
        ``K``. Other boundaries: the Tikhonov-regularised least-squares solution ``(A^T A + tikhonov I)^-1 A^T y``
        by conjugate gradients, which inverts ``A`` where its singular values exceed ``sqrt(tikhonov)`` and damps
        the rest (an exact pseudo-inverse of a Gaussian blur would need condition numbers beyond 1e9)."""
        if not self.periodic:
            check_image_batch(y)
            y = y.to(compute_dtype(y))
            return tikhonov_solve(torch.zeros_like(y), y, 1.0 / tikhonov, self.A, self.A_adjoint)

        def inverse(k: torch.Tensor) -> torch.Tensor:
            magnitude = k.abs()
            keep = magnitude > rcond * magnitude.max()
            return torch.where(keep, 1.0 / torch.where(keep, k, torch.ones_like(k)), torch.zeros_like(k))

        return self._filter(y, inverse)

    def prox_l2(self, z: torch.Tensor, y: torch.Tensor, gamma: float, **kwargs) -> torch.Tensor:
        """Exact ``argmin_x gamma/2 ||A x - y||^2 + 1/2 ||x - z||^2``: in closed form for the circular model, by
        conjugate gradients to the dtype's accuracy otherwise (:func:`sei.physics.solvers.tikhonov_solve`)."""
        check_image_batch(z, "z")
        check_image_batch(y, "y")
        dtype = compute_dtype(y)
        if not self.periodic:
            return tikhonov_solve(z.to(dtype), y.to(dtype), gamma, self.A, self.A_adjoint)
        height, width = y.shape[-2:]
        k = self.transfer(height, width, dtype, y.device)
        numerator = torch.fft.rfft2(z.to(dtype)) + gamma * torch.conj(k) * torch.fft.rfft2(y.to(dtype))
        return torch.fft.irfft2(numerator / (1.0 + gamma * k.abs() ** 2), s=(height, width))

    def wiener(self, y: torch.Tensor, reg: float | torch.Tensor) -> torch.Tensor:
        """Wiener-regularised inverse ``F^-1(conj(K) F y / (|K|^2 + reg))``.

        :param reg: the noise-to-signal power ratio: a positive number (flat signal spectrum), or a per-frequency
            tensor broadcastable to ``(H, W // 2 + 1)`` (e.g. ``lam * laplacian_power(H, W)``), positive wherever
            ``K`` vanishes. For white noise of variance ``sigma^2`` and signal power spectrum ``P``,
            ``reg = sigma^2 / P`` is the minimum-mean-squared-error choice. A callable ``reg(H, W)`` is evaluated
            on the size the filter runs at.

        With a non-circular boundary, ``y`` is first extended by the same model (twice the kernel's radius, so that
        the wrap-around of the circular inverse falls outside the image), filtered and cropped back.
        """
        if callable(reg):
            reg_of = reg
        else:
            if not isinstance(reg, torch.Tensor) and reg <= 0:
                raise ValueError(f"Wiener regularisation must be > 0, got {reg}")
            reg_of = lambda height, width: reg  # noqa: E731
        if not self.periodic:
            margin = (2 * self.margin[0], 2 * self.margin[1])
            extended = boundary_pad(y.to(compute_dtype(y)), margin, self.boundary)
            inverse = self._wiener_circular(extended, reg_of)
            return inverse[..., margin[0] : inverse.shape[-2] - margin[0], margin[1] : inverse.shape[-1] - margin[1]]
        return self._wiener_circular(y, reg_of)

    def _wiener_circular(self, y: torch.Tensor, reg_of) -> torch.Tensor:
        reg = reg_of(*y.shape[-2:])
        if isinstance(reg, torch.Tensor):
            reg = reg.to(device=y.device, dtype=compute_dtype(y))
        return self._filter(y, lambda k: torch.conj(k) / (k.abs() ** 2 + reg))
