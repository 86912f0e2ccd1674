"""The paper's backbone: SwinIR (embed 180, 6 x 6 blocks, 6 heads, window 8, mlp ratio 2, '1conv').

Built on ``deepinv.models.SwinIR`` without any download, so its ``state_dict`` keys are exactly those of the
original SwinIR, the format of the authors' published weights. What this module changes, none of it touching
the parameters or their names:

- inputs of any size: computed on windows whose sizes are multiples of the attention window
  (:func:`sei.models.windows.apply_aligned`), not padded (a padded border is sharpened into spikes); only inputs
  smaller than one window are padded, by replication;
- fused window attention on GPUs: ``torch.nn.functional.scaled_dot_product_attention`` with the
  relative-position bias and the shift mask as an additive mask, instead of materialising and keeping the
  attention matrices (same numbers up to float rounding, less memory, faster);
- attention masks for sizes other than the training size computed once per size and shared by all shifted
  blocks (deepinv recomputes one per block per call);
- optional activation checkpointing per Swin block (``checkpointing=True``): a training step keeps only the
  blocks' inputs and recomputes the rest during the backward pass, trading about a third more compute for a
  several-fold smaller memory peak; ``checkpointing="alternate"`` recomputes every other block only (half the
  recomputation, about half the activations kept).
"""

from __future__ import annotations

import warnings

import deepinv
import torch
import torch.nn.functional as F
from deepinv.models.swinir import SwinTransformerBlock, WindowAttention
from torch.utils.checkpoint import checkpoint

from sei.core.defaults import CHECKPOINTING, PAPER_SWINIR
from sei.core.errors import ConfigError
from sei.models.windows import apply_aligned
from sei.physics.base import SizeCache

__all__ = ["CHECKPOINTING", "PAPER_SWINIR", "CachedMaskBlock", "fused_window_attention", "FusedWindowAttention",
           "SwinIR"]

# CHECKPOINTING (the values of SwinIR's checkpointing parameter) and PAPER_SWINIR (the paper's architecture) are
# sei.core.defaults' (imported above: the backbone registry lists them without importing deepinv).


