"""Stein's unbiased risk estimate (SURE) of the measurement-domain error, on the measurement's interior.

For ``y = A x + e`` with ``e ~ N(0, sigma^2 I)`` and a network ``f``, with ``m`` interior pixels,

    SURE(y) = ||A f(y) - y||^2 / m  -  sigma^2  +  2 sigma^2 div(A f)(y) / m

is an unbiased estimate of ``||A f(y) - A x||^2 / m``. The divergence is estimated by Hutchinson's trace estimator
with a Gaussian probe ``b`` that is non-zero on the interior only, ``div ~ mean(b * A J b)`` for the network's
Jacobian ``J`` at ``y``, ``J b`` taken either as the paper's finite difference ``(f(y + tau b) - f(y)) / tau``
(``divergence="finite-difference"``) or exactly, by forward-mode autodiff (``divergence="jvp"``). Gradients flow
through both network evaluations, or through the Jacobian-vector product.

Why the exact product: the finite difference estimates the divergence averaged over a ball of radius ``tau`` around
``y`` (Stein's lemma for the Gaussian-smoothed network), not at ``y``. A network trained long on few fixed
measurements can grow non-smooth at that scale and drive the estimate far below any real divergence: a ``unet-small``
fine-tuned for 10 minutes on 14 photographs (x2 super-resolution) reached -42 per pixel at ``tau = 0.01`` against
+0.41 at ``tau = 0.001``, a SURE value below zero, and outputs from -17 to 14 on textures it had not seen.
``J b`` at ``y`` leaves no scale to exploit, and in bf16 it carries no cancellation (the finite difference subtracts
two outputs that agree to two digits).

For deblurring, the ``margin`` rows/columns at each border of a measurement crop (margin = (kernel size - 1) // 2,
in measurement pixels) mix in pixels beyond the crop, which the operator makes up by its boundary model where the
scene goes on, so both terms are computed on the interior only (:class:`SureRegion`). A side of the crop that is
the measurement's own border keeps its margin in: there the boundary model is the one the measurement was declared
with (``exact_sides``, :func:`sei.physics.base.sure_exact_sides`).

For Poisson-Gaussian noise ``y = gain * Poisson(A x / gain) + N(0, sigma^2)`` (Le Montagner et al., 2014; deepinv's
``SurePGLoss`` is the formula reference), the same terms on the same interior with the divergence weighted by
the local noise variance ``gain * y + sigma^2``:

    PG-SURE(y) = ||A f(y) - y||^2 / m  -  gain * mean(y)  -  sigma^2
                 +  2 mean(b * (gain y + sigma^2) * (A f(y + tau b) - A f(y))) / tau

(the second-derivative correction, of order ``gain * sigma^2``, is left out as in deepinv's default).

The same probe gives the noise power that the residual ``r(y) = A f(y) - y`` passes, ``||J - I||_F^2 / m`` for the
Jacobian ``J`` of ``A f`` (Hutchinson: ``E_b ||(J - I) b||^2``), from which :func:`residual_noise_variance`
estimates the Gaussian noise variance (``--noise-level learn``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch

from sei.core.defaults import SURE_DIVERGENCES
from sei.core.errors import ConfigError, ImageTooSmallError, ShapeError
from sei.physics.noise import gaussian_noise_like

__all__ = ["DEFAULT_TAU", "SURE_CONSTANTS", "SURE_DIVERGENCES", "interior", "interior_probe", "pooled_noise_variance",
           "residual_noise_variance", "sure_gaussian", "sure_poisson_gaussian", "SureRegion", "SureTerms"]

SURE_CONSTANTS = ("unbiased", "reference")  # the first is the default
# The finite-difference step of the Monte-Carlo divergence (the paper's).
DEFAULT_TAU = 0.01


def _inner(margin: tuple[int, ...], shape: torch.Size) -> tuple:
    """The index of the interior of a tensor of ``shape``: ``margin`` voxels off each end of its trailing axes."""
    return (..., *(slice(m, n - m) for m, n in zip(margin, shape[-len(margin):])))


def interior(t: torch.Tensor, margin: tuple[int, ...]) -> torch.Tensor:
    """``t[..., mh:H-mh, mw:W-mw]`` for ``margin = (mh, mw)``; for a volume's ``(md, mh, mw)``, over its last three
    axes likewise.

    :raises ImageTooSmallError: if nothing is left.
    """
    sizes = tuple(t.shape[-len(margin):])
    if any(n <= 2 * m for m, n in zip(margin, sizes)):
        size_text, margin_text = "x".join(map(str, sizes)), "x".join(map(str, margin))
        larger = "x".join(str(2 * m) for m in margin)
        raise ImageTooSmallError(
            f"a {size_text} measurement has no interior left after removing a {margin_text}-pixel margin; "
            f"use measurements larger than {larger}"
        )
    return t[_inner(margin, t.shape)]


def interior_probe(y: torch.Tensor, margin: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
    """A standard Gaussian probe of ``y``'s shape, zero outside the interior."""
    probe = torch.zeros_like(y)
    inner = probe[_inner(margin, y.shape)]
    inner.copy_(gaussian_noise_like(inner, 1.0, generator))
    return probe


