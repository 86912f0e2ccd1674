"""Image preprocessing shared by every dataset."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["resize_shorter_side"]


def resize_shorter_side(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``(C, H, W)`` so that its shorter side is ``size`` px (bicubic, antialiased), keeping the aspect.

    The longer side becomes ``int(size * long / short)``, as torchvision's ``Resize(size)`` computes it.
    Values are not clamped, as in the paper's pipeline.
    """
    height, width = image.shape[-2:]
    if min(height, width) == size:
        return image
    if height <= width:
        target = (size, int(size * width / height))
    else:
        target = (int(size * height / width), size)
    return F.interpolate(image[None], size=target, mode="bicubic", antialias=True, align_corners=False)[0]
