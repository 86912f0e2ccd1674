"""A small, fast convolutional backbone: a residual U-Net for deblurring and super-resolution.

SEI needs a network whose receptive field covers the blur (13x13 px for Gaussian_R2, 19x19 for R3) and
which trains usefully on a laptop CPU. Two down-samplings give a receptive field of several tens of pixels at
a fraction of SwinIR's cost. For super-resolution the U-Net runs at the measurement resolution and a
pixel-shuffle head adds the high-resolution detail to a bicubic enlargement of the input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sei.core.errors import ConfigError

__all__ = ["STRIP", "ResidualBlock", "UNet"]

# Border strips of inputs whose size is not a multiple of the U-Net's (UNet._aligned_detail): wider than the reach of
# an artificial border into the output (a few pixels for unet-small).
STRIP = 64


class ResidualBlock(nn.Module):
    """``x + conv(relu(conv(x)))`` at constant width."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x), inplace=True))


def _stage(channels: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(*(ResidualBlock(channels) for _ in range(blocks)))


class UNet(nn.Module):
    """Residual U-Net ``(B, C, h, w) -> (B, C, h r, w r)`` for any input size.

    :param upscale: 1 for deblurring, r >= 2 for x r super-resolution.
    :param in_chans: image channels.
    :param width: channels at full resolution, doubled at each level.
    :param levels: number of 2x down-samplings.
    :param blocks: residual blocks per stage.
    :param condition_channels: per-image values given to ``forward`` as constant extra input channels (e.g. a
        noise level, as in DRUNet); 0 for none.
    """

    def __init__(self, upscale: int = 1, in_chans: int = 3, width: int = 32, levels: int = 2, blocks: int = 2,
                 condition_channels: int = 0) -> None:
        super().__init__()
        if upscale < 1 or levels < 0 or blocks < 1 or width < 1:
            raise ConfigError(f"invalid U-Net settings: upscale={upscale}, width={width}, levels={levels}, blocks={blocks}")
        self.upscale = upscale
        self.levels = levels
        widths = [width * 2**level for level in range(levels + 1)]
        self.head = nn.Conv2d(in_chans + condition_channels, width, 3, padding=1)
        self.encoders = nn.ModuleList(_stage(widths[level], blocks) for level in range(levels))
        self.downs = nn.ModuleList(nn.Conv2d(widths[level], widths[level + 1], 3, stride=2, padding=1)
                                   for level in range(levels))
        self.bottleneck = _stage(widths[levels], blocks)
        self.ups = nn.ModuleList(nn.ConvTranspose2d(widths[level + 1], widths[level], 2, stride=2)
                                 for level in range(levels))
        self.decoders = nn.ModuleList(_stage(widths[level], blocks) for level in range(levels))
        self.tail = nn.Conv2d(width, in_chans * upscale**2, 3, padding=1)
        self.shuffle = nn.PixelShuffle(upscale) if upscale > 1 else nn.Identity()
        # Start as the identity (deblurring) or bicubic enlargement (SR): training refines a sensible estimate.
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    @property
    def size_multiple(self) -> int:
        """Input sizes that are multiples of this are computed without padding."""
        return 2**self.levels

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """:param condition: ``(B, condition_channels)`` values, each given as a constant input channel."""
        detail = self._aligned_detail(x, condition)
        if self.upscale == 1:
            return x + detail
        base = F.interpolate(x, scale_factor=self.upscale, mode="bicubic", align_corners=False)
        return base + detail

    def _aligned_detail(self, x: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        """The detail of an input of any size, computed on windows whose sizes are multiples of
        :attr:`size_multiple`.

        Padding the input to such a size would put an artificial border in the image: a mirror's kink, which a
        deblurring network sharpens into a spike (up to 130 grey levels on the last column of a 409 px wide
        photograph). Instead the largest aligned window at the top left gives most of the image, and strips of
        :data:`STRIP` px (also aligned) anchored at the right and bottom borders give the last few columns and rows.
        Inputs smaller than one multiple are padded.
        """
        height, width = x.shape[-2:]
        multiple = self.size_multiple
        aligned_h, aligned_w = height - height % multiple, width - width % multiple
        if (aligned_h, aligned_w) == (height, width) or not (aligned_h and aligned_w):
            return self._padded_detail(x, condition)
        strip_h, strip_w = min(aligned_h, self.strip), min(aligned_w, self.strip)
        extra_h, extra_w = (height - aligned_h) * self.upscale, (width - aligned_w) * self.upscale
        top = [self._padded_detail(x[..., :aligned_h, :aligned_w], condition)]
        if extra_w:
            top.append(self._padded_detail(x[..., :aligned_h, width - strip_w:], condition)[..., -extra_w:])
        rows = [torch.cat(top, dim=-1)]
        if extra_h:
            bottom = [self._padded_detail(x[..., height - strip_h:, :aligned_w], condition)[..., -extra_h:, :]]
            if extra_w:
                corner = self._padded_detail(x[..., height - strip_h:, width - strip_w:], condition)
                bottom.append(corner[..., -extra_h:, -extra_w:])
            rows.append(torch.cat(bottom, dim=-1))
        return torch.cat(rows, dim=-2)

    @property
    def strip(self) -> int:
        """Width of the border strips of :meth:`_aligned_detail`: beyond the receptive field's reach that matters,
        aligned to :attr:`size_multiple`."""
        return -(-STRIP // self.size_multiple) * self.size_multiple

    def _padded_detail(self, x: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        height, width = x.shape[-2:]
        multiple = self.size_multiple
        pad_h, pad_w = (-height) % multiple, (-width) % multiple
        features = x
        if pad_h or pad_w:
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"
            features = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        if condition is not None:
            maps = condition.to(features.dtype).reshape(*condition.shape[:2], 1, 1)
            features = torch.cat([features, maps.expand(-1, -1, *features.shape[-2:])], dim=1)
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
        return detail[..., : height * self.upscale, : width * self.upscale]
