"""Run a training experiment end to end: output folder, trainer, fit, final weights."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from sei.config import ExperimentConfig, from_dict, load_yaml, resolve
from sei.devices import lightning_devices
from sei.errors import ConfigError
from sei.files import atomic_write_text
from sei.models.weights import save_weights
from sei.training.budget import StepBudget
from sei.training.checkpointing import LAST_CHECKPOINT, AtomicCheckpointIO, checkpoint_callbacks
from sei.training.datamodule import SEIDataModule
from sei.training.module import SEIModule

CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "weights.pt"
SUMMARY_FILE = "train_summary.json"
# Settings a resumed run may change: where and how fast it runs, and how long.
RESUMABLE_CHANGES = {
    "train.epochs", "train.steps", "train.device", "train.devices", "train.num_nodes", "train.strategy",
    "train.progress", "train.log_every", "train.compile", "data.num_workers", "data.download", "data.datasets_dir",
}


@dataclass
class TrainResult:
    """What a finished run produced."""

    out_dir: Path
    weights: Path
    config: ExperimentConfig
    metrics: dict[str, float]
    seconds: float
    rank: int = 0


def flatten_config(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1}}`` -> ``{"train.lr": 1}``."""
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flatten_config(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _check_resume(saved: dict[str, Any], config: ExperimentConfig) -> None:
    old, new = flatten_config(saved), flatten_config(config.to_dict())
    # a backbone left open (initial weights decide it) matches the one the run recorded
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES
                     and not (k == "model.backbone" and new.get(k) is None))
    if changed:
        details = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed)
        raise ConfigError(f"a resumed run must keep its settings; these differ from the saved run: {details}")


def _prepare_output(config: ExperimentConfig, resume: bool | str | Path) -> Path | None:
    """Check the output folder and return the checkpoint to resume from (or None)."""
    out_dir = Path(config.out_dir)
    last = out_dir / "checkpoints" / LAST_CHECKPOINT
    if resume:
        checkpoint = Path(resume) if isinstance(resume, (str, Path)) and not isinstance(resume, bool) else last
        if not checkpoint.is_file():
            raise ConfigError(f"nothing to resume: no checkpoint at {checkpoint}")
        if (out_dir / CONFIG_FILE).is_file():
            _check_resume(load_yaml(out_dir / CONFIG_FILE), config)
        return checkpoint
    if last.is_file() or (out_dir / WEIGHTS_FILE).is_file():
        raise ConfigError(f"{out_dir} already holds a run; pass --resume to continue it, or choose another --out-dir")
    return None


def build_trainer(config: ExperimentConfig, callbacks: Sequence[L.Callback] = (), **overrides: Any) -> L.Trainer:
    """The Lightning trainer for a resolved configuration (``overrides`` go to ``L.Trainer``)."""
    train, out_dir = config.train, Path(config.out_dir)
    loggers = [CSVLogger(out_dir, name="logs", version="csv")]
    try:
        loggers.append(TensorBoardLogger(out_dir, name="logs", version="tensorboard", default_hp_metric=False))
    except ModuleNotFoundError:  # tensorboard is optional: the CSV log is always written
        warnings.warn("tensorboard is not installed; writing CSV logs only", stacklevel=2)
    settings = dict(
        **lightning_devices(train.device, train.devices),
        num_nodes=train.num_nodes,
        strategy=train.strategy,
        precision=train.precision,
        max_epochs=train.epochs if train.epochs is not None else -1,  # step budgets: see StepBudget
        default_root_dir=out_dir,
        logger=loggers,
        callbacks=[*checkpoint_callbacks(out_dir / "checkpoints", train.checkpoint_every),
                   *([StepBudget(train.steps)] if train.steps is not None else []), *callbacks],
        plugins=[AtomicCheckpointIO()],
        use_distributed_sampler=False,  # EpochSampler shards samples across ranks itself
        check_val_every_n_epoch=max(train.val_every, 1),
        limit_val_batches=None if train.val_every else 0,
        num_sanity_val_steps=0,
        log_every_n_steps=train.log_every,
        enable_progress_bar=train.progress,
        enable_model_summary=train.progress,
    )
    settings.update(overrides)
    return L.Trainer(**settings)


def train(config: ExperimentConfig, resume: bool | str | Path = False, callbacks: Sequence[L.Callback] = (),
          **trainer_overrides: Any) -> TrainResult:
    """Train as ``config`` says; write ``config.yaml``, checkpoints, logs and ``weights.pt`` to its ``out_dir``.

    :param resume: True to continue from ``out_dir/checkpoints/last.ckpt``, or a checkpoint path.
    :raises ConfigError: if ``out_dir`` already holds a run and ``resume`` is not set, or settings conflict.
    """
    config = resolve(config)
    checkpoint = _prepare_output(config, resume)
    out_dir = Path(config.out_dir)
    torch.manual_seed(config.train.seed)  # the backbone's initial weights
    module = SEIModule(config.to_dict())
    config.model.backbone = module.config.model.backbone  # known once initial weights are read
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / CONFIG_FILE, config.to_yaml())
    datamodule = SEIDataModule(config)
    trainer = build_trainer(config, callbacks, **trainer_overrides)
    started = time.perf_counter()
    with warnings.catch_warnings():
        # Our sampler is deliberate, and small datasets give short epochs: Lightning's hints do not apply.
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*number of training batches.*smaller than the logging interval.*")
        warnings.filterwarnings("ignore", message=".*Experiment logs directory.*exists and is not empty.*")
        warnings.filterwarnings("ignore", message=".*Checkpoint directory.*exists and is not empty.*")
        warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")  # Lightning internals
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(checkpoint) if checkpoint else None)
    seconds = time.perf_counter() - started
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.as_tensor(v).numel() == 1}
    weights = out_dir / WEIGHTS_FILE
    if trainer.global_rank == 0:
        save_weights(module.backbone, weights)
        summary = {"epochs": trainer.current_epoch, "steps": trainer.global_step, "seconds": seconds,
                   "metrics": metrics, "weights": str(weights)}
        atomic_write_text(out_dir / SUMMARY_FILE, json.dumps(summary, indent=2))
    return TrainResult(out_dir, weights, config, metrics, seconds, trainer.global_rank)


def load_run_config(run_dir: str | Path) -> ExperimentConfig:
    """The configuration a run recorded in its folder."""
    return from_dict(load_yaml(Path(run_dir) / CONFIG_FILE))


def train_or_reuse(config: ExperimentConfig) -> Path:
    """Train ``config``, resume it if it was interrupted, or reuse its weights if it already finished.

    :raises ConfigError: if the folder holds a run with other settings (nothing is overwritten).
    """
    out_dir = Path(config.out_dir)
    if (out_dir / CONFIG_FILE).is_file():
        saved, wanted = flatten_config(load_yaml(out_dir / CONFIG_FILE)), flatten_config(config.to_dict())
        ignored = {"train.device", "train.devices", "train.progress", "data.num_workers"}
        changed = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k) and k not in ignored)
        if changed:
            raise ConfigError(f"{out_dir} holds a run with other settings ({', '.join(changed)}); remove it or "
                              "choose another --out-dir")
    if (out_dir / WEIGHTS_FILE).is_file():
        return out_dir / WEIGHTS_FILE
    resume = (out_dir / "checkpoints" / "last.ckpt").is_file()
    return train(config, resume=resume).weights
