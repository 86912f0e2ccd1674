"""Random image transforms for equivariant losses: down-scaling (SEI, of images and of volumes), circular shifts and
rotations (EI).

Each transform is a pure function of the image and explicit per-image parameters, plus a ``random_*``
function that draws those parameters from a ``torch.Generator`` and a thin ``nn.Module`` wrapper. Every
image of a batch gets its own parameters.

deepinv ships ``Scale``, ``Shift`` and ``Rotate`` transforms, but its ``Scale`` builds a sampling grid that
is only right for square images and is not the identity at factor 1 (a sub-pixel shrink), and its
``Shift``/``Rotate`` draw one parameter for the whole batch; the paper's transforms are per image.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sei.core.defaults import VOLUME_SCALE_AXES
from sei.core.errors import ConfigError, ImageTooSmallError
from sei.core.checks import check_image_batch

__all__ = ["CUBIC_A", "DEFAULT_SCALE_FACTORS", "VOLUME_SCALE_AXES", "cubic_resampling", "draw_rotation_params",
           "draw_scale_params", "draw_shift_params", "draw_volume_scale_params", "random_rotate", "random_scale",
           "random_scale_volume", "random_shift", "RandomRotate", "RandomScale", "RandomShift", "rotate", "scale",
           "scale_volume", "shift"]

DEFAULT_SCALE_FACTORS = (0.75, 0.5)


def _uniform(generator: torch.Generator | None, shape: tuple[int, ...]) -> torch.Tensor:
    """Uniform [0, 1) draws on the CPU (or the generator's device), float64 for exactness of the grid."""
    device = generator.device if generator is not None else "cpu"
    return torch.rand(shape, generator=generator, device=device, dtype=torch.float64)


def _integers(generator: torch.Generator | None, high: int, shape: tuple[int, ...]) -> torch.Tensor:
    device = generator.device if generator is not None else "cpu"
    return torch.randint(0, high, shape, generator=generator, device=device)


# -- down-scaling -----------------------------------------------------------------------------------------
def scale(x: torch.Tensor, factors: torch.Tensor, centers: torch.Tensor, mode: str = "bicubic",
          padding_mode: str = "reflection") -> torch.Tensor:
    """Rescale each image about a centre, keeping its size.

    Output pixel ``p`` (in pixel coordinates) takes the input's value at ``c + (p - c) / s``: for ``s < 1``
    the content shrinks towards ``c`` and the border is filled by reflection. ``s = 1`` is the identity.

    :param x: ``(B, C, H, W)`` images, H and W at least 2.
    :param factors: ``(B,)`` scale factors ``s > 0``.
    :param centers: ``(B, 2)`` centres ``(row, column)`` in pixels.
    :param mode: ``grid_sample`` interpolation (``"bicubic"`` in the paper).
    :param padding_mode: ``grid_sample`` padding (``"reflection"`` in the paper).
    :return: ``(B, C, H, W)`` tensor.

    >>> x = torch.rand(2, 3, 24, 30, dtype=torch.float64)
    >>> torch.allclose(scale(x, torch.ones(2), torch.tensor([[5.0, 7.0], [12.0, 3.0]])), x)  # factor 1: identity
    True
    >>> scale(x, torch.tensor([0.5, 0.75]), torch.tensor([[5.0, 7.0], [12.0, 3.0]])).shape  # the size is kept
    torch.Size([2, 3, 24, 30])
    """
    check_image_batch(x)
    batch, _, height, width = x.shape
    if height < 2 or width < 2:
        raise ImageTooSmallError(f"scaling needs images of at least 2x2 pixels, got {height}x{width}")
    factors = torch.as_tensor(factors, dtype=torch.float64).reshape(-1)
    centers = torch.as_tensor(centers, dtype=torch.float64).reshape(-1, 2)
    if factors.shape[0] != batch or centers.shape[0] != batch:
        raise ConfigError(f"need one factor and one centre per image ({batch}), got {factors.shape[0]} and {centers.shape[0]}")
    if (factors <= 0).any():
        raise ConfigError(f"scale factors must be > 0, got {factors.tolist()}")
    rows = torch.arange(height, dtype=torch.float64)
    cols = torch.arange(width, dtype=torch.float64)
    inv = (1.0 / factors).view(batch, 1)
    source_rows = centers[:, :1] + (rows.view(1, -1) - centers[:, :1]) * inv  # (B, H)
    source_cols = centers[:, 1:] + (cols.view(1, -1) - centers[:, 1:]) * inv  # (B, W)
    # align_corners=True: normalised -1 and 1 are the centres of the first and last pixels.
    grid_y = 2.0 * source_rows / (height - 1) - 1.0
    grid_x = 2.0 * source_cols / (width - 1) - 1.0
    grid = torch.stack(torch.broadcast_tensors(grid_x[:, None, :], grid_y[:, :, None]), dim=-1)
    grid = grid.to(device=x.device, dtype=x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32)
    return F.grid_sample(x.to(grid.dtype), grid, mode=mode, padding_mode=padding_mode, align_corners=True).to(x.dtype)


def draw_scale_params(batch: int, height: int, width: int, generator: torch.Generator | None = None,
                      factors: Sequence[float] = DEFAULT_SCALE_FACTORS) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, a factor drawn uniformly from ``factors`` and a centre drawn uniformly in the image.

    :return: ``(factors (B,), centres (B, 2))``, centres as ``(row, column)`` in pixels.
    """
    choices = torch.as_tensor(tuple(factors), dtype=torch.float64)
    drawn = choices[_integers(generator, len(choices), (batch,)).cpu()]
    centers = _uniform(generator, (batch, 2)).cpu() * torch.tensor([height - 1, width - 1], dtype=torch.float64)
    return drawn, centers


def random_scale(x: torch.Tensor, generator: torch.Generator | None = None,
                 factors: Sequence[float] = DEFAULT_SCALE_FACTORS, **kwargs) -> torch.Tensor:
    """The paper's random down-scaling: :func:`scale` with parameters from :func:`draw_scale_params`."""
    check_image_batch(x)
    batch, _, height, width = x.shape
    return scale(x, *draw_scale_params(batch, height, width, generator, factors), **kwargs)


# -- down-scaling of volumes ------------------------------------------------------------------------------
def _axis_factors(factors: torch.Tensor, axes: str, batch: int) -> torch.Tensor:
    """Per-volume factors of ``axes`` as ``(B, 3)`` factors along (z, y, x)."""
    if axes == "independent":
        if factors.shape != (batch, 2):
            raise ConfigError(f"independent scaling needs (axial, lateral) factors per volume, a ({batch}, 2) "
                              f"tensor, got shape {tuple(factors.shape)}")
        return torch.stack([factors[:, 0], factors[:, 1], factors[:, 1]], dim=1)
    factors = factors.reshape(-1)
    if factors.shape[0] != batch:
        raise ConfigError(f"need one factor per volume ({batch}), got {factors.shape[0]}")
    kept = torch.ones_like(factors)
    axial = kept if axes == "lateral" else factors
    lateral = kept if axes == "axial" else factors
    return torch.stack([axial, lateral, lateral], dim=1)


CUBIC_A = -0.75  # the cubic convolution kernel's parameter in grid_sample's bicubic mode (Keys' kernel)


def cubic_resampling(size: int, inverse: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Matrices of cubic-convolution interpolation along one axis of ``size`` samples: row ``p`` of matrix ``b`` reads
    the axis at ``c_b + (p - c_b) * inverse_b``, by the kernel of :data:`CUBIC_A` on the four nearest samples,
    the axis extended by reflection about its first and last samples (``grid_sample``'s ``reflection`` with
    ``align_corners=True``).

    :param size: samples along the axis, at least 2.
    :param inverse: ``(B,)`` inverse scale factors ``1 / s``.
    :param centers: ``(B,)`` centres in samples.
    :return: ``(B, size, size)`` float64; a factor of 1 gives the identity.

    >>> m = cubic_resampling(5, torch.tensor([1.0, 2.0]), torch.tensor([2.0, 0.0]))
    >>> torch.allclose(m[0], torch.eye(5, dtype=torch.float64)), m[1].sum(dim=1).tolist()  # rows sum to 1
    (True, [1.0, 1.0, 1.0, 1.0, 1.0])
    """
    inverse, centers = inverse.to(torch.float64).view(-1, 1), centers.to(torch.float64).view(-1, 1)
    source = centers + (torch.arange(size, dtype=torch.float64) - centers) * inverse  # (B, size)
    first = source.floor()
    t = source - first
    a = CUBIC_A
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    u = 1 - t
    next_ = ((a + 2) * u - (a + 3)) * u * u + 1
    previous = ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a
    weights = torch.stack([previous, near, next_, 1 - previous - near - next_], dim=-1)  # (B, size, 4)
    taps = first.long()[..., None] + torch.arange(-1, 3)  # (B, size, 4)
    period = 2 * (size - 1)
    taps = taps.remainder(period)
    taps = torch.where(taps > size - 1, period - taps, taps)
    matrices = torch.zeros(*source.shape, size, dtype=torch.float64)
    return matrices.scatter_add_(-1, taps, weights)


def scale_volume(x: torch.Tensor, factors: torch.Tensor, centers: torch.Tensor, axes: str = VOLUME_SCALE_AXES[0],
                 padding_mode: str = "reflection") -> torch.Tensor:
    """Rescale each volume about a centre, keeping its size: :func:`scale` in 3-D.

    Every axis is interpolated by the paper's bicubic kernel (:func:`cubic_resampling`, separable; linear
    interpolation would blur the shrunk copy, the equivariance term's target: on the benchmark phantom's planes it
    keeps about three quarters of the bicubic copy's gradient energy). ``axes="lateral"`` shrinks every plane (the
    paper's :func:`scale` on each, z untouched), ``"all"`` the three axes by one factor, ``"axial"`` z only, and
    ``"independent"`` z by one factor and the planes by another (``factors`` then ``(B, 2)``: axial, lateral).

    Why ``axial`` and ``independent`` exist: a widefield PSF passes no frequency inside a cone around the optical
    axis (the missing cone), and shrinking every axis alike maps the cone onto itself (``k -> k / s`` moves along
    rays from the origin), whereas shrinking z alone moves frequencies just outside it, which the measurement holds,
    into it (``k_z -> k_z / s``). On the volumes benchmark's phantom neither filled the cone better than ``"all"``
    in 20 minutes (``independent`` level with it, ``axial`` alone ran away): ``"all"`` stays the default.

    :param x: ``(B, C, D, H, W)`` volumes, each axis at least 2.
    :param factors: ``(B,)`` scale factors ``s > 0`` (``(B, 2)`` for ``"independent"``).
    :param centers: ``(B, 3)`` centres ``(plane, row, column)`` in voxels (the plane is ignored laterally).
    :param axes: one of :data:`VOLUME_SCALE_AXES`.
    :param padding_mode: ``"reflection"``, the only one for volumes.
    :return: ``(B, C, D, H, W)`` tensor.

    >>> x = torch.rand(2, 1, 6, 12, 10, dtype=torch.float64)
    >>> centres = torch.tensor([[2.0, 5.0, 4.0], [3.0, 1.0, 8.0]])
    >>> all(torch.allclose(scale_volume(x, torch.ones(2, 2 if a == "independent" else 1).squeeze(1), centres, a), x)
    ...     for a in VOLUME_SCALE_AXES)
    True
    >>> flat = torch.rand(1, 1, 1, 12, 10, dtype=torch.float64).expand(1, 1, 6, 12, 10)  # one plane six times
    >>> torch.allclose(scale_volume(flat, torch.tensor([0.5]), centres[:1], "axial"), flat)  # z only: planes kept
    True
    """
    check_image_batch(x, spatial_dims=3)
    if axes not in VOLUME_SCALE_AXES:
        raise ConfigError(f"volume scale axes must be one of {VOLUME_SCALE_AXES}, got {axes!r}")
    batch, _, depth, height, width = x.shape
    if min(depth, height, width) < 2:
        raise ImageTooSmallError(f"scaling needs volumes of at least 2x2x2 voxels, got {depth}x{height}x{width}")
    factors = torch.as_tensor(factors, dtype=torch.float64)
    centers = torch.as_tensor(centers, dtype=torch.float64).reshape(-1, 3)
    if padding_mode != "reflection":
        raise ConfigError(f"volumes are scaled with reflecting borders only, got padding_mode={padding_mode!r}")
    if centers.shape[0] != batch:
        raise ConfigError(f"need one centre per volume ({batch}), got {centers.shape[0]}")
    if (factors <= 0).any():
        raise ConfigError(f"scale factors must be > 0, got {factors.tolist()}")
    inverse = 1.0 / _axis_factors(factors, axes, batch)  # (B, 3)
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    out = x.to(dtype)
    # separable: each axis by its own matrix, in the input's precision whatever autocast says (a bf16 target
    # would be rounded to 8 bits); an axis no volume shrinks is left alone
    with torch.autocast(x.device.type, enabled=False):
        for axis, (size, equation) in enumerate(zip((depth, height, width), _AXIS_PRODUCTS)):
            if bool((inverse[:, axis] == 1).all()):
                continue
            matrices = cubic_resampling(size, inverse[:, axis], centers[:, axis]).to(device=x.device, dtype=dtype)
            out = torch.einsum(equation, matrices, out)
    return out.to(x.dtype)


_AXIS_PRODUCTS = ("bzd,bcdhw->bczhw", "byh,bcdhw->bcdyw", "bxw,bcdhw->bcdhx")  # resample z, y or x


def draw_volume_scale_params(batch: int, shape: Sequence[int], generator: torch.Generator | None = None,
                             factors: Sequence[float] = DEFAULT_SCALE_FACTORS,
                             axes: str = VOLUME_SCALE_AXES[0]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per volume, a factor drawn uniformly from ``factors`` and a centre drawn uniformly in the volume of
    ``shape`` ``(D, H, W)``: ``(factors (B,), centres (B, 3))``.

    For ``axes="independent"`` the factors are ``(B, 2)`` (axial, lateral): a pair drawn uniformly from
    ``{1, *factors}^2`` less ``(1, 1)``, so a volume is shrunk along z only, in its planes only, or both (by the same
    or different factors)."""
    choices = torch.as_tensor(tuple(factors), dtype=torch.float64)
    if axes == "independent":
        choices = torch.cat([torch.ones(1, dtype=torch.float64), choices])
        pairs = torch.cartesian_prod(choices, choices)[1:]  # (1, 1) first: left out
        drawn = pairs[_integers(generator, len(pairs), (batch,)).cpu()]
    else:
        drawn = choices[_integers(generator, len(choices), (batch,)).cpu()]
    extent = torch.tensor([n - 1 for n in shape], dtype=torch.float64)
    return drawn, _uniform(generator, (batch, 3)).cpu() * extent


def random_scale_volume(x: torch.Tensor, generator: torch.Generator | None = None,
                        factors: Sequence[float] = DEFAULT_SCALE_FACTORS, axes: str = VOLUME_SCALE_AXES[0],
                        padding_mode: str = "reflection") -> torch.Tensor:
    """SEI's random down-scaling of volumes: :func:`scale_volume` with :func:`draw_volume_scale_params`."""
    drawn = draw_volume_scale_params(x.shape[0], x.shape[-3:], generator, factors, axes)
    return scale_volume(x, *drawn, axes=axes, padding_mode=padding_mode)


# -- circular shifts --------------------------------------------------------------------------------------
def shift(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Circularly shift each image by an integer number of pixels.

    :param x: ``(B, C, H, W)`` images.
    :param shifts: ``(B, 2)`` integer shifts ``(rows, columns)``; output[i, j] = input[i - dy, j - dx].
    """
    check_image_batch(x)
    batch, _, height, width = x.shape
    shifts = torch.as_tensor(shifts, dtype=torch.long).reshape(-1, 2).to(x.device)
    if shifts.shape[0] != batch:
        raise ConfigError(f"need one shift per image ({batch}), got {shifts.shape[0]}")
    rows = (torch.arange(height, device=x.device).view(1, -1) - shifts[:, :1]) % height  # (B, H)
    cols = (torch.arange(width, device=x.device).view(1, -1) - shifts[:, 1:]) % width  # (B, W)
    gathered = torch.gather(x, 2, rows.view(batch, 1, height, 1).expand(-1, x.shape[1], -1, width))
    return torch.gather(gathered, 3, cols.view(batch, 1, 1, width).expand(-1, x.shape[1], height, -1))


def draw_shift_params(batch: int, height: int, width: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per image, integer shifts drawn uniformly in ``[0, H) x [0, W)``: ``(B, 2)``."""
    return torch.stack([_integers(generator, height, (batch,)), _integers(generator, width, (batch,))], dim=1)


def random_shift(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Circular shift of each image by :func:`draw_shift_params`."""
    check_image_batch(x)
    batch, _, height, width = x.shape
    return shift(x, draw_shift_params(batch, height, width, generator))


# -- rotations --------------------------------------------------------------------------------------------
def rotate(x: torch.Tensor, angles: torch.Tensor, mode: str = "nearest") -> torch.Tensor:
    """Rotate each image about its centre, keeping its size; pixels from outside the image are 0.

    :param x: ``(B, C, H, W)`` images.
    :param angles: ``(B,)`` angles in degrees, counter-clockwise.
    :param mode: ``"nearest"`` (EI's default) or ``"bilinear"``.
    """
    check_image_batch(x)
    batch, _, height, width = x.shape
    angles = torch.as_tensor(angles, dtype=torch.float64).reshape(-1)
    if angles.shape[0] != batch:
        raise ConfigError(f"need one angle per image ({batch}), got {angles.shape[0]}")
    theta = torch.deg2rad(angles)
    cos, sin = torch.cos(theta).view(-1, 1, 1), torch.sin(theta).view(-1, 1, 1)
    # Pixel coordinates about the image centre; rows grow downwards so a counter-clockwise rotation of
    # the picture samples the input at the clockwise-rotated position.
    rows = torch.arange(height, dtype=torch.float64).view(1, -1, 1) - (height - 1) / 2
    cols = torch.arange(width, dtype=torch.float64).view(1, 1, -1) - (width - 1) / 2
    source_cols = cos * cols - sin * rows
    source_rows = sin * cols + cos * rows
    grid_x = (source_cols + (width - 1) / 2) * 2.0 / max(width - 1, 1) - 1.0
    grid_y = (source_rows + (height - 1) / 2) * 2.0 / max(height - 1, 1) - 1.0
    grid = torch.stack([grid_x, grid_y], dim=-1).to(device=x.device, dtype=torch.float32)
    out = F.grid_sample(x.float(), grid, mode=mode, padding_mode="zeros", align_corners=True)
    return out.to(x.dtype)


def draw_rotation_params(batch: int, generator: torch.Generator | None = None, multiples: float = 1.0) -> torch.Tensor:
    """Per image, an angle in degrees drawn uniformly from the multiples of ``multiples`` in [0, 360): ``(B,)``."""
    count = max(int(round(360.0 / multiples)), 1)
    return _integers(generator, count, (batch,)).to(torch.float64) * multiples


def random_rotate(x: torch.Tensor, generator: torch.Generator | None = None, multiples: float = 1.0,
                  mode: str = "nearest") -> torch.Tensor:
    """Rotate each image by :func:`draw_rotation_params` (integer degrees by default, as in EI)."""
    return rotate(x, draw_rotation_params(x.shape[0], generator, multiples), mode=mode)


# -- modules and registry ---------------------------------------------------------------------------------
class RandomScale(nn.Module):
    """Module form of :func:`random_scale` for images and of :func:`random_scale_volume` for volumes:
    ``transform(x, generator)``.

    :param volume_axes: which axes of a ``(B, C, D, H, W)`` volume are shrunk (:data:`VOLUME_SCALE_AXES`).
    """

    def __init__(self, factors: Sequence[float] = DEFAULT_SCALE_FACTORS, mode: str = "bicubic",
                 padding_mode: str = "reflection", volume_axes: str = VOLUME_SCALE_AXES[0]) -> None:
        super().__init__()
        if not factors or any(f <= 0 for f in factors):
            raise ConfigError(f"scale factors must be positive numbers, got {list(factors)}")
        if volume_axes not in VOLUME_SCALE_AXES:
            raise ConfigError(f"volume scale axes must be one of {VOLUME_SCALE_AXES}, got {volume_axes!r}")
        self.factors = tuple(float(f) for f in factors)
        self.mode = mode
        self.padding_mode = padding_mode
        self.volume_axes = volume_axes

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if x.ndim == 5:
            return random_scale_volume(x, generator, self.factors, axes=self.volume_axes,
                                       padding_mode=self.padding_mode)
        return random_scale(x, generator, self.factors, mode=self.mode, padding_mode=self.padding_mode)

    def extra_repr(self) -> str:
        return (f"factors={self.factors}, mode={self.mode!r}, padding_mode={self.padding_mode!r}, "
                f"volume_axes={self.volume_axes!r}")


class RandomShift(nn.Module):
    """Module form of :func:`random_shift`."""

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return random_shift(x, generator)


class RandomRotate(nn.Module):
    """Module form of :func:`random_rotate`."""

    def __init__(self, multiples: float = 1.0, mode: str = "nearest") -> None:
        super().__init__()
        if multiples <= 0:
            raise ConfigError(f"rotation multiples must be > 0 degrees, got {multiples}")
        self.multiples = float(multiples)
        self.mode = mode

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return random_rotate(x, generator, self.multiples, mode=self.mode)

    def extra_repr(self) -> str:
        return f"multiples={self.multiples}, mode={self.mode!r}"

