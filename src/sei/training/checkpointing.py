"""Checkpoints written atomically: the latest at every epoch end, and one every N epochs.

Checkpoints are taken at epoch ends only: every random draw is keyed by (epoch, sample) or (step), so a
run resumed from the end of an epoch repeats exactly what the interrupted run would have done next.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from sei.files import atomic_torch_save

LAST_CHECKPOINT = "last.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file and renames it into place: a run killed while saving
    keeps its previous checkpoint intact."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage options")
        atomic_torch_save(checkpoint, path)


class LatestCheckpoint(L.Callback):
    """Overwrites ``last.ckpt`` at the end of every training epoch (and when training ends mid-epoch is not
    saved: such a state could not be resumed exactly)."""

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / LAST_CHECKPOINT

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            trainer.save_checkpoint(self.path, weights_only=False)


def checkpoint_callbacks(directory: str | Path, every_n_epochs: int) -> list[L.Callback]:
    """``last.ckpt`` at every epoch end, plus ``epoch=NNNN.ckpt`` every ``every_n_epochs`` epochs (0: none)."""
    callbacks: list[L.Callback] = [LatestCheckpoint(directory)]
    if every_n_epochs and every_n_epochs > 0:
        callbacks.append(ModelCheckpoint(dirpath=directory, filename="{epoch:04d}", save_top_k=-1,
                                         every_n_epochs=every_n_epochs, save_on_train_epoch_end=True))
    return callbacks
