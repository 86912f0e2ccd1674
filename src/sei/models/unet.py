"""A small, fast convolutional backbone: a residual U-Net for deblurring and super-resolution.

SEI needs a network whose receptive field covers the blur (13x13 px for Gaussian_R2, 19x19 for R3) and
which trains usefully on a laptop CPU. Two down-samplings give a receptive field of several tens of pixels at
a fraction of SwinIR's cost. For super-resolution the U-Net runs at the measurement resolution and a
pixel-shuffle head adds the high-resolution detail to a bicubic enlargement of the input; for the axial
super-resolution of volumes the head shuffles channels into planes, over a cubic interpolation along z
(:mod:`sei.core.scaling`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sei.core.checks import check_image_batch
from sei.core.errors import ConfigError
from sei.core.scaling import interpolate_up, scale_factors
from sei.models.windows import apply_aligned

__all__ = ["CONVOLUTIONS", "PlaneShuffle", "ResidualBlock", "UNet"]


# Convolutions by number of spatial dimensions: images, volumes.
CONVOLUTIONS = {2: (nn.Conv2d, nn.ConvTranspose2d), 3: (nn.Conv3d, nn.ConvTranspose3d)}


class ResidualBlock(nn.Module):
    """``x + conv(relu(conv(x)))`` at constant width (3x3, or 3x3x3 for volumes)."""

    def __init__(self, channels: int, spatial_dims: int = 2) -> None:
        super().__init__()
        convolution = CONVOLUTIONS[spatial_dims][0]
        self.conv1 = convolution(channels, channels, 3, padding=1)
        self.conv2 = convolution(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x), inplace=True))


class PlaneShuffle(nn.Module):
    """``(B, C r, d, h, w) -> (B, C, d r, h, w)``: channel ``c r + i`` becomes plane ``i`` of each group of ``r``
    (PixelShuffle's rearrangement, along z only).

    >>> PlaneShuffle(3)(torch.arange(6.0).reshape(1, 6, 1, 1, 1)).flatten().tolist()
    [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    """

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, depth, height, width = x.shape
        grouped = x.reshape(batch, channels // self.factor, self.factor, depth, height, width)
        return grouped.transpose(2, 3).reshape(batch, channels // self.factor, depth * self.factor, height, width)


def _stage(channels: int, blocks: int, spatial_dims: int) -> nn.Sequential:
    return nn.Sequential(*(ResidualBlock(channels, spatial_dims) for _ in range(blocks)))


class UNet(nn.Module):
    """Residual U-Net ``(B, C, h, w) -> (B, C, h r, w r)`` for any input size; with ``spatial_dims=3``, for
    ``(B, C, d, h, w)`` volumes, ``-> (B, C, d r, h, w)``.

    :param upscale: 1 for deblurring, r >= 2 for x r super-resolution (of volumes: along z).
    :param in_chans: image channels.
    :param width: channels at full resolution, doubled at each level.
    :param levels: number of 2x down-samplings.
    :param blocks: residual blocks per stage.
    :param condition_channels: per-image values given to ``forward`` as constant extra input channels (e.g. a
        noise level, as in DRUNet); 0 for none.
    :param spatial_dims: 2 for images, 3 for volumes.
    """

    def __init__(self, upscale: int = 1, in_chans: int = 3, width: int = 32, levels: int = 2, blocks: int = 2,
                 condition_channels: int = 0, spatial_dims: int = 2) -> None:
        super().__init__()
        if upscale < 1 or levels < 0 or blocks < 1 or width < 1 or spatial_dims not in CONVOLUTIONS:
            raise ConfigError(f"invalid U-Net settings: upscale={upscale}, width={width}, levels={levels}, "
                              f"blocks={blocks}, spatial_dims={spatial_dims}")
        self.upscale = upscale
        self.factors = scale_factors(upscale, spatial_dims)
        self.levels = levels
        self.spatial_dims = spatial_dims
        convolution, transposed = CONVOLUTIONS[spatial_dims]
        widths = [width * 2**level for level in range(levels + 1)]
        self.head = convolution(in_chans + condition_channels, width, 3, padding=1)
        self.encoders = nn.ModuleList(_stage(widths[level], blocks, spatial_dims) for level in range(levels))
        self.downs = nn.ModuleList(convolution(widths[level], widths[level + 1], 3, stride=2, padding=1)
                                   for level in range(levels))
        self.bottleneck = _stage(widths[levels], blocks, spatial_dims)
        self.ups = nn.ModuleList(transposed(widths[level + 1], widths[level], 2, stride=2)
                                 for level in range(levels))
        self.decoders = nn.ModuleList(_stage(widths[level], blocks, spatial_dims) for level in range(levels))
        self.tail = convolution(width, in_chans * math.prod(self.factors), 3, padding=1)
        shuffle = nn.PixelShuffle(upscale) if spatial_dims == 2 else PlaneShuffle(upscale)
        self.shuffle = shuffle if upscale > 1 else nn.Identity()
        # Start as the identity (deblurring) or a cubic enlargement (SR): training refines a sensible estimate.
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    @property
    def size_multiple(self) -> int:
        """Input sizes that are multiples of this are computed without padding."""
        return 2**self.levels

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """:param condition: ``(B, condition_channels)`` values, each given as a constant input channel."""
        # Windows of aligned sizes: padding would put a border in the image (sei.models.windows).
        check_image_batch(x, "the U-Net's input", self.spatial_dims)
        detail = apply_aligned(lambda window: self._padded_detail(window, condition), x, self.size_multiple,
                               self.upscale, spatial_dims=self.spatial_dims)
        return interpolate_up(x, self.upscale) + detail

    def _padded_detail(self, x: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        sizes = x.shape[-self.spatial_dims:]
        pads = [(-n) % self.size_multiple for n in sizes]
        features = x
        if any(pads):
            mode = "reflect" if all(pad < n for pad, n in zip(pads, sizes)) else "replicate"
            features = F.pad(x, [amount for pad in reversed(pads) for amount in (0, pad)], mode=mode)
        if condition is not None:
            maps = condition.to(features.dtype).reshape(*condition.shape[:2], *[1] * self.spatial_dims)
            features = torch.cat([features, maps.expand(-1, -1, *features.shape[2:])], dim=1)
        features = self.head(features)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            features = encoder(features)
            skips.append(features)
            features = down(features)
        features = self.bottleneck(features)
        for level in reversed(range(self.levels)):
            features = self.decoders[level](self.ups[level](features) + skips[level])
        detail = self.shuffle(self.tail(features))
        return detail[(..., *(slice(0, n * f) for n, f in zip(sizes, self.factors)))]
