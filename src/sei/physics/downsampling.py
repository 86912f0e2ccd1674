"""Super-resolution operator: antialiased bicubic down-sampling by an integer factor.

The forward operator is exactly ``torch.nn.functional.interpolate(x, scale_factor=1/r, mode="bicubic",
antialias=True)``, as in the paper. That operation is separable: ``A x = M_H x M_W^T`` with one
``(n // r, n)`` matrix per axis. We build those matrices by applying the very same ``interpolate`` to an
identity, which makes the adjoint ``A^T y = M_H^T y M_W`` exact, and gives the pseudo-inverse
(``M^+`` per axis) and the proximal operator of ``||A x - y||^2`` (an eigendecomposition of ``M^T M`` per
axis) in closed form. Matrices are cached per (size, dtype, device).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sei.core.errors import ConfigError, ImageTooSmallError, ShapeError
from sei.core.checks import check_image_batch
from sei.physics.base import SEILinearPhysics, SizeCache, compute_dtype

__all__ = ["bicubic_downsample", "BicubicDownsampling", "downsampling_matrix"]


def bicubic_downsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Antialiased bicubic down-sampling of ``(B, C, H, W)`` by ``factor``: output ``(B, C, H // factor, W // factor)``."""
    return F.interpolate(x, scale_factor=1.0 / factor, mode="bicubic", antialias=True, align_corners=False)