class SureRegion:
    """The voxels of a batch of measurement crops ``y`` ``(B, C, *spatial)`` on which SURE's terms are exact: the
    interior, ``margin`` voxels off each side of each axis (planes first), except on the sides that
    ``exact_sides`` ``(B, dims, 2)`` marks, per crop and per ``(start, end)`` of an axis, where nothing is left out.

    :meth:`mean` averages a tensor over it, :meth:`select` gives its values there (the interior slice, or a flat
    selection when the crops' regions differ) and :meth:`probe` a standard Gaussian probe that is zero elsewhere.
    With ``exact_sides`` on an accelerator the region is a mask built there: no step waits for the device to say
    whether any side is exact (on the CPU, no exact side still means the interior slice).

    >>> y = torch.zeros(2, 1, 8, 8)
    >>> SureRegion(y, (2, 2)).select(y).shape  # 2 crops of 4 x 4 interior pixels
    torch.Size([2, 1, 4, 4])
    >>> sides = torch.tensor([[[True, False], [False, False]], [[False, False], [False, False]]])
    >>> SureRegion(y, (2, 2), sides).select(y).shape  # the first crop's region starts at its top row: 24 + 16
    torch.Size([40])
    >>> SureRegion(y, (2, 2), sides).mean(torch.arange(2.0).reshape(2, 1, 1, 1).expand_as(y))  # 16 of 40 are 1
    tensor(0.4000)

    :raises ImageTooSmallError: if the interior is empty (whatever ``exact_sides`` says).
    :raises ShapeError: if ``exact_sides`` is not ``(B, dims, 2)``.
    """

    def __init__(self, y: torch.Tensor, margin: tuple[int, ...], exact_sides: torch.Tensor | None = None) -> None:
        interior(y, margin)  # fail early, with a clear message, on crops smaller than the margin
        self.margin = tuple(margin)
        self.mask: torch.Tensor | None = None
        self.count: torch.Tensor | None = None  # the mask's voxels per channel, counted once for every mean
        if exact_sides is None:
            return
        expected = (y.shape[0], len(self.margin), 2)
        if tuple(exact_sides.shape) != expected:
            raise ShapeError(f"exact_sides should have shape {expected} for crops {tuple(y.shape)}, "
                             f"got {tuple(exact_sides.shape)}")
        if exact_sides.device.type == "cpu" and not bool(exact_sides.any()):  # the interior slice, as fast
            return
        sizes = y.shape[-len(self.margin):]
        exact_sides = exact_sides.to(y.device)
        mask = torch.ones((y.shape[0], 1) + (1,) * len(sizes), dtype=torch.bool, device=y.device)
        for axis, (m, n) in enumerate(zip(self.margin, sizes)):
            index = torch.arange(n, device=y.device)
            keep = (((index >= m) | exact_sides[:, axis, :1]) & ((index < n - m) | exact_sides[:, axis, 1:]))
            shape = [y.shape[0], 1] + [1] * len(sizes)
            shape[2 + axis] = n
            mask = mask & keep.reshape(shape)  # (B, n) per axis, broadcast into (B, 1, *spatial)
        self.mask, self.count = mask, mask.sum()

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        """The mean of ``t`` ``(B, C, *spatial)`` over the region (a 0-d tensor, with ``t``'s graph)."""
        if self.mask is None:
            return interior(t, self.margin).mean()
        return (t * self.mask).sum() / (self.count * t.shape[1])

    def select(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` ``(B, C, *spatial)`` on the region: its interior slice, or its values there as one flat tensor."""
        return interior(t, self.margin) if self.mask is None else t[self.mask.expand_as(t)]

    def probe(self, y: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """A standard Gaussian probe of ``y``'s shape, zero outside the region."""
        if self.mask is None:
            return interior_probe(y, self.margin, generator)
        return gaussian_noise_like(y, 1.0, generator) * self.mask


@dataclass
class SureTerms:
    """The parts of a SURE evaluation.

    :ivar loss: scalar SURE value.
    :ivar residual: mean of ``(A f(y) - y)^2`` over the interior.
    :ivar divergence: Monte-Carlo divergence estimate (per interior pixel).
    :ivar estimate: ``f(y)``, with its graph, for reuse by other loss terms.
    :ivar noise_gain: mean of ``(A J b - b)^2`` over the interior, without graph: an estimate of
        ``||A J - I||_F^2 / m``, the part of a unit noise variance that the residual keeps.
    """

    loss: torch.Tensor
    residual: torch.Tensor
    divergence: torch.Tensor
    estimate: torch.Tensor
    noise_gain: torch.Tensor


def _noise_gain(response: torch.Tensor, probe: torch.Tensor, region: SureRegion) -> torch.Tensor:
    """``mean((A J b - b)^2)`` over the region: ``||(A J - I) b||^2 / m``."""
    with torch.no_grad():  # a statistic for the noise estimate, not a loss term
        return region.mean((response - probe).pow(2))


def residual_noise_variance(terms: SureTerms) -> float | None:
    """The Gaussian noise variance (``sigma^2``, [0, 1] units) that a SURE evaluation's residual implies,
    ``residual / noise_gain``; ``None`` when it says nothing (a residual that keeps no noise, or non-finite terms).

    Near the measurements the residual ``r(y) = A f(y) - y`` is affine in the noise ``e``:
    ``r(A x + e) ~ r(A x) + (J - I) e``, so ``E ||r||^2 / m = ||r(A x)||^2 / m + sigma^2 ||J - I||_F^2 / m``. The
    ratio is therefore (to first order in the noise) an upper bound on sigma^2, whatever level the network was
    trained at, and tight as the network reproduces the clean measurement (``r(A x) -> 0``). Why it replaces
    UNSURE's multiplier: :class:`sei.losses.sei.SureEquivariant`.
    """
    residual, gain = float(terms.residual.detach()), float(terms.noise_gain)
    if not (gain > 0 and math.isfinite(gain) and math.isfinite(residual)):
        return None
    return residual / gain


def pooled_noise_variance(terms: SureTerms) -> float | None:
    """:func:`residual_noise_variance` over every process of a data-parallel run: the ranks' residuals and noise
    gains are summed before their ratio (one all-reduce), so every rank gets the estimate of the global batch and
    a learned level stays identical on all of them. In a single process, :func:`residual_noise_variance` itself.

    Every rank must call it at the same step (as training steps do): a rank whose terms say nothing contributes
    zeros, and the estimate is ``None`` only when no rank's terms say anything.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return residual_noise_variance(terms)
    estimate = residual_noise_variance(terms)
    residual, gain = (float(terms.residual.detach()), float(terms.noise_gain)) if estimate is not None else (0.0, 0.0)
    totals = torch.tensor([residual, gain], dtype=torch.float64, device=terms.residual.device)
    dist.all_reduce(totals)
    total_residual, total_gain = (float(value) for value in totals)
    return total_residual / total_gain if total_gain > 0 else None


def _jacobian_product(model, y: torch.Tensor, probe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(f(y), J b)`` in one forward-mode pass; the product keeps its graph to the network's parameters."""
    from torch.autograd import forward_ad

    try:
        with forward_ad.dual_level():
            estimate, product = forward_ad.unpack_dual(model(forward_ad.make_dual(y, probe)))
    except (NotImplementedError, RuntimeError) as error:
        if not re.search(r"forward[ -](mode )?AD", str(error), re.IGNORECASE):
            raise
        reason = str(error).strip().splitlines()[0]
        raise ConfigError(f"this network cannot give SURE's exact divergence (forward-mode autodiff: {reason}); "
                          "use --divergence finite-difference") from error
    if product is None:  # the output does not depend on the input
        product = torch.zeros_like(estimate)
    return estimate, product


def _probe_pair(model, physics, y: torch.Tensor, generator: torch.Generator | None, region: SureRegion,
                tau: float, batched_probe: bool, constant: str, divergence: str
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(f(y), A f(y), A J b, b)`` for a probe ``b`` on the region, after checking ``tau`` and the names of the
    constant and the divergence estimate."""
    if constant not in SURE_CONSTANTS:
        raise ConfigError(f"unknown SURE constant {constant!r}; use one of {', '.join(SURE_CONSTANTS)}")
    if divergence not in SURE_DIVERGENCES:
        raise ConfigError(f"unknown SURE divergence estimate {divergence!r}; use one of "
                          f"{', '.join(SURE_DIVERGENCES)}")
    if tau <= 0:
        raise ConfigError(f"SURE finite-difference step tau must be > 0, got {tau}")
    probe = region.probe(y, generator)
    if divergence == "jvp":
        estimate, product = _jacobian_product(model, y, probe)
        return estimate, physics.A(estimate), physics.A(product), probe
    perturbed = y + tau * probe
    if batched_probe:
        estimate, estimate_perturbed = model(torch.cat([y, perturbed])).chunk(2)
    else:
        estimate, estimate_perturbed = model(y), model(perturbed)
    predicted = physics.A(estimate)
    return estimate, predicted, (physics.A(estimate_perturbed) - predicted) / tau, probe


def sure_gaussian(
    model,
    physics,
    y: torch.Tensor,
    sigma: float,
    generator: torch.Generator | None = None,
    margin: tuple[int, ...] = (0, 0),
    tau: float = DEFAULT_TAU,
    constant: str = SURE_CONSTANTS[0],
    batched_probe: bool = True,
    divergence: str = SURE_DIVERGENCES[0],
    exact_sides: torch.Tensor | None = None,
) -> SureTerms:
    """SURE for Gaussian noise of standard deviation ``sigma`` (in [0, 1] units).

    :param model: network ``f``, ``(B, C, h, w) -> (B, C, H, W)`` (or volumes, ``(B, C, d, h, w)``).
    :param physics: operator with ``A``.
    :param y: ``(B, C, h, w)`` measurements (or ``(B, C, d, h, w)``).
    :param generator: source of the divergence probe.
    :param margin: interior margin ``(rows, columns)``; ``(planes, rows, columns)`` for volumes.
    :param tau: finite-difference step (``divergence="finite-difference"`` only).
    :param constant: ``"unbiased"`` subtracts ``sigma^2`` (an unbiased estimate, as in the formula);
        ``"reference"`` subtracts ``sigma^2 / B`` as the paper's reference code does. The two differ by a
        constant, so gradients and training are identical; only the logged value changes.
    :param batched_probe: evaluate ``f(y)`` and ``f(y + tau b)`` as one batch of ``2B`` (same result, one pass).
    :param divergence: ``"finite-difference"`` (the paper's) or ``"jvp"``, the exact Jacobian-vector product (see
        the module docstring for why).
    :param exact_sides: ``(B, dims, 2)`` bool, the sides of each crop that keep their margin in (:class:`SureRegion`);
        ``None``: every margin is left out.

    For the identity network ``f(y) = y`` on denoising (``A = I``) the divergence is 1 per pixel and SURE
    estimates the error of the noisy measurement itself, ``sigma^2``:

    >>> from sei.physics import make_physics
    >>> physics = make_physics("deblurring", kernel=torch.ones(1, 1), noise_level=20)
    >>> y = physics(torch.rand(4, 1, 64, 64), generator=torch.Generator().manual_seed(0))
    >>> terms = sure_gaussian(torch.nn.Identity(), physics, y, 20 / 255, torch.Generator().manual_seed(1))
    >>> round(terms.divergence.item(), 1), round(terms.loss.item() / (20 / 255) ** 2, 1)
    (1.0, 1.0)
    """
    region = SureRegion(y, margin, exact_sides)
    estimate, predicted, response, probe = _probe_pair(model, physics, y, generator, region, tau, batched_probe,
                                                       constant, divergence)
    residual = region.mean((predicted - y).pow(2))
    mean_divergence = region.mean(probe * response)
    offset = sigma**2 if constant == "unbiased" else sigma**2 / y.shape[0]
    loss = residual + 2.0 * sigma**2 * mean_divergence - offset
    return SureTerms(loss=loss, residual=residual, divergence=mean_divergence, estimate=estimate,
                     noise_gain=_noise_gain(response, probe, region))


def sure_poisson_gaussian(
    model,
    physics,
    y: torch.Tensor,
    gain: float,
    sigma: float,
    generator: torch.Generator | None = None,
    margin: tuple[int, ...] = (0, 0),
    tau: float = DEFAULT_TAU,
    constant: str = SURE_CONSTANTS[0],
    batched_probe: bool = True,
    divergence: str = SURE_DIVERGENCES[0],
    exact_sides: torch.Tensor | None = None,
) -> SureTerms:
    """SURE for Poisson-Gaussian noise ``gain * Poisson(A x / gain) + N(0, sigma^2)`` (see the module docstring).

    Parameters as :func:`sure_gaussian`; ``gain`` is the intensity of one photon and ``sigma`` the read noise, both
    in [0, 1] units. ``constant="reference"`` divides the constant ``gain * mean(y) + sigma^2`` by the batch size,
    as the Gaussian reference code does (same gradients). ``SureTerms.divergence`` is the unweighted divergence,
    for logs comparable with the Gaussian one.
    """
    if not gain > 0:
        raise ConfigError(f"the Poisson gain must be > 0, got {gain}")
    region = SureRegion(y, margin, exact_sides)
    estimate, predicted, response, probe = _probe_pair(model, physics, y, generator, region, tau, batched_probe,
                                                       constant, divergence)
    residual = region.mean((predicted - y).pow(2))
    change = probe * response
    mean_divergence = region.mean(change)
    weighted_divergence = region.mean(change * (gain * y + sigma**2))
    offset = gain * region.mean(y) + sigma**2
    if constant == "reference":
        offset = offset / y.shape[0]
    loss = residual + 2.0 * weighted_divergence - offset
    return SureTerms(loss=loss, residual=residual, divergence=mean_divergence, estimate=estimate,
                     noise_gain=_noise_gain(response, probe, region))
