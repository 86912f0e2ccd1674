"""Guards that stop a diverging run before anything non-finite reaches the disk.

:class:`DivergenceGuard` checks the loss before the backward pass and the gradients before each optimiser step
(one ``torch.isfinite`` on the loss, one fused norm of all gradients), so the weights never take a non-finite
step; it raises :class:`~sei.core.errors.DivergenceError` naming the step and the last good checkpoint, which is left
untouched. :func:`check_finite_weights` is the last line before ``weights.pt`` is written.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import lightning as L
import torch
from torch import nn

from sei.config.recipe import is_fp16
from sei.config.run_folder import LAST_CHECKPOINT
from sei.core.checks import nonfinite_tensors
from sei.core.errors import CheckpointError, DivergenceError, SEIWarning
from sei.training.checkpointing import periodic_checkpoints, read_checkpoint

__all__ = ["GROWTH_FACTOR", "GROWTH_REFERENCE_STEPS", "check_finite_weights", "DivergenceGuard",
           "last_good_checkpoint"]

# A loss this many times larger than the largest of the first steps is warned about (once per run).
GROWTH_FACTOR = 1000.0
GROWTH_REFERENCE_STEPS = 10


def last_good_checkpoint(directory: str | Path) -> Path | None:
    """The checkpoint a diverged run can be resumed from: ``last.ckpt``, else the newest periodic one, whichever
    first reads back with finite weights (sei never writes others, but a folder may hold a copied-in one); None
    when there is none. Reads checkpoints: for the failure path only."""
    directory = Path(directory)
    candidates = [directory / LAST_CHECKPOINT, *periodic_checkpoints(directory)]
    for path in candidates:
        if not path.is_file():
            continue
        try:
            state = read_checkpoint(path, mmap=True)["state_dict"]
        except (CheckpointError, KeyError, TypeError):
            continue
        if not nonfinite_tensors(state):
            return path
    return None


def _divergence(what: str, step: int, directory: Path | None) -> DivergenceError:
    checkpoint = last_good_checkpoint(directory) if directory is not None else None
    kept = (f"the last good checkpoint, {checkpoint}, is intact" if checkpoint is not None
            else "no checkpoint had been written yet")
    return DivergenceError(f"training diverged at step {step}: {what}; stopped before writing any weights, "
                           f"{kept}. Lower the learning rate (--lr) or check the data for extreme values")


class DivergenceGuard(L.Callback):
    """Stops training with :class:`DivergenceError` at the first non-finite loss or gradient.

    :param checkpoint_dir: where the run's checkpoints are, to name the last good one in the error.
    """

    def __init__(self, checkpoint_dir: str | Path | None = None) -> None:
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.initial_scale = 0.0  # the largest |loss| of the first steps: what a healthy run stays below
        self.initial_steps = 0
        self.warned = False

    def _watch_growth(self, value: float, step: int) -> None:
        # A finite loss can still run away (a high learning rate without clipping reached 2e11 with exit 0): warn
        # once when it exceeds the first steps' scale by orders of magnitude.
        if self.initial_steps < GROWTH_REFERENCE_STEPS:
            self.initial_scale = max(self.initial_scale, abs(value))
            self.initial_steps += 1
        elif not self.warned and self.initial_scale > 0 and abs(value) > GROWTH_FACTOR * self.initial_scale:
            self.warned = True
            warnings.warn(f"the loss reached {value:.3g} at step {step}, {abs(value) / self.initial_scale:.0f} times "
                          f"its size in the first {GROWTH_REFERENCE_STEPS} steps ({self.initial_scale:.3g}): training "
                          "is probably diverging; lower the learning rate (--lr) or clip gradients (--grad-clip auto)",
                          SEIWarning, stacklevel=2)

    def _scaled(self, trainer: L.Trainer) -> bool:
        return is_fp16(trainer.precision)

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        # Checked before the backward pass and the step: the weights are still those of the previous step. With
        # several processes, only the gradient check (after their all-reduce, so every rank sees the same
        # values) may stop the run: a rank stopping alone here would leave the others waiting forever.
        if trainer.world_size > 1 or self._scaled(trainer):
            return
        value = float(loss.detach().float().flatten()[0])  # one synchronisation per step, as a finiteness test
        if not math.isfinite(value):
            raise _divergence(f"the loss is {value}", trainer.global_step, self.checkpoint_dir)
        self._watch_growth(value, trainer.global_step)

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule,
                                 optimizer: torch.optim.Optimizer) -> None:
        if self._scaled(trainer):  # overflowing fp16 gradients are the scaler's business: it skips the step
            return
        gradients = [p.grad for p in pl_module.parameters() if p.grad is not None]
        if not gradients:
            return
        norm = torch.nn.utils.get_total_norm(gradients, foreach=True)
        if not bool(torch.isfinite(norm)):
            bad = sum(1 for g in gradients if not bool(torch.isfinite(g).all()))  # only on the failure path
            what = (f"{bad} gradient tensor(s) hold NaN or infinite values" if bad else
                    "the gradient norm overflows (infinite)")
            raise _divergence(what, trainer.global_step, self.checkpoint_dir)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A finite gradient can still overflow the weights (a huge learning rate): catch it before the
        # epoch's checkpoints are written.
        bad = nonfinite_tensors(pl_module.state_dict())
        if bad:
            raise _divergence(f"{len(bad)} weight tensor(s) became NaN or infinite (e.g. {bad[0]})",
                              trainer.global_step, self.checkpoint_dir)


def check_finite_weights(model: nn.Module, checkpoint_dir: str | Path | None = None, step: int | None = None) -> None:
    """Refuse to save weights holding NaN or infinite values.

    :raises DivergenceError: naming the tensors and the last good checkpoint.
    """
    bad = nonfinite_tensors(model.state_dict())
    if bad:
        where = Path(checkpoint_dir) if checkpoint_dir is not None else None
        raise _divergence(f"{len(bad)} weight tensor(s) hold NaN or infinite values (e.g. {bad[0]})",
                          step if step is not None else -1, where)
