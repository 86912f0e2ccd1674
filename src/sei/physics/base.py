"""What SEI needs from an operator beyond deepinv's ``LinearPhysics`` interface.

Our operators expose two attributes that the losses and datasets read: ``upscale`` (how many image
pixels per measurement pixel along each axis: 1 for deblurring, r for x r super-resolution) and
``margin`` (rows/columns at each border of a measurement that depend on the image's wrap-around and are
left out of SURE). Any other deepinv ``LinearPhysics`` works too, read as ``upscale=1`` and ``margin=(0, 0)``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import deepinv
import torch
from torch import nn

from sei.core.defaults import BOUNDARIES
from sei.core.scaling import measured_margin

__all__ = ["compute_dtype", "float32_physics", "Float32Physics", "identity", "physics_margin", "physics_spatial_dims",
           "physics_upscale", "SEILinearPhysics", "SizeCache", "sure_exact_sides"]



def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype an operator computes in for input ``x``: float64 stays, anything else is float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def physics_upscale(physics: deepinv.physics.Physics) -> int:
    """Image pixels per measurement pixel along each axis: ``upscale`` of our operators, ``factor`` of deepinv's
    ``Downsampling``, 1 otherwise."""
    upscale = getattr(physics, "upscale", None)
    if upscale is None and isinstance(physics, deepinv.physics.Downsampling):
        upscale = physics.factor
    return int(upscale or 1)


def physics_spatial_dims(physics: deepinv.physics.Physics) -> int:
    """2 for an operator of ``(B, C, H, W)`` images, 3 for one of ``(B, C, D, H, W)`` volumes (``spatial_dims`` of
    our operators; deepinv's measure images)."""
    return int(getattr(physics, "spatial_dims", 2))


def physics_margin(physics: deepinv.physics.Physics) -> tuple[int, ...]:
    """Rows and columns (planes first, for volumes) to leave out at each border of a measurement: ``margin`` of our
    operators; for deepinv's ``Blur`` and ``Downsampling``, the half-size of their filter (in measurement pixels);
    0 otherwise."""
    margin = getattr(physics, "margin", None)
    if margin is None:
        kernel = getattr(physics, "filter", None)
        if not isinstance(kernel, torch.Tensor) or kernel.ndim < 2:
            return (0, 0)
        upscale = physics_upscale(physics)
        margin = measured_margin(kernel.shape[-2:], upscale)
    return tuple(int(m) for m in margin)


def sure_exact_sides(physics: deepinv.physics.Physics, borders: torch.Tensor | None) -> torch.Tensor | None:
    """Which sides of each training crop SURE needs no margin at: those that are the measurement's own borders, where
    the operator extends an image by the boundary model the measurement was declared with (exactly, when it was
    simulated with it), rather than a cut through a larger scene whose continuation the crop does not hold.

    ``borders`` ``(B, dims, 2)`` says which ``(start, end)`` side of each crop, per axis (planes first), is such a
    border. A ``reflect`` or ``replicate`` operator extends each side from that side alone; a ``circular`` one from
    the opposite side, so only an axis whose both sides are borders counts. An operator whose boundary model is not
    known (not ``boundary`` of ours, nor ``padding`` of deepinv's) keeps its margin everywhere: ``None``.

    >>> from sei.physics.blur import FFTBlur
    >>> borders = torch.tensor([[[True, False], [True, True]]])
    >>> sure_exact_sides(FFTBlur(torch.ones(3, 3) / 9, boundary="circular"), borders).tolist()
    [[[False, False], [True, True]]]
    """
    boundary = getattr(physics, "boundary", None) or getattr(physics, "padding", None)
    if borders is None or boundary not in BOUNDARIES:
        return None
    if boundary == "circular":
        return borders.all(-1, keepdim=True).expand_as(borders)
    return borders


class SizeCache:
    """A small least-recently-used cache of per-size tensors (transfer functions, resampling matrices).

    Owned by an operator instance; keys include size, dtype and device so that one operator serves
    images of any size on any device.
    """

    def __init__(self, capacity: int = 16) -> None:
        self.capacity = capacity
        self._items: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = compute()
        self._items[key] = value
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


def identity(x: torch.Tensor, **kwargs) -> torch.Tensor:
    """``x`` unchanged; a named function where deepinv defaults to lambdas, which cannot be pickled (spawned
    data-parallel processes and worker processes pickle the operator)."""
    return x


class SEILinearPhysics(deepinv.physics.LinearPhysics):
    """Base of ``sei``'s operators: a deepinv ``LinearPhysics`` with ``upscale`` and ``margin``, picklable."""

    upscale: int = 1

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("A", identity)
        kwargs.setdefault("sensor_model", identity)
        super().__init__(**kwargs)
        # without a noise model deepinv gives a ZeroNoise holding a lambda, which cannot be pickled either
        if getattr(getattr(self.noise_model, "noise_model", None), "__name__", None) == "<lambda>":
            self.noise_model.noise_model = identity

    @property
    def margin(self) -> tuple[int, int]:
        return (0, 0)


class Float32Physics(nn.Module):
    """Any operator, its calls made in float32 outside autocast: what training hands to the losses.

    Under bf16 autocast a deepinv operator (``Blur``'s convolution) would compute in bf16, which SURE's finite
    difference (``tau = 0.01`` times a unit probe) and the measurement-consistency residual cannot afford; only the
    network should run in bf16. Each call of the linear-operator interface disables autocast on its inputs' device
    and widens bf16/float16 inputs to float32 (float32 and float64 inputs are passed unchanged, so float32 runs
    compute exactly as before). Any other attribute (``noise_model``, ``filter``, ``factor``, ``spec``, ...) is
    the operator's own.

    :param operator: the operator (a deepinv ``Physics``), registered as the submodule ``operator`` so that it
        moves with the adapter.
    """

    def __init__(self, operator: deepinv.physics.Physics) -> None:
        super().__init__()
        self.operator = operator

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)  # the adapter's own submodule (the operator), parameters, buffers
        except AttributeError:
            if name == "operator" or name.startswith("__"):  # not yet set (unpickling), or Python's protocols
                raise
            return getattr(self.operator, name)

    @property
    def upscale(self) -> int:
        # read from the operator here: deepinv's Downsampling says it with its class and ``factor``
        return physics_upscale(self.operator)

    @property
    def margin(self) -> tuple[int, ...]:
        return physics_margin(self.operator)

    def _in_float32(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``method(*args, **kwargs)`` with autocast off and bf16/float16 tensors widened to float32."""
        tensors = [value for value in (*args, *kwargs.values()) if isinstance(value, torch.Tensor)]
        device_type = tensors[0].device.type if tensors else "cpu"
        with torch.autocast(device_type, enabled=False):
            return method(*(_widened(value) for value in args), **{k: _widened(v) for k, v in kwargs.items()})

    def forward(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return self._in_float32(self.operator, x, **kwargs)

    def A(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return self._in_float32(self.operator.A, x, **kwargs)

    def A_adjoint(self, y: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return self._in_float32(self.operator.A_adjoint, y, **kwargs)

    def A_adjoint_A(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return self._in_float32(self.operator.A_adjoint_A, x, **kwargs)

    def A_A_adjoint(self, y: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return self._in_float32(self.operator.A_A_adjoint, y, **kwargs)

    def A_dagger(self, y: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return self._in_float32(self.operator.A_dagger, y, **kwargs)

    def prox_l2(self, z: torch.Tensor, y: torch.Tensor, gamma: float | torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return self._in_float32(self.operator.prox_l2, z, y, gamma, **kwargs)

    def noise(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return self._in_float32(self.operator.noise, x, **kwargs)

    def extra_repr(self) -> str:
        return "computes in float32 outside autocast"


def _widened(value: Any) -> Any:
    """A bf16/float16 tensor as float32; anything else unchanged."""
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(compute_dtype(value))
    return value


def float32_physics(physics: deepinv.physics.Physics) -> Float32Physics:
    """``physics`` behind a :class:`Float32Physics` (itself when it already is one)."""
    return physics if isinstance(physics, Float32Physics) else Float32Physics(physics)
