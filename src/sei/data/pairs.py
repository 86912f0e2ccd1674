"""Measurements simulated once per image, and random crop pairs drawn from them reproducibly.

Following the paper's protocol, each clean image gets one fixed measurement whose noise is seeded by the image's
index. Training then draws random ``c x c`` measurement crops (with the matching ``c r x c r`` image crop for x r
super-resolution); of a volume, ``c x c x c`` crops (all its planes when it has fewer than ``c``). The sampler hands
the dataset ``(epoch, sample)`` keys, and each crop's position comes from a generator seeded by (run seed, epoch,
sample): crops are reproducible, a resumed run draws the crops an uninterrupted run would have drawn, and with
several processes each rank draws its own samples of the epoch. A crop may be flipped or turned by one of the
operator's symmetries (:mod:`sei.physics.symmetry`): still a measurement through the same operator, of a flipped or
turned scene.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Dataset, Sampler

from sei.data.sources import ImageSet
from sei.core.defaults import CROP_SAMPLINGS
from sei.core.errors import ConfigError, ImageTooSmallError, ShapeError, UnknownNameError
from sei.core.scaling import decimable, scale_factors
from sei.physics.base import physics_upscale
from sei.physics.noise import measure
from sei.physics.symmetry import dihedral, dihedral_sides
from sei.core.rng import make_generator

__all__ = ["CropDataset", "crop_shape", "EpochSampler", "FullImageDataset", "MeasurementSet", "SIGNAL_SHARE",
           "signal_crop_weights"]

# The share of "signal" crops drawn by the crops' signal; the rest stays uniform, so that the network still sees
# the background it must leave dark.
SIGNAL_SHARE = 0.5


def crop_shape(crop_size: int, spatial_dims: int = 2, depth: int | None = None) -> tuple[int, ...]:
    """The spatial shape of a training crop: ``(c, c)`` of images, ``(min(c, depth), c, c)`` of a volume of
    ``depth`` planes (``(c, c, c)`` when the depth is not known: the largest a crop can be).

    >>> crop_shape(48), crop_shape(32, 3, depth=20)
    ((48, 48), (20, 32, 32))
    """
    if spatial_dims == 3:
        return (crop_size if depth is None else min(crop_size, depth), crop_size, crop_size)
    return (crop_size, crop_size)


class MeasurementSet:
    """Images paired with one fixed measurement each (or measurements alone).

    :param images: clean images (``ground_truth=True``) or measurements.
    :param physics: the operator with its noise model, used to simulate measurements of clean images.
    :param noise_seed: measurement ``i`` uses noise from a generator seeded by ``(noise_seed, i)``.
    :ivar names: image names.
    :ivar measurements: ``(C, h, w)`` tensors (``(C, d, h, w)`` volumes).
    :ivar targets: matching ``(C, h r, w r)`` clean images, or ``None`` for measurement-only sets; clean
        images are cropped at the bottom/right to a multiple of ``r``.
    :ivar cut_sides: the images' :attr:`~sei.data.sources.ImageSet.cut_sides` (empty: no side is cut).
    """

    def __init__(self, images: ImageSet, physics, noise_seed: int = 0) -> None:
        self.name = images.name
        self.names = list(images.names)
        self.upscale = physics_upscale(physics)
        self.cut_sides = list(images.cut_sides)
        if not images.ground_truth:
            self.measurements = list(images.images)
            self.targets = None
            return
        self.measurements, self.targets = [], []
        with torch.no_grad():
            for index, image in enumerate(images.images):
                image = decimable(image, self.upscale).contiguous()
                generator = make_generator("measurement", noise_seed, index)
                measurement = measure(physics, image[None], generator)[0].float()
                self.measurements.append(measurement)
                self.targets.append(image)

    @property
    def has_ground_truth(self) -> bool:
        return self.targets is not None

    def __len__(self) -> int:
        return len(self.measurements)


def signal_crop_weights(y: torch.Tensor, crop_size: int, stride: int) -> torch.Tensor:
    r"""How much signal each crop of a measurement holds: the crop's mean above the image's background.

    .. math:: w(p) = \max\big(\bar y_p - \min_q \bar y_q,\ 0\big)

    where :math:`\bar y_p` is the channel-averaged mean of the ``crop_size`` crop whose top-left corner is grid
    point :math:`p` (every ``stride`` pixels): the darkest crop is the background. A flat image has no signal
    anywhere (all weights zero).

    :param y: ``(C, h, w)`` measurement, ``h, w >= crop_size``.
    :return: ``((h - c) // stride + 1, (w - c) // stride + 1)`` non-negative weights.

    >>> y = torch.zeros(1, 16, 16); y[:, 8:, 8:] = 1.0
    >>> signal_crop_weights(y, 8, 4)
    tensor([[0.0000, 0.0000, 0.0000],
            [0.0000, 0.2500, 0.5000],
            [0.0000, 0.5000, 1.0000]])
    """
    means = torch.nn.functional.avg_pool2d(y.float().mean(0)[None, None], crop_size, stride)[0, 0]
    return (means - means.min()).clamp(min=0)


class CropDataset(Dataset):
    """Random crops of a :class:`MeasurementSet`, addressed by ``(epoch, sample)`` keys.

    Sample ``k`` of an epoch is a crop of image ``k mod N`` (``N`` usable images); ``samples_per_epoch``
    defaults to ``N`` (one crop per image per epoch, as in the paper), and to at least ``minimum_samples``. Images smaller than the crop are
    left out with a warning.

    ``sampling="uniform"`` draws every position alike; ``"signal"`` draws a crop with probability
    :data:`SIGNAL_SHARE` from a grid (every ``crop_size // 8`` pixels) weighted by :func:`signal_crop_weights`, then
    jittered within its grid cell, and otherwise uniformly: for sparse structures on a dark field, on which uniform
    crops spend most steps (it measured no gain on fluorescence images of which a fifth to a half is structure).

    A volume's crop is :func:`crop_shape` (its depth drawn like a row), and its signal weights are those of its
    mean along z.

    ``symmetries`` (indices of :func:`sei.physics.symmetry.dihedral`, which the operator must commute with: see
    :func:`sei.physics.symmetry.operator_symmetries`) transforms each crop, its image crop and its borders alike by one
    of them drawn uniformly: ``T y = A (T x) + T e`` with white noise, a measurement of the turned or flipped scene
    through the same operator, so the network sees as many orientations of the scene as the operator allows (a single
    stack otherwise offers one; a network trained on it alone did worse on its flipped copies). The default, the
    identity alone, draws nothing.

    :return: items ``{"y": (C, c, c), "borders": (2, 2)}`` plus ``"x": (C, c r, c r)`` when the set has ground truth
        (``(C, d, c, c)`` and ``(3, 2)`` for volumes); ``borders`` says which ``(start, end)`` side of the crop along
        each axis is its measurement's own border (not a cut through a larger image: ``cut_sides``), where SURE
        keeps its margin in (:func:`sei.physics.base.sure_exact_sides`).
    """

    def __init__(self, measurements: MeasurementSet, crop_size: int, seed: int = 0,
                 samples_per_epoch: int | None = None, minimum_samples: int = 0, sampling: str = "uniform",
                 symmetries: Sequence[int] = (0,)) -> None:
        if crop_size < 1:
            raise ShapeError(f"crop size must be positive, got {crop_size}")
        if not symmetries:
            raise ConfigError("crops need at least one transform (0, the identity, alone draws none)")
        if sampling not in CROP_SAMPLINGS:
            raise UnknownNameError("crop sampling", sampling, CROP_SAMPLINGS)
        self.data = measurements
        self.crop_size = crop_size
        self.seed = seed
        self.symmetries = tuple(int(index) for index in symmetries)
        self.usable = [i for i, y in enumerate(measurements.measurements)
                       if y.shape[-2] >= crop_size and y.shape[-1] >= crop_size]
        too_small = [measurements.names[i] for i in range(len(measurements)) if i not in set(self.usable)]
        if not self.usable:
            raise ImageTooSmallError(
                f"every measurement of {measurements.name} is smaller than the {crop_size}x{crop_size} crop "
                f"(e.g. {measurements.names[0]}: {tuple(measurements.measurements[0].shape[-2:])}); "
                "use a smaller --crop-size")
        if too_small:
            warnings.warn(f"{len(too_small)} image(s) of {measurements.name} are smaller than the "
                          f"{crop_size}x{crop_size} crop and are left out: {', '.join(too_small[:5])}", stacklevel=2)
        self.samples_per_epoch = samples_per_epoch or max(len(self.usable), minimum_samples)
        self.stride = max(1, crop_size // 8)
        # per usable image, its crops' signal weights; None where it has none (a flat image: uniform crops)
        self.weights: dict[int, torch.Tensor | None] = {}
        if sampling == "signal":
            for i in self.usable:
                y = measurements.measurements[i]
                weights = signal_crop_weights(y.mean(1) if y.ndim == 4 else y, crop_size, self.stride).flatten()
                self.weights[i] = weights if weights.sum() > 0 else None

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, sample = key
        index = self.usable[sample % len(self.usable)]
        y = self.data.measurements[index]
        generator = make_generator(self.seed, "crop", epoch, sample)
        top, left = self._position(index, y.shape[-2:], generator)
        planes = slice(None)
        if y.ndim == 4:  # a volume: its planes too (after the lateral draw, so images draw as before)
            depth = crop_shape(self.crop_size, 3, y.shape[1])[0]
            front = int(torch.randint(0, y.shape[1] - depth + 1, (1,), generator=generator))
            planes = slice(front, front + depth)
        item = {"y": y[:, planes, top:top + self.crop_size, left:left + self.crop_size] if y.ndim == 4
                else y[:, top:top + self.crop_size, left:left + self.crop_size]}
        corner = (planes.start, top, left) if y.ndim == 4 else (top, left)
        extent = item["y"].shape[1:]
        cut = self.data.cut_sides[index] if self.data.cut_sides else ((False, False),) * len(corner)
        item["borders"] = torch.tensor([(start == 0 and not cut_start, start + n == whole and not cut_end)
                                        for start, n, whole, (cut_start, cut_end)
                                        in zip(corner, extent, y.shape[1:], cut)])
        if self.data.has_ground_truth:
            factors = scale_factors(self.data.upscale, len(corner))
            target = self.data.targets[index]
            item["x"] = target[(slice(None), *(slice(s * f, (s + n) * f) for s, n, f in zip(corner, extent, factors)))]
        if len(self.symmetries) > 1:  # drawn last, so that the crops themselves are those drawn without it
            turn = self.symmetries[int(torch.randint(0, len(self.symmetries), (1,), generator=generator))]
            item = {key: dihedral_sides(value, turn) if key == "borders" else dihedral(value, turn).contiguous()
                    for key, value in item.items()}
        return item

    def _position(self, index: int, shape: torch.Size, generator: torch.Generator) -> tuple[int, int]:
        """The top-left corner of a crop of image ``index`` (``shape``: its height and width)."""
        last_top, last_left = shape[0] - self.crop_size, shape[1] - self.crop_size
        weights = self.weights.get(index)
        if weights is not None and float(torch.rand((), generator=generator)) < SIGNAL_SHARE:
            cell = int(torch.multinomial(weights, 1, generator=generator))
            columns = last_left // self.stride + 1
            jitter = torch.randint(0, self.stride, (2,), generator=generator).tolist()
            return (min((cell // columns) * self.stride + jitter[0], last_top),
                    min((cell % columns) * self.stride + jitter[1], last_left))
        top = int(torch.randint(0, last_top + 1, (1,), generator=generator))
        left = int(torch.randint(0, last_left + 1, (1,), generator=generator))
        return top, left


class EpochSampler(Sampler):
    """Yields ``(epoch, sample)`` keys: a fresh permutation of the epoch's samples, sharded across ranks.

    Lightning calls :meth:`set_epoch` at each epoch. With ``world_size`` ranks, rank ``r`` takes every
    ``world_size``-th sample of the permutation (wrapping around so all ranks take the same number).
    """

    def __init__(self, samples_per_epoch: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.samples_per_epoch = samples_per_epoch
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.samples_per_epoch / self.world_size)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            order = torch.randperm(self.samples_per_epoch, generator=make_generator(self.seed, "order", self.epoch))
        else:
            order = torch.arange(self.samples_per_epoch)
        total = len(self) * self.world_size
        order = torch.cat([order] * math.ceil(total / self.samples_per_epoch))[:total]
        for sample in order[self.rank::self.world_size].tolist():
            yield (self.epoch, sample)


class FullImageDataset(Dataset):
    """Whole measurements (and clean images) for evaluation: ``{"y", "x"?, "index"}`` per image."""

    def __init__(self, measurements: MeasurementSet) -> None:
        self.data = measurements

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        item: dict[str, torch.Tensor | int] = {"y": self.data.measurements[index], "index": index}
        if self.data.has_ground_truth:
            item["x"] = self.data.targets[index]
        return item
