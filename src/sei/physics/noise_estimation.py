"""Noise level from the measurements themselves: Gaussian sigma, and Poisson-Gaussian gain and sigma.

The Gaussian estimator is the patch-covariance method of Chen, Zhu and Heng (ICCV 2015), the one deepinv ships as
``PatchCovarianceNoiseEstimator``, restricted to weak-texture patches as in Liu, Tanaka and Okutomi (IEEE TIP
2013): the covariance of ``C x p x p`` patches has ``sigma^2`` as its smallest eigenvalues (noise is white, the
signal is not), and the noise eigenvalues are the largest set of smallest ones whose mean equals their median.
Why not deepinv's estimator as it is: on blurred measurements it is accurate (blur empties the high frequencies,
which helps: 0.2-0.4 % mean error per image on the sample photographs), but on x2 down-sampled photographs the
signal's own texture leaks into the smallest eigenvalues and at sigma = 1/255 it is 19 % off per image on average
(122 % on the worst). One pass that discards the patches whose gradient energy is above what noise alone gives (the
99th percentile of the same patch geometry on simulated unit noise, scaled by the first estimate) brings that to
8 % (66 % worst), at the price of 0.6-1.2 % instead of 0.2-0.4 % on blurred images; more passes spiral downwards.
Every patch is used (stride 1) unless there are far more than needed: with fewer than about 15 patches per
covariance dimension the smallest eigenvalues are biased low. ``benchmarks/real_data.py`` has the numbers.

A set of measurements gets one level: the median of the per-image estimates (robust to an image whose own texture
or grain fools the estimator).

Poisson-Gaussian noise ``y = gain * Poisson(u / gain) + N(0, sigma^2)`` has variance ``gain * u + sigma^2`` at a
pixel of mean ``u``: grey patches are grouped by their mean intensity, each group's noise variance is measured by
the same patch-covariance method on its weak-texture patches, and a least-squares line through (mean, variance),
weighted by how much of each group is flat, gives the gain (slope) and ``sigma^2`` (intercept). The gain comes
out within 2 % at 30-200 photons; a read noise much smaller than the photon noise (2/255 at a 30-photon peak) is
not identifiable this way and comes out as 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sei.core.errors import ImageError

__all__ = ["INTENSITY_BINS", "ITERATIONS", "MIN_PATCHES_PER_DIMENSION", "MIN_VARIATION", "PATCH_SIZE",
           "TARGET_PATCHES_PER_DIMENSION", "TEXTURE_QUANTILE", "adaptive_stride", "estimate_gaussian",
           "estimate_poisson_gaussian", "estimate_sigma", "estimate_spec_noise", "image_patches",
           "noise_texture_threshold", "noise_variance_from_patches", "NoiseEstimate", "patch_texture",
           "patches_and_texture", "weak_texture_patches"]

PATCH_SIZE = 8
TEXTURE_QUANTILE = 0.99
ITERATIONS = 1
# Patches per covariance dimension: below MIN the smallest eigenvalues are biased low by more than about 5 %
# (measured on white noise); TARGET is where a larger image is sub-sampled (more only costs time).
MIN_PATCHES_PER_DIMENSION = 15
TARGET_PATCHES_PER_DIMENSION = 200
INTENSITY_BINS = 12
# The smallest variation a measurement must show to say anything about its noise: below it, it is constant
# (or was quantised to a handful of levels), and no estimator can tell noise from signal.
MIN_VARIATION = 1e-6


@dataclass(frozen=True)
class NoiseEstimate:
    """Noise parameters estimated from measurements.

    :ivar sigma: Gaussian standard deviation in the images' units ([0, 1]: ``noise_level / 255``).
    :ivar gain: Poisson gain (photons per unit of intensity is ``1 / gain``), ``None`` for Gaussian noise.
    :ivar per_image: per-image Gaussian sigmas (Gaussian model only, empty otherwise).
    """

    sigma: float
    gain: float | None = None
    per_image: tuple[float, ...] = ()

    @property
    def noise_level(self) -> float:
        """``sigma`` in 8-bit grey levels."""
        return self.sigma * 255.0


def image_patches(y: torch.Tensor, patch_size: int = PATCH_SIZE, stride: int = 1) -> torch.Tensor:
    """All ``patch_size``-square patches of a ``(C, H, W)`` image, every ``stride`` pixels, as ``(N, C p p)``."""
    return F.unfold(y[None].double(), patch_size, stride=stride)[0].T


def patch_texture(y: torch.Tensor, patch_size: int = PATCH_SIZE, stride: int = 1) -> torch.Tensor:
    """Gradient energy (sum of squared horizontal and vertical differences over channels) of each patch of
    :func:`image_patches`, ``(N,)``, on the ``(p - 1)``-square window of differences inside the patch."""
    y = y.double()
    energy = (y[:, :-1, 1:] - y[:, :-1, :-1]).pow(2) + (y[:, 1:, :-1] - y[:, :-1, :-1]).pow(2)
    window = patch_size - 1
    return F.avg_pool2d(energy.sum(0)[None, None], window, stride=stride).flatten() * window**2


def noise_variance_from_patches(patches: torch.Tensor) -> float:
    """Chen et al.'s noise variance of ``(N, d)`` patches: the mean of the largest set of smallest eigenvalues of
    their covariance whose mean is also their median."""
    centred = patches - patches.mean(0, keepdim=True)
    eigenvalues = torch.linalg.eigvalsh(centred.T @ centred / patches.shape[0]).clamp_min(0)
    for count in range(eigenvalues.numel(), 0, -1):
        smallest = eigenvalues[:count]
        mean = smallest.mean()
        if int((smallest > mean).sum()) == int((smallest < mean).sum()):
            return float(mean)
    return float(eigenvalues[0])  # pragma: no cover - count == 1 always balances


def noise_texture_threshold(channels: int, patch_size: int = PATCH_SIZE, quantile: float = TEXTURE_QUANTILE) -> float:
    """The ``quantile`` of :func:`patch_texture` on white noise of unit variance (a fixed, seeded draw): a patch
    whose texture exceeds ``sigma^2`` times this holds signal as well as noise."""
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(channels, 16 * patch_size, 16 * patch_size, generator=generator, dtype=torch.float64)
    return float(torch.quantile(patch_texture(noise, patch_size, stride=1), quantile))


def _check_image(y: torch.Tensor, patch_size: int) -> None:
    if y.ndim != 3:
        raise ImageError(f"noise estimation takes (C, H, W) images, got shape {tuple(y.shape)}")
    if not torch.isfinite(y).all():
        raise ImageError("noise estimation: the measurement holds NaN or infinite values")
    if min(y.shape[-2:]) < 2 * patch_size:
        raise ImageError(f"noise estimation needs images of at least {2 * patch_size}x{2 * patch_size} pixels, got "
                         f"{y.shape[-2]}x{y.shape[-1]}")
    if float(y.double().std()) < MIN_VARIATION:
        raise ImageError("cannot estimate the noise level of a constant image (no variation at all): give the level "
                         "with --noise-level NUMBER")


def adaptive_stride(y: torch.Tensor, patch_size: int = PATCH_SIZE) -> int:
    """The patch stride for a ``(C, H, W)`` image: 1 (every patch) unless that gives more than
    ``TARGET_PATCHES_PER_DIMENSION`` patches per covariance dimension, which only costs time on large images."""
    count = (y.shape[-2] - patch_size + 1) * (y.shape[-1] - patch_size + 1)
    return max(1, int((count / (TARGET_PATCHES_PER_DIMENSION * y.shape[0] * patch_size**2)) ** 0.5))


def patches_and_texture(y: torch.Tensor, patch_size: int = PATCH_SIZE) -> tuple[torch.Tensor, torch.Tensor, int]:
    """:func:`image_patches` and :func:`patch_texture` of a ``(C, H, W)`` image at its :func:`adaptive_stride`.

    The covariance's smallest eigenvalues are biased low unless there are many more patches than dimensions
    (``MIN_PATCHES_PER_DIMENSION``): a small colour image is read as ``C`` grey images instead (``C`` times the
    patches, a third of the dimensions).

    :return: ``(patches (N, d), texture (N,), channels per patch)``.
    :raises ImageError: for an image too small for either.
    """
    _check_image(y, patch_size)
    if bool((y == y[:1]).all()):  # grayscale read as RGB: equal channels carry one noise draw, not three
        y = y[:1]
    for channels in dict.fromkeys((y.shape[0], 1)):
        parts = [y] if channels == y.shape[0] else [c[None] for c in y]
        stride = adaptive_stride(parts[0], patch_size)
        patches = torch.cat([image_patches(p, patch_size, stride) for p in parts])
        if patches.shape[0] >= MIN_PATCHES_PER_DIMENSION * patches.shape[1]:
            return patches, torch.cat([patch_texture(p, patch_size, stride) for p in parts]), channels
    raise ImageError(f"a {y.shape[-2]}x{y.shape[-1]} image has too few {patch_size}x{patch_size} patches to estimate "
                     "its noise level reliably; give the level with --noise-level NUMBER")


def weak_texture_patches(y: torch.Tensor, patch_size: int = PATCH_SIZE,
                         iterations: int = ITERATIONS) -> tuple[torch.Tensor, float]:
    """The patches of ``y`` (``(C, H, W)``) that look like noise alone, and the noise variance they give.

    Starts from all patches, then keeps those whose texture is below the noise-only threshold at the current
    estimate and re-estimates, ``iterations`` times (stopping early when too few patches would be left).

    :return: ``(patches (N, d), variance)``.
    """
    patches, texture, channels = patches_and_texture(y, patch_size)
    threshold = noise_texture_threshold(channels, patch_size)
    kept, variance = patches, noise_variance_from_patches(patches)
    for _ in range(iterations):
        selected = texture < variance * threshold
        if int(selected.sum()) < MIN_PATCHES_PER_DIMENSION * patches.shape[1]:
            break
        kept, variance = patches[selected], noise_variance_from_patches(patches[selected])
    return kept, variance


def estimate_sigma(y: torch.Tensor, patch_size: int = PATCH_SIZE) -> float:
    """The Gaussian noise standard deviation of one ``(C, H, W)`` measurement, in its units.

    :raises ImageError: for a constant image, one smaller than two patches, or non-finite values.
    """
    return weak_texture_patches(y, patch_size)[1] ** 0.5


def estimate_gaussian(images: Sequence[torch.Tensor], patch_size: int = PATCH_SIZE) -> NoiseEstimate:
    """One Gaussian noise level for a set of ``(C, H, W)`` measurements: the median of the per-image estimates.

    :raises ImageError: for an empty set or an image whose noise cannot be estimated.
    """
    if len(images) == 0:
        raise ImageError("noise estimation needs at least one measurement")
    per_image = tuple(estimate_sigma(y, patch_size) for y in images)
    return NoiseEstimate(sigma=float(torch.tensor(per_image).median()), per_image=per_image)


def estimate_poisson_gaussian(images: Sequence[torch.Tensor], patch_size: int = PATCH_SIZE,
                              bins: int = INTENSITY_BINS) -> NoiseEstimate:
    """Gain and Gaussian sigma of Poisson-Gaussian noise (variance ``gain * mean + sigma^2``) from measurements.

    Each channel is read as a grey image; its patches are pooled over the set, grouped into ``bins`` groups of equal
    count by mean intensity, each group's noise
    variance is measured, and a line weighted by group size is fitted through (mean, variance).

    :raises ImageError: for an empty set, constant images, or intensities too uniform to fit a line (then
        the Poisson and Gaussian parts cannot be told apart: give ``--gain`` and ``--noise-level``).
    """
    if len(images) == 0:
        raise ImageError("noise estimation needs at least one measurement")
    pooled, textures = [], []
    for y in images:
        for channel in (y[:1] if bool((y == y[:1]).all()) else y):  # grayscale read as RGB: one channel
            patches, texture, _ = patches_and_texture(channel[None], patch_size)
            pooled.append(patches)
            textures.append(texture)
    patches, texture = torch.cat(pooled), torch.cat(textures)
    threshold = noise_texture_threshold(1, patch_size)
    means = patches.mean(1)
    levels, variances, weights = [], [], []
    for group in torch.argsort(means).chunk(bins):
        # within a group of similar brightness the noise is (nearly) homoscedastic: one weak-texture pass as in
        # the Gaussian estimator; a group that is mostly texture is trusted less (weight by the kept fraction)
        selected = group[texture[group] < noise_variance_from_patches(patches[group]) * threshold]
        if selected.numel() < MIN_PATCHES_PER_DIMENSION * patches.shape[1]:
            continue
        levels.append(float(means[selected].mean()))
        variances.append(noise_variance_from_patches(patches[selected]))
        weights.append(selected.numel() ** 2 / group.numel())
    if len(levels) < 3:
        raise ImageError("too few flat patches to fit the Poisson-Gaussian noise: give --gain and --noise-level")
    levels, variances, weights = (torch.tensor(v, dtype=torch.float64) for v in (levels, variances, weights))
    # scale-free: 16-bit data of a few photons span a thousandth of the range, and their levels still separate
    if float(levels.max() - levels.min()) < float(variances.min().clamp(min=0)) ** 0.5:
        raise ImageError("the measurements' flat regions all have the same intensity, so the Poisson "
                         "(signal-dependent) and Gaussian parts of the noise cannot be told apart: give --gain and --noise-level")
    design = torch.stack([levels, torch.ones_like(levels)], 1) * weights.sqrt()[:, None]
    gain, variance = torch.linalg.lstsq(design, variances * weights.sqrt()).solution.tolist()
    if gain <= 0:
        raise ImageError(f"the noise variance does not grow with intensity (fitted gain {gain:.3g}): the noise looks "
                         "Gaussian; use --noise gaussian, or give --gain")
    return NoiseEstimate(sigma=max(variance, 0.0) ** 0.5, gain=float(gain))



def estimate_spec_noise(spec, measurements: Sequence[torch.Tensor]):
    """``spec`` with its ``"auto"`` noise level (and gain) replaced by estimates from ``measurements``.

    :param spec: a resolved :class:`~sei.physics.spec.PhysicsSpec`; returned unchanged if nothing is ``"auto"``.
    :param measurements: ``(C, H, W)`` measurements in [0, 1] units, or ``(C, D, H, W)`` volumes, whose planes are
        estimated on as images (the noise is independent from voxel to voxel).
    :return: a copy with numbers and ``noise_source="estimated"`` (``"learned"`` for ``"learn"``: the estimate is
        where the learned level starts).
    :raises ImageError: when the noise cannot be estimated (constant or too small images, see above).
    """
    import dataclasses

    from sei.physics.spec import ESTIMATED, LEARNED

    if not spec.needs_estimate:
        return spec
    measurements = [plane for y in measurements for plane in (y.unbind(1) if y.ndim == 4 else (y,))]
    if spec.noise == "poisson-gaussian":
        estimate = estimate_poisson_gaussian(measurements)
        gain = float(f"{estimate.gain:.4g}") if spec.gain == ESTIMATED else spec.gain
    else:
        estimate, gain = estimate_gaussian(measurements), spec.gain
    level = float(f"{estimate.noise_level:.4g}") if spec.noise_level in (ESTIMATED, LEARNED) else spec.noise_level
    source = "learned" if spec.noise_level == LEARNED else "estimated"
    return dataclasses.replace(spec, noise_level=level, gain=gain, noise_source=source)
