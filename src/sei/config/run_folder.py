"""A training run's folder: the one owner of its layout (every file name below), of reading and writing its
``config.yaml``, and of the question "may this configuration continue (or reuse) that run?".

::

    RUN/config.yaml              the resolved configuration (sei.config.schema)
    RUN/weights.pt               the trained network, with its architecture and physics records (sei.models.weights)
    RUN/train_summary.json       steps, epochs, seconds and final metrics of a finished run
    RUN/<kernel>.npy             a copy of a kernel file, so that the folder can be moved
    RUN/checkpoints/last.ckpt    rewritten every epoch; epoch=NNNN.ckpt every --checkpoint-every epochs
    RUN/logs/csv/metrics.csv     every logged value (Lightning's CSV logger); logs/tensorboard/ the same for TensorBoard
    RUN/.lock                    held while a process trains in the folder: its process id and host

A run folder is self-contained and can be moved: a kernel file is copied into it (``psf.pt`` as ``psf.npy``) and
recorded by its name inside the folder, and settings are compared, never the folder's spelling.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import yaml

from sei.config.schema import ExperimentConfig, flatten_config, from_dict
from sei.core.defaults import SURE_DIVERGENCES
from sei.core.errors import ConfigError, RunFinishedError
from sei.core.files import atomic_write_text, exclusive_lock, read_yaml_mapping
from sei.physics.spec import PhysicsSpec

__all__ = ["BUDGET", "CHECKPOINT_DIR", "CONFIG_FILE", "LAST_CHECKPOINT", "LOCK_FILE", "LOG_DIR", "MEMORY_SETTINGS",
           "METRICS_LOG", "RESUMABLE_CHANGES", "RUN_SECTIONS", "SUMMARY_FILE", "WEIGHTS_FILE", "RunFolder", "changed_settings"]

CONFIG_FILE = "config.yaml"
LOCK_FILE = ".lock"
WEIGHTS_FILE = "weights.pt"
SUMMARY_FILE = "train_summary.json"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
LOG_DIR = "logs"
# The loggers' versions under logs/ (fixed names instead of Lightning's version_N), and the CSV logger's file.
CSV_LOG, TENSORBOARD_LOG = "csv", "tensorboard"
METRICS_LOG = "metrics.csv"
# Settings a resumed run may change: where and how fast it runs, and how long (not what it learns). The memory mode
# is one (recomputed activations are the same numbers): a resumed run keeps its recorded mode unless one is given.
MEMORY_SETTINGS = frozenset({"train.memory", "model.checkpointing", "train.release_memory"})
RESUMABLE_CHANGES = frozenset({
    "out_dir", "train.epochs", "train.steps", "train.time", "train.device", "train.devices", "train.num_nodes", "train.strategy",
    "train.progress", "train.log_every", "train.compile", "data.num_workers", "data.download", "data.datasets_dir",
    "data.strict", "data.max_pixels", "train.checkpoint_every", "train.checkpoint_keep", *MEMORY_SETTINGS,
})
BUDGET = frozenset({"train.epochs", "train.steps", "train.time"})
# Settings that a run decides when they are left open (initial weights or the data do): an open one matches the run's.
_DECIDED_WHEN_OPEN = ("model.backbone", "model.channels", "data.intensity.")
# The sections of a configuration sei writes (see sei.config.schema.ExperimentConfig).
RUN_SECTIONS = frozenset({"physics", "data", "model", "loss", "train"})


class RunFolder:
    """The files of one training run under ``path``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    config_path = property(lambda self: self.path / CONFIG_FILE)
    weights_path = property(lambda self: self.path / WEIGHTS_FILE)
    summary_path = property(lambda self: self.path / SUMMARY_FILE)
    checkpoint_dir = property(lambda self: self.path / CHECKPOINT_DIR)
    last_checkpoint = property(lambda self: self.path / CHECKPOINT_DIR / LAST_CHECKPOINT)
    log_dir = property(lambda self: self.path / LOG_DIR)
    own_folders = (LOG_DIR, CHECKPOINT_DIR)  # sub-folders that hold the run's own files, not other runs
    metrics_log = property(lambda self: self.path / LOG_DIR / CSV_LOG / METRICS_LOG)

    lock_path = property(lambda self: self.path / LOCK_FILE)

    @contextmanager
    def claim(self) -> Iterator[RunFolder]:
        """Hold the folder for one process from before its first file is written to the run's end, so that a second
        run into the same folder is refused instead of mixing its files with the first's
        (:func:`sei.core.files.exclusive_lock`; a lock left by a killed run is taken over).

        :raises RunInUseError: while another process trains in the folder.
        """
        with exclusive_lock(self.lock_path, f"the run folder {self.path}"):
            yield self

    def has_config(self) -> bool:
        return self.config_path.is_file()

    def is_sei_run(self) -> bool:
        """Whether the folder's ``config.yaml`` is one sei wrote: a mapping holding all of sei's configuration
        sections (a later version may add keys, so others are allowed)."""
        try:
            data = read_yaml_mapping(self.config_path)
        except ConfigError:
            return False
        return RUN_SECTIONS <= set(data)

    def check_writable(self) -> None:
        """Refuse a folder that is a file, or that holds a ``config.yaml`` sei did not write (it would be overwritten).

        :raises ConfigError: naming the file.
        """
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"--out-dir {self.path} is a file, not a folder")
        if self.config_path.exists() and not self.is_sei_run():
            raise ConfigError(f"{self.path} holds a {CONFIG_FILE} that sei did not write; it would be overwritten. "
                              "Choose another --out-dir")

    def check_not_finished(self, steps: int | None, epochs: int | None, seconds: float | None = None) -> None:
        """Refuse to resume a run that already reached its budget (``steps``, ``epochs`` or ``seconds`` of
        training).

        :raises RunFinishedError: (exit status 0 on the command line) naming the run's weights.
        """
        if not (self.summary_path.is_file() and self.weights_path.is_file()):
            return
        try:
            summary = json.loads(self.summary_path.read_text())
            done_steps, done_epochs = int(summary.get("steps", -1)), int(summary.get("epochs", -1))
            spent = float(summary.get("training_seconds", -1))
        except (OSError, ValueError, TypeError, AttributeError):
            return  # an unreadable summary says nothing about being finished: let the resume go on
        if ((steps is not None and done_steps >= steps) or (epochs is not None and done_epochs >= epochs)
                or (seconds is not None and spent >= seconds)):
            raise RunFinishedError(f"{self.path} already finished ({done_steps} steps); its weights are "
                                   f"{self.weights_path}. Nothing to resume (raise --steps, --epochs or --time to "
                                   "train it further)")

    def is_finished(self) -> bool:
        return self.weights_path.is_file()

    @cached_property
    def config(self) -> ExperimentConfig:
        """The configuration the run recorded, read once; a kernel file inside the folder is made absolute."""
        if not self.has_config():
            raise ConfigError(f"{self.path} holds no {CONFIG_FILE}; is it a training run's folder?")
        values = read_yaml_mapping(self.config_path, CONFIG_FILE)
        if isinstance(values.get("train"), dict):
            values["train"].setdefault("grad_clip", None)  # runs recorded before it existed did not clip
            values["train"].setdefault("grad_clip_median", None)  # nor against their recent norms
        if isinstance(values.get("loss"), dict):  # and took SURE's divergence by the finite difference
            values["loss"].setdefault("divergence", SURE_DIVERGENCES[0])
        if isinstance(values.get("data"), dict):  # and drew their crops unturned
            values["data"].setdefault("augment", False)
        config = from_dict(values)
        physics = config.physics
        if isinstance(physics.kernel, str) and physics.kernel_is_file and not Path(physics.kernel).is_absolute():
            physics = dataclasses.replace(physics, kernel=str((self.path / physics.kernel).resolve()))
        return dataclasses.replace(config, physics=physics, out_dir=str(self.path))

    def store_kernel(self, physics: PhysicsSpec) -> PhysicsSpec:
        """Copy a file or tensor kernel into the folder; the spec then points at the copy."""
        copy = physics.copy_kernel(self.path)
        return physics if copy is None else dataclasses.replace(physics, kernel=str(copy.resolve()))

    def write_config(self, config: ExperimentConfig) -> None:
        """Write ``config.yaml``, recording a kernel stored in the folder by its name there."""
        values = config.to_dict()
        kernel = values["physics"].get("kernel")
        if isinstance(kernel, str) and Path(kernel).is_absolute() and Path(kernel).parent == self.path.resolve():
            values["physics"]["kernel"] = Path(kernel).name
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config_path, yaml.safe_dump(values, sort_keys=False))
        self.__dict__.pop("config", None)

    def changed_settings(self, config: ExperimentConfig, may_change: frozenset[str] = RESUMABLE_CHANGES) -> list[str]:
        """``"key: old -> new"`` for each setting of ``config`` that differs from the run's and may not.

        The operator is compared as an operator (a kernel file by its content), a backbone, channel count or
        intensity map left open (initial weights or the data decide it) matches the recorded one, and the folder's
        own path never counts.
        """
        return changed_settings(self.config, config, may_change)


def changed_settings(saved: ExperimentConfig, config: ExperimentConfig,
                     may_change: frozenset[str] = RESUMABLE_CHANGES) -> list[str]:
    """``"key: old -> new"`` for each setting of ``config`` that differs from ``saved`` (a run's record) and may not
    (see :meth:`RunFolder.changed_settings`)."""
    old = flatten_config({k: v for k, v in saved.to_dict().items() if k != "physics"})
    new = flatten_config({k: v for k, v in config.to_dict().items() if k != "physics"})
    changed = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
               if old.get(k) != new.get(k) and k not in may_change
               and not (new.get(k) is None and k.startswith(_DECIDED_WHEN_OPEN))]
    if not saved.physics.operator and not config.physics.operator:
        if not saved.physics.same_operator(config.physics):
            changed.insert(0, f"physics: {saved.physics.describe()} -> {config.physics.describe()}")
    elif saved.physics.operator != config.physics.operator:
        changed.insert(0, f"physics.operator: {saved.physics.operator!r} -> {config.physics.operator!r}")
    return changed
