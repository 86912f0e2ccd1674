"""Checkpoints written atomically: the latest at every epoch end, and one every N epochs.

Checkpoints are taken at epoch ends only: every random draw is keyed by (epoch, sample) or (step), so a
run resumed from the end of an epoch repeats exactly what the interrupted run would have done next.

Checkpoints are read with ``torch.load(weights_only=True)`` whatever Lightning asks for: a checkpoint is a file
a user may have been handed, and unpickling arbitrary objects from it would run code. A checkpoint holding
non-finite weights is never written (training diverged: see :mod:`sei.training.guards`), and a damaged one
(empty, truncated, not a checkpoint) is reported with the newest intact checkpoint to resume from instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from sei.config.run_folder import LAST_CHECKPOINT
from sei.core.checks import nonfinite_tensors
from sei.core.errors import CheckpointError, DivergenceError
from sei.core.files import atomic_torch_save, describe_load_failure

__all__ = ["AtomicCheckpointIO", "check_resumable", "checkpoint_callbacks", "KeepNewestCheckpoints",
           "LatestCheckpoint", "newest_intact_checkpoint", "periodic_checkpoints", "read_checkpoint",
           "remove_orphans"]

# What every Lightning training checkpoint holds; a file without these keys cannot resume a run.
_REQUIRED_KEYS = ("state_dict", "optimizer_states", "loops", "global_step", "epoch")
# Temporary files of `sei.core.files.atomic_write` (".<name>.<random>.tmp"): left behind only by a killed save.
_ORPHAN = re.compile(r"^\..+\.tmp$")


def read_checkpoint(path: str | Path, map_location: Any = "cpu", mmap: bool = False,
                    training: bool = True) -> dict[str, Any]:
    """A Lightning checkpoint, loaded with ``weights_only=True``, checked to be one.

    :param mmap: map the tensors' storage instead of reading it (a cheap integrity check).
    :param training: require what a training checkpoint holds (Lightning's own weights-only transfers between
        processes hold less).
    :raises CheckpointError: naming the file and why it cannot be used (empty, truncated, not a checkpoint,
        or holding objects other than tensors and plain values).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"checkpoint {path} is an empty file (a save was interrupted or the disk was full)")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as error:  # zip, pickle and unpickler-policy errors come in many types
        raise CheckpointError(f"checkpoint {path} is damaged: {describe_load_failure(path, error)}") from error
    if training and (not isinstance(data, dict) or any(key not in data for key in _REQUIRED_KEYS)):
        raise CheckpointError(f"checkpoint {path} is not a training checkpoint (it lacks "
                              f"{', '.join(k for k in _REQUIRED_KEYS if not isinstance(data, dict) or k not in data)})")
    return data


def periodic_checkpoints(directory: str | Path) -> list[Path]:
    """The ``epoch=NNNN.ckpt`` checkpoints of ``directory``, newest (highest epoch) first."""
    directory = Path(directory)

    def epoch(path: Path) -> int:
        match = re.search(r"epoch=(\d+)", path.name)
        return int(match[1]) if match else -1

    return sorted((p for p in directory.glob("epoch=*.ckpt") if p.is_file()), key=epoch, reverse=True)


def newest_intact_checkpoint(directory: str | Path, exclude: Path | None = None) -> tuple[Path, int] | None:
    """The newest periodic checkpoint of ``directory`` that reads back, with its global step, or None."""
    for path in periodic_checkpoints(directory):
        if exclude is not None and path.resolve() == exclude.resolve():
            continue
        try:
            return path, int(read_checkpoint(path, mmap=True)["global_step"])
        except CheckpointError:
            continue
    return None


