"""Noise levels in the units users type: 8-bit grey levels of the network's [0, 1] intensities.

A noise level of 5 is a standard deviation ``sigma = 5 / 255`` in the [0, 1] units the network computes in, whatever
the data's own dtype (:mod:`sei.io.intensity` maps 16-bit and float data to those units). These two functions are
the only conversions between the two units.

>>> sigma_of(5.0)
0.0196078431372549
>>> level_of(sigma_of(5.0))
5.0
"""

from __future__ import annotations

import re

__all__ = ["GREY_LEVELS", "NOISE_FLOOR", "duration_text", "level_of", "parse_duration", "plural", "sigma_of"]

GREY_LEVELS = 255.0  # grey levels per unit of intensity: the 8-bit scale that noise levels are given in
# One grey level: the noise restorers assume when the level is 0 (what 8-bit quantisation leaves).
NOISE_FLOOR = 1.0 / GREY_LEVELS


def sigma_of(level: float) -> float:
    """The standard deviation in [0, 1] units of a noise level in grey levels."""
    return float(level) / GREY_LEVELS


def level_of(sigma: float) -> float:
    """The noise level in grey levels of a standard deviation in [0, 1] units."""
    return float(sigma) * GREY_LEVELS


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(h|m|s)")
_SECONDS_PER = {"h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str | float | int) -> float:
    """Seconds of a wall-clock duration written as ``90s``, ``10m``, ``1.5h`` or ``1h30m`` (a number is seconds).

    >>> parse_duration("10m"), parse_duration("1h30m"), parse_duration("45s"), parse_duration(120)
    (600.0, 5400.0, 45.0, 120.0)

    :raises ValueError: for anything else, or a duration that is not positive.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        words = str(text).strip().lower().replace(" ", "")
        parts = _DURATION_PART.findall(words)
        if not parts or "".join(f"{number}{unit}" for number, unit in parts) != words:
            raise ValueError(f"a duration is written like 90s, 10m, 1.5h or 1h30m, got {text!r}")
        seconds = sum(float(number) * _SECONDS_PER[unit] for number, unit in parts)
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"a duration must be positive, got {text!r}")
    return seconds


def duration_text(seconds: float) -> str:
    """A duration for people: ``"7.2 s"``, ``"45 s"``, ``"12 min"``, ``"12 min 05 s"``, ``"2 h 03 min"``.

    >>> duration_text(7.25), duration_text(44.6), duration_text(720), duration_text(725), duration_text(7380)
    ('7.2 s', '45 s', '12 min', '12 min 05 s', '2 h 03 min')
    """
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    whole = int(round(seconds))
    if whole < 3600:
        return f"{whole // 60} min" + (f" {whole % 60:02d} s" if whole % 60 else "")
    return f"{whole // 3600} h" + (f" {whole % 3600 // 60:02d} min" if whole % 3600 // 60 else "")


def plural(count: int, noun: str) -> str:
    """``"1 step"``, ``"2 steps"``: a count and its noun.

    >>> plural(1, "step"), plural(2400, "step")
    ('1 step', '2400 steps')
    """
    return f"{count} {noun}{'' if count == 1 else 's'}"
