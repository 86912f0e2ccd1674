"""The paper's learning-rate schedule: constant, then a linear decay to a small fraction."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import ConstantLR, LinearLR, LRScheduler, SequentialLR

__all__ = ["lr_factor", "paper_scheduler"]


def lr_factor(step: int, total_steps: int, decay_start: float = 0.5, final_factor: float = 0.01) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``total_steps``: the schedule's definition.

    1 for the first ``decay_start`` fraction of training, then linear down to ``final_factor`` at the last step.
    """
    if total_steps <= 1:
        return 1.0
    start = decay_start * (total_steps - 1)
    if step <= start:
        return 1.0
    progress = min((step - start) / max(total_steps - 1 - start, 1e-12), 1.0)
    return 1.0 - (1.0 - final_factor) * progress


def paper_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, decay_start: float = 0.5,
                    final_factor: float = 0.01) -> LRScheduler:
    """:func:`lr_factor` as PyTorch's ``SequentialLR(ConstantLR, LinearLR)``, stepped once per optimiser step.

    The decay starts at the fractional step ``decay_start * (total_steps - 1)``; its first integer step gets the
    factor the straight line has there, so the two agree to rounding (a test compares them).
    """
    start = decay_start * (total_steps - 1)
    first = math.floor(start) + 1  # the first step whose factor is below 1
    if total_steps <= 1 or first > total_steps - 1:
        return ConstantLR(optimizer, factor=1.0, total_iters=0)
    first_factor = 1.0 - (1.0 - final_factor) * (first - start) / (total_steps - 1 - start)
    constant = ConstantLR(optimizer, factor=1.0, total_iters=first)
    decay = LinearLR(optimizer, start_factor=first_factor, end_factor=final_factor,
                     total_iters=max(total_steps - 1 - first, 1))
    return SequentialLR(optimizer, [constant, decay], milestones=[first])
