"""The paper's learning-rate schedule: constant, then a linear decay to a small fraction."""

from __future__ import annotations

import torch


def lr_factor(step: int, total_steps: int, decay_start: float = 0.5, final_factor: float = 0.01) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``total_steps``.

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
                    final_factor: float = 0.01) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` stepping :func:`lr_factor` once per optimiser step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, decay_start, final_factor))
