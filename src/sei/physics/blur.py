"""Convolution computed with the FFT, for images and volumes of any size, with a circular or a non-wrapping boundary.

deepinv's ``BlurFFT`` fixes the image size at construction; SEI needs one operator for 48x48 training
crops, full validation images and whatever size a user brings, so the transfer function is computed per
(size, dtype, device) and cached on the operator.

With ``K`` the transfer function (the DFT of the kernel zero-padded to the image size and centred at the origin;
2-D for a ``(kh, kw)`` kernel and ``(B, C, H, W)`` images, 3-D for a ``(kd, kh, kw)`` PSF and ``(B, C, D, H, W)``
volumes), the operator and its relatives are diagonal in the Fourier domain:

- ``A x = F^-1(K F x)``, ``A^T y = F^-1(conj(K) F y)``;
- pseudo-inverse ``A^+ y = F^-1(conj(K) / |K|^2 F y)`` where ``|K| > rcond * max|K|``, 0 elsewhere;
- ``prox_l2(z, y, gamma) = F^-1((F z + gamma conj(K) F y) / (1 + gamma |K|^2))``;
- Wiener-regularised inverse ``F^-1(conj(K) F y / (|K|^2 + reg))``.

A real field of view does not wrap around: near its borders a measurement sees the scene beyond the image, which
the circular model replaces by the opposite border. The ``reflect`` and ``replicate`` boundary models extend the
image by ``m`` pixels (the kernel's radius along each axis) as ``F.pad`` does, blur that circularly and keep the centre:
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
from sei.physics.kernels import VOLUME_DIMS, load_kernel
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


def boundary_pad(x: torch.Tensor, margin: tuple[int, ...], mode: str) -> torch.Tensor:
    """``x`` (``(..., H, W)``, or ``(..., D, H, W)`` with three margins) extended by ``margin`` (one per trailing
    axis: ``(rows, columns)`` or ``(planes, rows, columns)``) at each border, ``mode`` ``reflect`` or ``replicate``
    (reflection needs each size larger than its margin)."""
    if not any(margin):
        return x
    dims = len(margin)
    shape = x.shape
    flat = x.reshape(-1, 1, *shape[-dims:])  # F.pad's non-constant modes want (N, C, *spatial)
    pads = [amount for m in reversed(margin) for amount in (m, m)]
    padded = torch.nn.functional.pad(flat, pads, mode=mode)
    return padded.reshape(*shape[:-dims], *padded.shape[-dims:])


def boundary_pad_adjoint(v: torch.Tensor, margin: tuple[int, ...], mode: str) -> torch.Tensor:
    """The adjoint of :func:`boundary_pad`: ``(..., H + 2 rows, W + 2 columns) -> (..., H, W)`` (and likewise over
    three axes)."""
    for axis, m in zip(range(-1, -len(margin) - 1, -1), reversed(margin)):
        v = _pad_axis_adjoint(v, m, mode, axis)
    return v


def centred_kernel(kernel: torch.Tensor, *size: int) -> torch.Tensor:
    """``kernel`` zero-padded to ``size`` (one size per kernel axis) with its centre moved to index 0.

    :param kernel: ``(kh, kw)`` or ``(kd, kh, kw)`` tensor, no larger than ``size`` along any axis.
    :raises ImageTooSmallError: if the image is smaller than the kernel.
    """
    if len(size) != kernel.ndim:
        raise ValueError(f"a {kernel.ndim}-D kernel needs {kernel.ndim} sizes, got {size}")
    if any(k > n for k, n in zip(kernel.shape, size)):
        kernel_text, size_text = "x".join(map(str, kernel.shape)), "x".join(map(str, size))
        what = "image" if kernel.ndim == 2 else "volume"
        raise ImageTooSmallError(f"{what} of size {size_text} is smaller than the {kernel_text} blur kernel; "
                                 f"{what}s must be at least {kernel_text}")
    padded = kernel.new_zeros(size)
    padded[tuple(slice(0, k) for k in kernel.shape)] = kernel
    return torch.roll(padded, shifts=tuple(-(k // 2) for k in kernel.shape), dims=tuple(range(kernel.ndim)))


def transfer_function(kernel: torch.Tensor, *size: int) -> torch.Tensor:
    """Real-input DFT of ``kernel`` zero-padded to ``size`` with its centre moved to index 0.

    :return: complex tensor of shape ``(*size[:-1], size[-1] // 2 + 1)``.
    """
    return torch.fft.rfftn(centred_kernel(kernel, *size))


def laplacian_power(*size: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``|L(f)|^2`` of the discrete Laplacian (5-point in 2-D, 7-point in 3-D) on a grid of ``size``, shaped like
    :func:`transfer_function`'s output: ``(height, width // 2 + 1)`` in 2-D.

    Used as a per-frequency Wiener regularisation: it penalises high frequencies like the ``1/|f|^2`` power
    spectrum of natural images suggests.
    """
    total = torch.zeros((), dtype=dtype)
    for axis, n in enumerate(size):
        frequencies = torch.fft.rfftfreq(n, dtype=dtype) if axis == len(size) - 1 else torch.fft.fftfreq(n, dtype=dtype)
        shape = [1] * len(size)
        shape[axis] = -1
        total = total + (2 - 2 * torch.cos(2 * torch.pi * frequencies)).view(shape)
    return total**2


class FFTBlur(SEILinearPhysics):
    """Blur ``y = k * x + e`` for ``(B, C, H, W)`` images of any size, every channel by the same kernel; or, with a
    3-D PSF, for ``(B, C, D, H, W)`` volumes.

    :param kernel: a kernel name (``"Gaussian_R2"``), a kernel file, or a ``(kh, kw)`` or ``(kd, kh, kw)`` tensor;
        normalised to sum 1.
    :param noise_model: deepinv noise model applied by ``forward`` (default: none).
    :param boundary: what lies beyond the image's borders (one of :data:`BOUNDARIES`): ``circular`` (the opposite
        border: the paper's model), ``reflect`` (the image mirrored about its edge pixels) or ``replicate`` (the
        edge pixels repeated).
    :raises ConfigError: for an unknown boundary model.
    :raises ShapeError: when called on data of the other dimensionality (a volume with a 2-D kernel, or an image
        with a 3-D PSF).

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
        self.register_buffer("kernel", load_kernel(kernel, dims=VOLUME_DIMS))
        self._transfer = SizeCache()

    @property
    def periodic(self) -> bool:
        """Whether the blur wraps around the image's borders (the circular model)."""
        return self.boundary == "circular"

    @property
    def spatial_dims(self) -> int:
        """2 for images, 3 for volumes (the kernel's dimensionality)."""
        return self.kernel.ndim

    @property
    def margin(self) -> tuple[int, ...]:
        """Rows/columns (and planes, first, for a 3-D PSF) at each border of ``A x`` that depend on what lies beyond
        the image (the opposite border, or the boundary model's extension): there, the measurement of a crop differs
        from the crop of the whole image's measurement, so SURE on training crops leaves them out; also the
        boundary extension's width."""
        return tuple((size - 1) // 2 for size in self.kernel.shape)

    def extra_repr(self) -> str:
        boundary = "" if self.periodic else f", boundary={self.boundary!r}"
        return f"kernel_size={tuple(self.kernel.shape)}{boundary}"

    def transfer(self, size: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """Cached transfer function for data of spatial ``size``, complex ``(*size[:-1], size[-1] // 2 + 1)``."""
        key = (tuple(size), dtype, torch.device(device))

        def compute() -> torch.Tensor:
            # Built in float64 so that float32 operators are accurate to float32 rounding.
            transfer = transfer_function(self.kernel.to(device=device, dtype=torch.float64), *size)
            return transfer.to(torch.complex128 if dtype == torch.float64 else torch.complex64)

        return self._transfer.get(key, compute)

    def _check(self, x: torch.Tensor, name: str = "x") -> None:
        check_image_batch(x, name, self.spatial_dims)

    def _axes(self) -> tuple[int, ...]:
        return tuple(range(-self.spatial_dims, 0))

    def _filter(self, x: torch.Tensor, multiplier) -> torch.Tensor:
        """``F^-1(multiplier(K) F x)`` over the spatial axes, computed in float32 or float64."""
        self._check(x)
        dtype = compute_dtype(x)
        size = tuple(x.shape[-self.spatial_dims:])
        transfer = self.transfer(size, dtype, x.device)
        spectrum = torch.fft.rfftn(x.to(dtype), dim=self._axes())
        return torch.fft.irfftn(spectrum * multiplier(transfer), s=size, dim=self._axes())

    def _extended(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` extended beyond its borders by the boundary model (checked: reflection needs a larger image)."""
        self._check(x)
        size = tuple(x.shape[-self.spatial_dims:])
        if self.boundary == "reflect" and any(n <= m for n, m in zip(size, self.margin)):
            size_text, margin_text = "x".join(map(str, size)), "x".join(map(str, self.margin))
            raise ImageTooSmallError(f"a {size_text} image cannot be reflected about its borders by the "
                                     f"{tuple(self.kernel.shape)} kernel's radius; images must be larger than "
                                     f"{margin_text}")
        return boundary_pad(x.to(compute_dtype(x)), self.margin, self.boundary)

    def _centre(self, x: torch.Tensor, margin: tuple[int, ...] | None = None) -> torch.Tensor:
        margin = self.margin if margin is None else margin
        return x[(..., *(slice(m, n - m) for m, n in zip(margin, x.shape[-len(margin):])))]

    def A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        if not self.periodic:
            return self._centre(self._filter(self._extended(x), lambda k: k))
        return self._filter(x, lambda k: k)

    def A_adjoint(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        if not self.periodic:
            self._check(y, "y")
            pads = [amount for m in reversed(self.margin) for amount in (m, m)]
            padded = torch.nn.functional.pad(y.to(compute_dtype(y)), pads)  # the crop's adjoint
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
            self._check(y, "y")
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
        self._check(z, "z")
        self._check(y, "y")
        dtype = compute_dtype(y)
        if not self.periodic:
            return tikhonov_solve(z.to(dtype), y.to(dtype), gamma, self.A, self.A_adjoint)
        size, axes = tuple(y.shape[-self.spatial_dims:]), self._axes()
        k = self.transfer(size, dtype, y.device)
        numerator = torch.fft.rfftn(z.to(dtype), dim=axes) + gamma * torch.conj(k) * torch.fft.rfftn(y.to(dtype), dim=axes)
        return torch.fft.irfftn(numerator / (1.0 + gamma * k.abs() ** 2), s=size, dim=axes)

    def wiener(self, y: torch.Tensor, reg: float | torch.Tensor) -> torch.Tensor:
        """Wiener-regularised inverse ``F^-1(conj(K) F y / (|K|^2 + reg))``.

        :param reg: the noise-to-signal power ratio: a positive number (flat signal spectrum), or a per-frequency
            tensor broadcastable to ``(H, W // 2 + 1)`` (e.g. ``lam * laplacian_power(H, W)``; ``(D, H, W // 2 + 1)``
            for volumes), positive wherever ``K`` vanishes. For white noise of variance ``sigma^2`` and signal power
            spectrum ``P``, ``reg = sigma^2 / P`` is the minimum-mean-squared-error choice. A callable
            ``reg(*size)`` is evaluated on the spatial size the filter runs at.

        With a non-circular boundary, ``y`` is first extended by the same model (twice the kernel's radius, so that
        the wrap-around of the circular inverse falls outside the image), filtered and cropped back.
        """
        if callable(reg):
            reg_of = reg
        else:
            if not isinstance(reg, torch.Tensor) and reg <= 0:
                raise ValueError(f"Wiener regularisation must be > 0, got {reg}")
            reg_of = lambda *size: reg  # noqa: E731
        if not self.periodic:
            margin = tuple(2 * m for m in self.margin)
            extended = boundary_pad(y.to(compute_dtype(y)), margin, self.boundary)
            return self._centre(self._wiener_circular(extended, reg_of), margin)
        return self._wiener_circular(y, reg_of)

    def _wiener_circular(self, y: torch.Tensor, reg_of) -> torch.Tensor:
        reg = reg_of(*y.shape[-self.spatial_dims:])
        if isinstance(reg, torch.Tensor):
            reg = reg.to(device=y.device, dtype=compute_dtype(y))
        return self._filter(y, lambda k: torch.conj(k) / (k.abs() ** 2 + reg))
