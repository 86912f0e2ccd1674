"""``torch.compile`` for training: SwinIR region by region, any other network whole.

Compiling the paper's SwinIR whole traces 36 Swin blocks into one graph and recompiles it for every new input
size; a SEI step calls the network on three sizes (the crop, and the two down-scaled crops of the equivariance
term), so compilation took minutes. The blocks are identical code, so compiling each block in place gives one
small graph per input size that all 36 blocks reuse (PyTorch passes a block's parameters as graph inputs),
which compiles in seconds and keeps every state-dict key unchanged.
"""

from __future__ import annotations

import torch
from torch import nn


def swin_blocks(model: nn.Module) -> list[nn.Module]:
    """The Swin transformer blocks of a :class:`sei.models.swinir.SwinIR` (empty for other networks)."""
    from sei.models.swinir import CachedMaskBlock

    return [module for module in model.modules() if isinstance(module, CachedMaskBlock)]


def compile_network(model: nn.Module) -> nn.Module:
    """The network to call in training steps: ``model`` with its Swin blocks compiled in place, or
    ``torch.compile(model)`` when it has none. Outputs and gradients are those of ``model``."""
    blocks = swin_blocks(model)
    if not blocks:
        return torch.compile(model)
    for block in blocks:  # their attention masks stay eager (CachedMaskBlock.calculate_mask)
        block.compile(dynamic=False)  # one graph per input size: the sizes of a run are few and fixed
    return model
