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

__all__ = ["GREY_LEVELS", "NOISE_FLOOR", "level_of", "sigma_of"]

GREY_LEVELS = 255.0  # grey levels per unit of intensity: the 8-bit scale that noise levels are given in
# One grey level: the noise restorers assume when the level is 0 (what 8-bit quantisation leaves).
NOISE_FLOOR = 1.0 / GREY_LEVELS


def sigma_of(level: float) -> float:
    """The standard deviation in [0, 1] units of a noise level in grey levels."""
    return float(level) / GREY_LEVELS


def level_of(sigma: float) -> float:
    """The noise level in grey levels of a standard deviation in [0, 1] units."""
    return float(sigma) * GREY_LEVELS
