"""Image channels and network channels: grayscale data trains a 1-channel network, and any network restores any image.

The rule, in one place:

- **training**: a set whose every image is grayscale (one channel, or three equal ones, as grayscale files are read)
  trains a 1-channel backbone; any colour image makes it 3 channels. A grayscale measurement repeated to three
  channels would also repeat its noise, which SURE takes for three independent draws.
- **inference** (:func:`apply_by_channels`): a 1-channel network restores each channel of a colour image as its own
  grayscale image; a 3-channel network restores a grayscale image repeated to RGB and averaged back. Alpha is set
  aside before (see :mod:`sei.inference.restoration`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from sei.core.errors import ConfigError, ShapeError

__all__ = ["NETWORK_CHANNELS", "apply_by_channels", "dataset_channels", "is_grayscale", "luma", "to_channels",
           "training_channels"]

NETWORK_CHANNELS = (1, 3)


def is_grayscale(image: torch.Tensor) -> bool:
    """Whether a ``(C, H, W)`` image is grayscale: one channel, or channels that are all equal."""
    return image.shape[0] == 1 or bool((image == image[:1]).all())


def dataset_channels(images: Sequence[torch.Tensor]) -> int:
    """1 when every ``(C, H, W)`` image is grayscale, else 3."""
    return 1 if all(is_grayscale(image) for image in images) else 3


def to_channels(image: torch.Tensor, channels: int, colour_to_luma: bool = False) -> torch.Tensor:
    """A ``(C, H, W)`` image (or ``(C, D, H, W)`` volume) with ``channels`` channels: grayscale kept as one channel or
    repeated to three.

    :param colour_to_luma: a colour image asked for as one channel becomes its :func:`luma` (validation images,
        scored on luma anyway) instead of an error.
    :raises ConfigError: for a colour image asked for as one channel (a 1-channel network does not train on
        colour; say ``--channels 3``).
    """
    if channels not in NETWORK_CHANNELS:
        raise ConfigError(f"networks take 1 (grayscale) or 3 (RGB) channels, got {channels}")
    if channels == 3:
        return image if image.shape[0] == 3 else image[:1].expand(3, *image.shape[1:]).contiguous()
    if not is_grayscale(image):
        if colour_to_luma:
            return luma(image)
        raise ConfigError("a 1-channel network trains on grayscale images, and this set holds colour ones; "
                          "use --channels 3")
    return image[:1].contiguous()


def apply_by_channels(network: Callable[[torch.Tensor], torch.Tensor], y: torch.Tensor,
                      network_channels: int) -> torch.Tensor:
    """``network`` applied to ``(B, C, h, w)`` measurements (or ``(B, C, d, h, w)`` volumes) whatever their channels
    (see the module's rule).

    :return: ``(B, C, H, W)`` (``(B, C, D, H, W)``): as many channels as ``y``.
    :raises ShapeError: for channel counts the rule does not cover.
    """
    channels = y.shape[1]
    if channels == network_channels:
        return network(y)
    if network_channels == 1:
        estimate = network(y.reshape(-1, 1, *y.shape[2:]))  # every channel is a grayscale image
        return estimate.reshape(y.shape[0], channels, *estimate.shape[2:])
    if network_channels == 3 and channels == 1:
        return network(y.expand(-1, 3, *y.shape[2:])).mean(dim=1, keepdim=True)
    raise ShapeError(f"a {network_channels}-channel network cannot restore {channels}-channel images")


def luma(image: torch.Tensor) -> torch.Tensor:
    """The ``(1, H, W)`` luma ``0.299 R + 0.587 G + 0.114 B`` of an RGB image (the metrics' Y); gray unchanged."""
    if image.shape[0] == 1:
        return image
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=image.dtype, device=image.device)
    return (image[:3] * weights[:, None, None]).sum(0, keepdim=True)


def training_channels(dataset: str, images: Sequence[torch.Tensor] | None) -> int:
    """The network channels a training set calls for: 1 when all its images are grayscale, else 3.

    :param dataset: the set's name or folder; named datasets are known (``ct`` is grayscale).
    :param images: a folder's ``(C, H, W)`` images, as read (ignored for named datasets).
    """
    from sei.data.sources import NAMED_DATASETS

    key = str(dataset).strip().lower()
    if key in NAMED_DATASETS:
        return 1 if key == "ct" else 3
    return dataset_channels(images)