def downsampling_matrix(size: int, factor: int, dtype: torch.dtype = torch.float64,
                        device: torch.device | str = "cpu") -> torch.Tensor:
    """The ``(size // factor, size)`` matrix ``M`` with ``bicubic_downsample`` acting as ``M`` along one axis.

    Built by down-sampling the columns of an identity with the same ``interpolate`` call; the identity is laid
    out two pixels wide because PyTorch takes a different code path for inputs one pixel wide.
    """
    identity = torch.eye(size, dtype=torch.float64, device=device).reshape(size, 1, size, 1).expand(size, 1, size, 2)
    columns = F.interpolate(identity, scale_factor=(1.0 / factor, 1.0), mode="bicubic", antialias=True,
                            align_corners=False)[..., 0]
    return columns.reshape(size, size // factor).T.contiguous().to(dtype)


class BicubicDownsampling(SEILinearPhysics):
    """``y = D_r x + e``: antialiased bicubic down-sampling by ``factor`` of ``(B, C, H, W)`` images of any size.

    Measurements are ``(B, C, H // r, W // r)``. The adjoint and the pseudo-inverse need the image size;
    by default it is ``r`` times the measurement size; pass ``img_size=(H, W)`` to a call, or set the
    operator's ``img_size`` attribute, otherwise.

    :param factor: integer down-sampling factor r >= 2 (the paper uses 2, 3 and 4).
    :param noise_model: deepinv noise model applied by ``forward`` (default: none).

    >>> import torch
    >>> BicubicDownsampling(2).A(torch.rand(1, 3, 17, 24)).shape  # sizes need not be multiples of the factor
    torch.Size([1, 3, 8, 12])
    """

    def __init__(self, factor: int, noise_model=None, **kwargs) -> None:
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
            raise ConfigError(f"super-resolution factor must be an integer >= 2, got {factor!r}")
        super().__init__(noise_model=noise_model, **kwargs)
        self.factor = factor
        self.upscale = factor
        self._matrices = SizeCache(capacity=32)

    def extra_repr(self) -> str:
        return f"factor={self.factor}"

    # -- cached per-axis matrices -------------------------------------------------------------------------
    def _cached(self, what: str, size: int, dtype: torch.dtype, device: torch.device):
        key = (what, size, dtype, torch.device(device))
        return self._matrices.get(key, lambda: self._compute(what, size, dtype, device))

    def _compute(self, what: str, size: int, dtype: torch.dtype, device: torch.device):
        matrix = downsampling_matrix(size, self.factor, torch.float64, device)
        if what == "matrix":
            result = matrix
        elif what == "pinv":
            result = torch.linalg.pinv(matrix)
        elif what == "gram_eigh":  # M^T M = Q diag(lambda) Q^T
            eigenvalues, eigenvectors = torch.linalg.eigh(matrix.T @ matrix)
            return eigenvalues.clamp_min(0).to(dtype), eigenvectors.to(dtype)
        else:  # pragma: no cover - internal names only
            raise KeyError(what)
        return result.to(dtype)

    def _image_size(self, y: torch.Tensor, img_size) -> tuple[int, int]:
        if img_size is None:
            img_size = self.img_size  # deepinv's attribute, set it for sizes that are not multiples of r
        if img_size is None:
            return (y.shape[-2] * self.factor, y.shape[-1] * self.factor)
        height, width = (int(s) for s in tuple(img_size)[-2:])
        if height // self.factor != y.shape[-2] or width // self.factor != y.shape[-1]:
            raise ShapeError(
                f"image size {height}x{width} does not down-sample by {self.factor} to the measurement size "
                f"{y.shape[-2]}x{y.shape[-1]}"
            )
        return height, width

    def _separable(self, x: torch.Tensor, left: torch.Tensor, right_t: torch.Tensor) -> torch.Tensor:
        """``left @ x @ right_t`` over the last two axes."""
        return torch.matmul(torch.matmul(left, x), right_t)

    # -- LinearPhysics interface --------------------------------------------------------------------------
    def A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        check_image_batch(x)
        if x.shape[-2] < self.factor or x.shape[-1] < self.factor:
            raise ImageTooSmallError(
                f"image of size {x.shape[-2]}x{x.shape[-1]} is smaller than the down-sampling factor {self.factor}"
            )
        return bicubic_downsample(x.to(compute_dtype(x)), self.factor)

    def _axis_matrices(self, y: torch.Tensor, img_size, what: str):
        """``y`` in the compute dtype and the cached ``what`` matrices for the image's height and width."""
        check_image_batch(y, "y")
        dtype = compute_dtype(y)
        height, width = self._image_size(y, img_size)
        return y.to(dtype), self._cached(what, height, dtype, y.device), self._cached(what, width, dtype, y.device)

    def A_adjoint(self, y: torch.Tensor, img_size=None, **kwargs) -> torch.Tensor:
        y, m_h, m_w = self._axis_matrices(y, img_size, "matrix")
        return self._separable(y, m_h.T, m_w)

    def A_A_adjoint(self, y: torch.Tensor, img_size=None, **kwargs) -> torch.Tensor:
        return self.A(self.A_adjoint(y, img_size=img_size))

    def A_dagger(self, y: torch.Tensor, img_size=None, **kwargs) -> torch.Tensor:
        """Exact pseudo-inverse ``(M_H^+) y (M_W^+)^T`` (the pseudo-inverse of a Kronecker product factorises)."""
        y, p_h, p_w = self._axis_matrices(y, img_size, "pinv")
        return self._separable(y, p_h, p_w.T)

    def prox_l2(self, z: torch.Tensor, y: torch.Tensor, gamma: float, **kwargs) -> torch.Tensor:
        """Exact ``argmin_x gamma/2 ||A x - y||^2 + 1/2 ||x - z||^2`` for ``z`` of the image size.

        ``A^T A`` is the Kronecker product of ``M_H^T M_H`` and ``M_W^T M_W``, so
        ``(I + gamma A^T A)^-1`` is diagonal in the tensor basis of their eigenvectors.
        """
        check_image_batch(z, "z")
        check_image_batch(y, "y")
        dtype = compute_dtype(y)
        height, width = self._image_size(y, z.shape[-2:])
        lam_h, q_h = self._cached("gram_eigh", height, dtype, y.device)
        lam_w, q_w = self._cached("gram_eigh", width, dtype, y.device)
        rhs = z.to(dtype) + gamma * self.A_adjoint(y, img_size=(height, width))
        coefficients = self._separable(rhs, q_h.T, q_w)
        coefficients = coefficients / (1.0 + gamma * lam_h[:, None] * lam_w[None, :])
        return self._separable(coefficients, q_h, q_w.T)

    def wiener(self, y: torch.Tensor, reg: float, img_size=None) -> torch.Tensor:
        """Regularised inverse ``(A^T A + reg I)^-1 A^T y``, ``reg > 0``."""
        if reg <= 0:
            raise ValueError(f"Wiener regularisation must be > 0, got {reg}")
        height, width = self._image_size(y, img_size)
        zeros = y.new_zeros(*y.shape[:-2], height, width)
        return self.prox_l2(zeros, y, 1.0 / reg)
