"""What a training run shows on the terminal: one progress bar for the whole run, and no product tips.

Lightning's bar restarts at every epoch; with a step budget on a small dataset (8 images: one step per epoch) it
would restart at every step and never show an overall ETA. :class:`RunProgressBar` counts optimiser steps over
the whole budget instead.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar

__all__ = ["RunProgressBar", "silence_lightning_tips"]


class RunProgressBar(TQDMProgressBar):
    """Lightning's bar over the whole run: ``step / total steps`` with its ETA, the epoch in the description, and
    without the logger version (``v_num``), which our loggers' fixed version names ("csv", "tensorboard") would
    show as a meaningless tail such as ``v_num=oard``.

    :param total_steps: the run's optimiser steps (a step budget); ``None`` reads Lightning's estimate.
    """

    def __init__(self, total_steps: int | None = None, refresh_rate: int = 1) -> None:
        super().__init__(refresh_rate=refresh_rate)
        self.total_steps = total_steps

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.train_progress_bar = self.init_train_tqdm()
        total = self.total_steps if self.total_steps is not None else trainer.estimated_stepping_batches
        self.train_progress_bar.reset(total=int(total))
        self.train_progress_bar.initial = 0
        self.train_progress_bar.n = trainer.global_step  # a resumed run starts where it stopped
        self.train_progress_bar.unit = "step"

    def set_total(self, total_steps: int) -> None:
        """A re-planned run's new length (:class:`sei.training.time_budget.TimeBudget`)."""
        self.total_steps = total_steps
        if self._train_progress_bar is not None:
            self._train_progress_bar.total = total_steps
            self._train_progress_bar.refresh()

    def on_train_epoch_start(self, trainer: L.Trainer, *_: Any) -> None:
        self.train_progress_bar.set_description(f"Epoch {trainer.current_epoch}")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        bar = self.train_progress_bar
        if bar is not None and self._should_update(trainer.global_step, bar.total):
            bar.n = trainer.global_step
            bar.set_postfix(self.get_metrics(trainer, pl_module))  # also refreshes the bar

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.train_progress_bar.disable:
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


class _DropTips(logging.Filter):
    """Drops Lightning's advertising ("💡 Tip: ... try installing litlogger") from its log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in str(record.msg)


def silence_lightning_tips() -> None:
    """Keep Lightning's product tips off the terminal (its other messages are untouched). Idempotent."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropTips) for f in logger.filters):
            logger.addFilter(_DropTips())