def check_resumable(path: str | Path) -> Path:
    """``path`` if it is an intact training checkpoint.

    :raises CheckpointError: naming the damage, the newest intact checkpoint beside it (if any) and the
        ``--resume PATH`` option to continue from that one.
    """
    path = Path(path)
    try:
        read_checkpoint(path, mmap=True)  # mapped, not read: only its structure is checked here
    except CheckpointError as error:
        fallback = newest_intact_checkpoint(path.parent, exclude=path)
        if fallback is None:
            advice = "no intact checkpoint is left beside it; start the run again in a new --out-dir"
        else:
            advice = (f"the newest intact checkpoint is {fallback[0]} (step {fallback[1]}); "
                      f"continue from it with --resume {fallback[0]}")
        raise CheckpointError(f"{error}; {advice}") from error
    return path


def remove_orphans(*directories: str | Path) -> list[Path]:
    """Delete the temporary files that killed atomic saves left in ``directories``; return them."""
    removed = []
    for directory in directories:
        directory = Path(directory)
        if not directory.is_dir():
            continue
        for path in directory.iterdir():
            if path.is_file() and _ORPHAN.match(path.name):
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file and renames it into place (a run killed while saving keeps its
    previous checkpoint intact), refuses to write non-finite weights, and reads with ``weights_only=True``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage options")
        bad = nonfinite_tensors(checkpoint.get("state_dict", {}))
        if bad:  # the divergence guard stops earlier; this keeps a diverged state off the disk in any case
            raise DivergenceError(f"training diverged: {len(bad)} weight tensor(s) hold NaN or infinite values "
                                  f"(e.g. {bad[0]}); {path} was not written, the previous checkpoint is intact")
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path, map_location: Callable | Any = lambda storage, loc: storage,
                        weights_only: bool | None = None) -> dict[str, Any]:
        # `weights_only` is ignored on purpose: always the safe loader (see the module's docstring)
        return read_checkpoint(path, map_location=map_location, training=False)


class LatestCheckpoint(L.Callback):
    """Overwrites ``last.ckpt`` at the end of every training epoch.

    An epoch cut short by a step or time budget is not saved over the last whole one: Lightning would record it as
    complete, and a resume (``--resume --steps MORE``) would skip the rest of its batches, training nothing at all
    when the new budget ended inside them. From the last whole epoch the resumed run replays the cut one exactly as
    an uninterrupted run trains it. (A run whose first epoch is cut short keeps that state, to be resumable at all.)
    """

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / LAST_CHECKPOINT

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        done = trainer.fit_loop.epoch_loop.batch_progress.current.completed
        if done < trainer.num_training_batches and self.path.exists():
            return
        trainer.save_checkpoint(self.path, weights_only=False)


class KeepNewestCheckpoints(L.Callback):
    """Deletes all but the newest ``keep`` periodic checkpoints (by epoch) of ``directory``: those of this session
    and those written before a resume alike (Lightning's own count knows only the files it wrote in one session).

    Pruned when training starts, before each epoch (so at most ``keep + 1`` exist while an epoch runs: a new one is
    written before an old one goes) and when it ends.
    """

    def __init__(self, directory: str | Path, keep: int) -> None:
        self.directory, self.keep = Path(directory), keep

    def prune(self, trainer: L.Trainer) -> None:
        if trainer.global_rank == 0:
            for path in periodic_checkpoints(self.directory)[self.keep:]:
                path.unlink(missing_ok=True)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.prune(trainer)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.prune(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.prune(trainer)


def checkpoint_callbacks(directory: str | Path, every_n_epochs: int, keep: int = 3) -> list[L.Callback]:
    """``last.ckpt`` at every epoch end, plus ``epoch=NNNN.ckpt`` every ``every_n_epochs`` epochs (0: none), of which
    the newest ``keep`` are kept (0: all; :class:`KeepNewestCheckpoints`) so that a long run does not fill the disk."""
    callbacks: list[L.Callback] = [LatestCheckpoint(directory)]
    if every_n_epochs and every_n_epochs > 0:
        callbacks.append(ModelCheckpoint(dirpath=directory, filename="{epoch:04d}", monitor="step", mode="max",
                                         save_top_k=-1, every_n_epochs=every_n_epochs, save_on_train_epoch_end=True))
        if keep > 0:
            callbacks.append(KeepNewestCheckpoints(directory, keep))
    return callbacks
