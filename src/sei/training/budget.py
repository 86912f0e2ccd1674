"""Training budgets in optimiser steps, run as epoch-based training.

Lightning treats a run with ``max_steps`` as iteration-based, and then resumes an epoch-end checkpoint as if
it had been taken mid-epoch (replaying a stale batch). We keep Lightning epoch-based, where resuming is exact,
and stop after the requested number of steps ourselves.
"""

from __future__ import annotations

import math

import lightning as L

__all__ = ["StepBudget"]


class StepBudget(L.Callback):
    """Stop training after ``steps`` optimiser steps (the last epoch may end early).

    The run's length as the learning-rate schedule reads it (:class:`sei.training.module.SEIModule`): a time budget
    may re-plan it mid-run (:meth:`set_steps`).
    """

    def __init__(self, steps: int) -> None:
        if steps < 1:
            raise ValueError(f"the step budget must be positive, got {steps}")
        self.steps = steps

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # from where a resumed run starts (an epoch cut short by a first run's budget counts as done)
        self._set_epochs(trainer, trainer.current_epoch)
        if trainer.global_step >= self.steps:
            trainer.should_stop = True

    @staticmethod
    def of(trainer: L.Trainer | None) -> StepBudget | None:
        """The trainer's step budget (``None`` without one, or without a trainer)."""
        callbacks = trainer.callbacks if trainer is not None else ()
        return next((c for c in callbacks if isinstance(c, StepBudget)), None)

    def set_steps(self, trainer: L.Trainer, steps: int) -> None:
        """Change the budget to ``steps`` in the middle of an epoch."""
        if steps < 1:
            raise ValueError(f"the step budget must be positive, got {steps}")
        self.steps = steps
        self._set_epochs(trainer, trainer.current_epoch + 1)  # one epoch too many at most: the steps stop it

    def _set_epochs(self, trainer: L.Trainer, first_epoch: int) -> None:
        """Let Lightning run enough epochs from ``first_epoch`` on for the steps left."""
        batches = trainer.num_training_batches
        if batches and math.isfinite(batches):
            left = max(self.steps - trainer.global_step, 0)
            trainer.fit_loop.max_epochs = first_epoch + math.ceil(left / batches)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_index: int
                           ) -> None:
        if trainer.global_step >= self.steps:
            trainer.should_stop = True
