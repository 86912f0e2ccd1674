"""Image preprocessing shared by every dataset."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["resize_shorter_side"]


def resize_shorter_side(image: torch.Tensor, size: int, name: str = "image",
                        max_pixels: int | None = None) -> torch.Tensor:
    """Resize ``(C, H, W)`` so that its shorter side is ``size`` px (bicubic, antialiased), keeping the aspect.

    The longer side becomes ``int(size * long / short)``, as torchvision's ``Resize(size)`` computes it.
    Values are not clamped, as in the paper's pipeline.

    :param max_pixels: the image-size policy's bound on the result (:func:`sei.io.images.check_pixel_count`),
        checked before anything is allocated.
    :raises ImageError: when the resized image would exceed it.
    """
    from sei.io.images import check_pixel_count

    height, width = image.shape[-2:]
    if min(height, width) == size:
        return image
    if height <= width:
        target = (size, int(size * width / height))
    else:
        target = (int(size * height / width), size)
    check_pixel_count(target[0] * target[1], f"{name} resized to a shorter side of {size} px", max_pixels)
    return F.interpolate(image[None], size=target, mode="bicubic", antialias=True, align_corners=False)[0]