def fused_window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor,
                           mask: torch.Tensor | None, scale: float) -> torch.Tensor:
    """Window attention ``softmax(q k^T scale + bias + mask) v`` by ``scaled_dot_product_attention``.

    :param q, k, v: ``(W, heads, N, d)``: ``W = B nW`` windows (image-major), ``N`` tokens per window.
    :param bias: ``(heads, N, N)`` relative-position bias.
    :param mask: ``(nW, N, N)`` shifted-window mask (0 or -100), one per window position, or ``None``.
    :return: ``(W, heads, N, d)``.

    The memory-efficient and flash kernels need 4-D inputs, a head size that is a multiple of 8 and a bias that
    broadcasts over the batch only; the paper's SwinIR has 30 channels per head and a mask per window position,
    which sent PyTorch to its unfused path (measured on an H100: the same peak memory as without fusion). So the
    head size is zero-padded (q k^T and the first d outputs are unchanged) and the windows of an image become
    heads, so that bias and mask broadcast over images. The fused kernels also need every input, the additive
    mask included, to be contiguous in its last dimension; the relative-position bias, gathered from its table
    and permuted to heads first, is not, so it is copied (``heads x N x N`` values, once per call).
    """
    windows, heads, tokens, size = q.shape
    padding = -size % 8
    if padding:
        q, k, v = (F.pad(t, (0, padding)) for t in (q, k, v))
    bias = bias.to(q.dtype).contiguous()
    if mask is None:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.unsqueeze(0), scale=scale)
    else:
        per_image = mask.shape[0]
        bias = (bias.unsqueeze(0) + mask.to(q.dtype).unsqueeze(1)).reshape(1, per_image * heads, tokens, tokens)
        images = (windows // per_image, per_image * heads, tokens, size + padding)
        out = F.scaled_dot_product_attention(q.reshape(images), k.reshape(images), v.reshape(images),
                                             attn_mask=bias, scale=scale).reshape(windows, heads, tokens, -1)
    return out[..., :size] if padding else out


class FusedWindowAttention(WindowAttention):
    """deepinv's window attention computed by :func:`fused_window_attention` on GPUs (same parameters).

    On a CPU the learnable relative-position bias makes PyTorch fall back to its unfused "math" attention, which
    is slower than deepinv's own code (measured: 5.4 s against 5.2 s for a batch-4 forward and backward), so CPU
    inputs take deepinv's path.
    """

    def relative_bias(self) -> torch.Tensor:
        """``(heads, N, N)`` relative-position bias, ``N`` tokens per window."""
        tokens = self.window_size[0] * self.window_size[1]
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(tokens, tokens, -1).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if x.device.type == "cpu":
            return super().forward(x, mask)
        windows, tokens, channels = x.shape
        heads = self.num_heads
        qkv = self.qkv(x).reshape(windows, tokens, 3, heads, channels // heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        out = fused_window_attention(q, k, v, self.relative_bias(), mask, self.scale)
        return self.proj(out.transpose(1, 2).reshape(windows, tokens, channels))


class CachedMaskBlock(SwinTransformerBlock):
    """deepinv's Swin block whose masks for new input sizes come from a cache shared by the model."""

    mask_cache: SizeCache | None = None

    # Looked up eagerly under torch.compile: a compiled block then neither guards on the shared cache's contents
    # nor breaks inside it (``sei.models.compilation``).
    @torch.compiler.disable
    def calculate_mask(self, x_size):
        device = self.attn.relative_position_bias_table.device
        if self.mask_cache is None:
            return super().calculate_mask(x_size).to(device)
        key = (tuple(x_size), self.window_size, self.shift_size, device)
        return self.mask_cache.get(key, lambda: super(CachedMaskBlock, self).calculate_mask(x_size).to(device))


class SwinIR(deepinv.models.SwinIR):
    """deepinv's SwinIR for inputs of any size, with fused attention and optional activation checkpointing.

    :param upscale: 1 for deblurring (no upsampler), r >= 2 for x r super-resolution (pixel-shuffle upsampler).
    :param drop_path_rate: stochastic depth; 0 by default so that every random draw of a training run is
        explicit (stochastic depth would draw from PyTorch's global generator).
    :param fused_attention: compute window attention with ``scaled_dot_product_attention``.
    :param checkpointing: recompute each block's activations in the backward pass instead of keeping them: True
        (or ``"blocks"``) for every Swin block, ``"alternate"`` for every other one, False for none.
    :param options: any other ``deepinv.models.SwinIR`` argument, overriding the paper's configuration.
    """

    def __init__(self, upscale: int = 1, in_chans: int = 3, drop_path_rate: float = 0.0, fused_attention: bool = True,
                 checkpointing: bool | str = False, **options) -> None:
        if upscale < 1:
            raise ConfigError(f"SwinIR upscale must be >= 1, got {upscale}")
        config = dict(PAPER_SWINIR)
        config.update(options)
        config.update(in_chans=in_chans, upscale=upscale, upsampler="pixelshuffle" if upscale > 1 else "",
                      drop_path_rate=drop_path_rate, pretrained=None)
        with warnings.catch_warnings():  # deepinv's SwinIR calls torch.meshgrid without `indexing`
            warnings.filterwarnings("ignore", message=".*torch.meshgrid.*")
            super().__init__(**config)
        if checkpointing not in CHECKPOINTING:
            raise ConfigError(f"SwinIR checkpointing must be one of {CHECKPOINTING}, got {checkpointing!r}")
        self.checkpointing = checkpointing
        self.fused_attention = fused_attention
        masks = SizeCache(capacity=8)
        for module in self.modules():
            # Swapping classes (both subclasses add no parameters) keeps every state-dict key unchanged.
            if type(module) is WindowAttention and fused_attention:
                module.__class__ = FusedWindowAttention
            elif type(module) is SwinTransformerBlock:
                module.__class__ = CachedMaskBlock
                module.mask_cache = masks

    @property
    def size_multiple(self) -> int:
        """Input sizes that are multiples of this (the window) are computed without padding."""
        return self.window_size

    def forward(self, x: torch.Tensor, sigma: float | None = None, **kwargs) -> torch.Tensor:
        """``(B, C, H, W)`` of any size to ``(B, C, upscale H, upscale W)``."""
        return apply_aligned(super().forward, x, self.window_size, self.upscale)

    def check_img_size(self, x: torch.Tensor) -> torch.Tensor:
        """Pad an input smaller than one window (the only inputs :meth:`forward` gives unaligned) by replication."""
        height, width = x.shape[-2:]
        pad_h, pad_w = (-height) % self.window_size, (-width) % self.window_size
        return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # deepinv's loop over residual Swin transformer blocks (RSTB), unrolled down to the Swin blocks so that
        # each can be checkpointed (non-reentrant, which also composes with torch.compile).
        x_size = (x.shape[2], x.shape[3])
        x = self.patch_embed(x)
        if self.ape:
            x = x + self.absolute_pos_embed
        x = self.pos_drop(x)
        stride = {True: 1, "blocks": 1, "alternate": 2}.get(self.checkpointing) if torch.is_grad_enabled() else None
        index = 0
        for layer in self.layers:
            shortcut = x
            for block in layer.residual_group.blocks:
                recompute = stride is not None and index % stride == 0
                x = checkpoint(block, x, x_size, use_reentrant=False) if recompute else block(x, x_size)
                index += 1
            x = layer.patch_embed(layer.conv(layer.patch_unembed(x, x_size))) + shortcut
        x = self.norm(x)
        return self.patch_unembed(x, x_size)
