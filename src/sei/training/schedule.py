"""The paper's learning-rate schedule: constant, then a linear decay to a small fraction."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.optim.lr_scheduler import LambdaLR

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


def paper_scheduler(optimizer: torch.optim.Optimizer, total_steps: int | Callable[[], int], decay_start: float = 0.5,
                    final_factor: float = 0.01) -> LambdaLR:
    """:func:`lr_factor` as a PyTorch scheduler, stepped once per optimiser step.

    :param total_steps: the run's length, or a function that tells it at each step: a time budget re-plans the
        length while the rate is still constant (:class:`sei.training.time_budget.TimeBudget`), so the decay
        always runs its whole course. The length is not part of the scheduler's state: checkpoints keep only the
        step, and a resumed run takes its length from its configuration.
    """
    length = total_steps if callable(total_steps) else (lambda: total_steps)

    def factor(step: int) -> float:  # a plain function: LambdaLR leaves it out of its state
        return lr_factor(step, length(), decay_start, final_factor)

    return LambdaLR(optimizer, factor)
