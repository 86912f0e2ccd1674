"""The paper's backbone: SwinIR (embed 180, 6 x 6 blocks, 6 heads, window 8, mlp ratio 2, '1conv').

Built on ``deepinv.models.SwinIR`` without any download, so its ``state_dict`` keys are exactly those of
the original SwinIR, the format of the authors' published weights. The subclass only changes how inputs
are padded to the window multiple: the original reflects, which fails for inputs smaller than half a
window; we reflect when possible and replicate otherwise.
"""

from __future__ import annotations

import warnings

import deepinv
import torch
import torch.nn.functional as F

from sei.errors import ConfigError

PAPER_SWINIR = dict(
    img_size=48,
    patch_size=1,
    in_chans=3,
    embed_dim=180,
    depths=(6, 6, 6, 6, 6, 6),
    num_heads=(6, 6, 6, 6, 6, 6),
    window_size=8,
    mlp_ratio=2.0,
    resi_connection="1conv",
)


class SwinIR(deepinv.models.SwinIR):
    """deepinv's SwinIR accepting inputs of any size (padded to the window multiple and cropped back).

    :param upscale: 1 for deblurring (no upsampler), r >= 2 for x r super-resolution (pixel-shuffle upsampler).
    :param drop_path_rate: stochastic depth; 0 by default so that every random draw of a training run is
        explicit (stochastic depth would draw from PyTorch's global generator).
    :param options: any other ``deepinv.models.SwinIR`` argument, overriding the paper's configuration.
    """

    def __init__(self, upscale: int = 1, in_chans: int = 3, drop_path_rate: float = 0.0, **options) -> None:
        if upscale < 1:
            raise ConfigError(f"SwinIR upscale must be >= 1, got {upscale}")
        config = dict(PAPER_SWINIR)
        config.update(options)
        config.update(in_chans=in_chans, upscale=upscale, upsampler="pixelshuffle" if upscale > 1 else "",
                      drop_path_rate=drop_path_rate, pretrained=None)
        with warnings.catch_warnings():  # deepinv's SwinIR calls torch.meshgrid without `indexing`
            warnings.filterwarnings("ignore", message=".*torch.meshgrid.*")
            super().__init__(**config)

    def check_img_size(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_h = (-height) % self.window_size
        pad_w = (-width) % self.window_size
        if pad_h == 0 and pad_w == 0:
            return x
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
