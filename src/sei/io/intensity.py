"""The affine map between an image's own intensities and the network's, recorded so that it can be undone.

Networks work on float32 values around [0, 1]; measurements come as 8-bit, 16-bit or float data. One map,
``u = (x - offset) / scale``, takes data ``x`` to network units ``u`` and back (:class:`IntensityMap`). It is affine
and never clips, so no dynamic range is lost, and it is chosen so the way back is exact:

- **integer data** (8 and 16 bits, signed or not): the dtype's full range, ``[min, max] -> [0, 1]`` (``x / 65535`` for
  ``uint16``), and ``read -> map -> unmap -> write`` gives back the same integers (float32 holds ``x / 65535`` to
  6e-8, far below the half step that rounding forgives). **Dim** integer data, whose 99.9th percentile uses less
  than :data:`DIM_FRACTION` of the dtype's range (a camera's 12-bit counts in a 16-bit file, a fluorescence image
  of a few hundred photons), are mapped by their robust range like float data instead: at ``x / 65535`` a
  100-photon image spans [0, 0.0015], where every scale the restorers assume (the noise floor of one grey level,
  the mid-grey noise of the classical restorers, SURE's finite-difference step) is wrong, and SEI trained on it
  scored 0.8 dB below the blurry input instead of 4.4 dB above it (``benchmarks/microscopy.py``). Zero stays zero
  for unsigned data, and the way back still gives the same integers.
- **float data**: there is no natural range, so a robust one is measured: ``offset = min(p_low, 0)`` and ``scale =
  p_high - offset`` where ``p_low``, ``p_high`` are the 0.1th and 99.9th percentiles (the lowest and highest over a
  set of images). A few hot pixels do not squeeze the rest; values beyond the percentiles land outside [0, 1] and
  are kept. Zero stays zero for non-negative data (``offset = 0``), so photon counts keep their Poisson model;
  negative values (a subtracted background) move the offset below zero. For training the range is the training
  set's (one map for the set, recorded in ``config.yaml``, so that one noise level holds for every image); for
  restoring, the map the network was trained with when its run records one, else each file's own (a stack's pages
  share one).

A float image (or set) with no spread at zero or below (all pixels equal, and not positive) has no range to map:
:class:`~sei.core.errors.IntensityError`. Integer images never do, whatever their content.

Noise levels (``--noise-level``) are in grey levels of the mapped range: ``sigma`` in network units times 255,
i.e. a noise of ``s`` data units is ``255 * s / scale`` (for 16-bit data, ``255 * s / 65535``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from sei.core.errors import ImageError, IntensityError

__all__ = ["DIM_FRACTION", "FLOAT_DTYPES", "HIGH_PERCENTILE", "INTEGER_DTYPES", "LOW_PERCENTILE", "check_dtype",
           "combined_map", "data_map", "float_map", "integer_map", "integer_set_map", "IntensityMap",
           "noise_level_text"]

# Robust range of float data: the percentiles that become 0 and 1 (in %).
LOW_PERCENTILE = 0.1
HIGH_PERCENTILE = 99.9
# Integer data whose HIGH_PERCENTILE is below this share of the dtype's range are "dim": mapped by their robust range.
DIM_FRACTION = 0.25
# Integer images wider than 16 bits do not survive float32 network units exactly (24-bit mantissa).
INTEGER_DTYPES = ("uint8", "uint16", "int8", "int16")
FLOAT_DTYPES = ("float16", "float32", "float64")


@dataclass(frozen=True)
class IntensityMap:
    """``u = (x - offset) / scale`` from data ``x`` to network units ``u``, and back to the data's dtype.

    :ivar offset: the data value that becomes 0, in data units.
    :ivar scale: the data span that becomes 1, in data units (> 0).
    :ivar dtype: the data's numpy dtype name (``"uint16"``, ``"float32"`` ...), what :meth:`from_network` returns.
    """

    offset: float
    scale: float
    dtype: str

    def __post_init__(self) -> None:
        if not (np.isfinite(self.offset) and np.isfinite(self.scale) and self.scale > 0):
            raise IntensityError(f"an intensity map needs a finite offset and a scale > 0, got offset {self.offset}, "
                                 f"scale {self.scale}")
        check_dtype(self.dtype)

    @property
    def is_integer(self) -> bool:
        return np.issubdtype(np.dtype(self.dtype), np.integer)

    @property
    def data_range(self) -> float:
        """The span of data units that the network's [0, 1] covers (what PSNR on such data calls the peak)."""
        return self.scale

    def to_network(self, array: np.ndarray) -> np.ndarray:
        """Data of any shape in data units -> float32 network units, same shape (computed in float64)."""
        return ((np.asarray(array, dtype=np.float64) - self.offset) / self.scale).astype(np.float32)

    def from_network(self, array: np.ndarray) -> np.ndarray:
        """Network units of any shape -> the data's dtype, same shape: integers rounded and kept within the dtype's
        range (the only clipping: an integer file cannot hold more), floats as computed."""
        values = np.asarray(array, dtype=np.float64) * self.scale + self.offset
        if self.is_integer:
            info = np.iinfo(self.dtype)
            return np.clip(np.round(values), info.min, info.max).astype(self.dtype)
        return values.astype(self.dtype)

    def to_dict(self) -> dict[str, Any]:
        """Plain values for ``config.yaml`` and JSON records."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> IntensityMap:
        """The map a record holds (:meth:`to_dict`).

        :raises IntensityError: for a record without ``offset``, ``scale`` and ``dtype`` or with invalid values.
        """
        try:
            return cls(float(values["offset"]), float(values["scale"]), str(values["dtype"]))
        except (KeyError, TypeError, ValueError) as error:
            raise IntensityError(f"not an intensity map record: {values!r} ({error})") from error

    def describe(self) -> str:
        """``uint16 [0, 65535] -> [0, 1]``."""
        return f"{self.dtype} [{self.offset:.6g}, {self.offset + self.scale:.6g}] -> [0, 1]"


def check_dtype(dtype: str | np.dtype) -> str:
    """The name of a dtype the maps support.

    :raises ImageError: for other pixel types (32-bit integers and wider, complex, objects).
    """
    name = np.dtype(dtype).name
    if name not in INTEGER_DTYPES + FLOAT_DTYPES:
        raise ImageError(f"unsupported pixel type {name}; images must be 8- or 16-bit integers or floats "
                         "(convert 32-bit integer data to float)")
    return name


def integer_map(dtype: str | np.dtype) -> IntensityMap:
    """The full range of an integer dtype onto [0, 1] (``uint16``: ``x / 65535``).

    >>> mapping = integer_map("uint16")
    >>> mapping.to_network(np.array([0, 65535], dtype=np.uint16)).tolist()
    [0.0, 1.0]
    """
    name = check_dtype(dtype)
    if name not in INTEGER_DTYPES:
        raise ImageError(f"{name} is not an integer pixel type")
    info = np.iinfo(name)
    return IntensityMap(float(info.min), float(info.max) - float(info.min), name)


def integer_set_map(arrays: Sequence[np.ndarray], dtype: str | np.dtype | None = None,
                    name: str = "the data") -> IntensityMap:
    """The map of integer data of one dtype (one or more arrays: a stack's pages, a training set): the dtype's full
    range (:func:`integer_map`), or for dim data (see the module) their robust range (:func:`float_map`'s rule).

    >>> counts = np.random.default_rng(0).poisson(40.0, size=(64, 64)).astype(np.uint16)  # a few photons
    >>> integer_set_map([counts]).scale < 100, integer_set_map([np.array([0, 60000], np.uint16)]).scale
    (True, 65535.0)
    """
    full = integer_map(dtype if dtype is not None else arrays[0].dtype)
    if not arrays:
        return full
    low, high = _percentile_range(arrays)
    if high - full.offset >= DIM_FRACTION * full.scale:
        return full
    try:
        return _robust_map(low, high, full.dtype, name)
    except IntensityError:  # nearly empty (the 99.9th percentile at zero): no robust range, the dtype's
        return full


def _percentile_range(arrays: Sequence[np.ndarray]) -> tuple[float, float]:
    """The lowest ``LOW_PERCENTILE`` and the highest ``HIGH_PERCENTILE`` over ``arrays``."""
    low = min(float(np.percentile(a, LOW_PERCENTILE)) for a in arrays)
    high = max(float(np.percentile(a, HIGH_PERCENTILE)) for a in arrays)
    return low, high


def _robust_map(low: float, high: float, dtype: str | np.dtype, name: str) -> IntensityMap:
    """``offset = min(low, 0)``, ``scale = high - offset``.

    :raises IntensityError: when that range is empty or not finite.
    """
    offset = min(low, 0.0)
    scale = high - offset
    if not (np.isfinite(scale) and scale > 0):
        raise IntensityError(f"{name}: float data from {low:g} to {high:g} have no positive range to map onto the "
                             "network's [0, 1] (a constant image at zero or below); such an image has nothing to "
                             "restore or learn from")
    return IntensityMap(offset, scale, check_dtype(dtype))


def float_map(arrays: Sequence[np.ndarray], dtype: str | np.dtype | None = None, name: str = "the data") -> IntensityMap:
    """The robust range of float data (one or more arrays, e.g. a stack's pages or a training set) onto [0, 1].

    ``offset = min(p_low, 0)``, ``scale = p_high - offset`` (see the module's rule).

    :param dtype: the dtype to restore to (default: the first array's).
    :param name: what the data are, for the error message.
    :raises IntensityError: when the range is empty (constant data at zero or below) or not finite.
    """
    if not arrays:
        raise IntensityError(f"{name}: no data to measure an intensity range on")
    return _robust_map(*_percentile_range(arrays), dtype if dtype is not None else arrays[0].dtype, name)


def data_map(arrays: Sequence[np.ndarray], name: str = "the data") -> IntensityMap:
    """The map of arrays of one dtype: :func:`integer_set_map` for integers, :func:`float_map` for floats.

    :raises ImageError: for arrays of several dtypes, or an unsupported one.
    :raises IntensityError: for float data with no range.
    """
    dtypes = sorted({np.dtype(a.dtype).name for a in arrays})
    if len(dtypes) != 1:
        raise ImageError(f"{name}: one map needs one pixel type, got {', '.join(dtypes) or 'none'}")
    if dtypes[0] in FLOAT_DTYPES:
        return float_map(arrays, dtypes[0], name)
    return integer_set_map(arrays, dtypes[0], name)


def combined_map(maps: Sequence[IntensityMap]) -> IntensityMap | None:
    """One map for files whose own maps are ``maps`` (each from :func:`data_map`), as :func:`data_map` would give
    for all their pages at once: the lowest offset and the highest top; an integer dtype's full range if any file
    fills it. ``None`` for files of several dtypes (each keeps its own) or none.

    >>> dim = [IntensityMap(0.0, 80.0, "uint16"), IntensityMap(0.0, 120.0, "uint16")]
    >>> combined_map(dim).scale, combined_map(dim + [integer_map("uint16")]).scale
    (120.0, 65535.0)
    """
    if not maps or len({m.dtype for m in maps}) != 1:
        return None
    if maps[0].is_integer:
        full = integer_map(maps[0].dtype)
        if any(m == full for m in maps):
            return full
    offset = min(m.offset for m in maps)
    return IntensityMap(offset, max(m.offset + m.scale for m in maps) - offset, maps[0].dtype)


def noise_level_text(level: float, intensity: IntensityMap | None = None) -> str:
    """A noise level in grey levels of the network's range, and in the data's own units when their map is known.

    :param level: the standard deviation in 8-bit grey levels of network units (:mod:`sei.core.units`).
    :param intensity: the data's map; ``None`` for 8-bit photographs or a set that mixes dtypes.

    >>> noise_level_text(1.922, integer_map("uint16"))
    '1.922/255 (494 counts of the uint16 data)'
    >>> noise_level_text(5.0)
    '5/255'
    """
    from sei.core.units import sigma_of

    text = f"{level:.4g}/255"
    if intensity is None or intensity.dtype == "uint8":
        return text
    spread = sigma_of(level) * intensity.scale
    units = "counts" if intensity.is_integer else "units"
    return f"{text} ({spread:.4g} {units} of the {intensity.dtype} data)"
