"""Run a training experiment end to end: what the data tell, the output folder, the trainer, fit, final weights.

:func:`train` is the whole run: :func:`prepare_run` decides what only the data can tell (the noise level to
estimate, grayscale images, float data's intensity map) on the configuration :func:`sei.config.resolve.resolve`
decided, the run folder is claimed (:class:`sei.config.run_folder.RunFolder`), the operator and the method are built
once, the memory mode measured when it is ``auto``, and Lightning's trainer fits the module; checkpoints go to the
run folder's ``checkpoints/`` (:mod:`sei.training.checkpointing`), the weights to its ``weights.pt``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from deepinv.physics import LinearPhysics
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from sei.config.recipe import AUTO, memory_switches, requested_mode
from sei.config.resolve import resolve
from sei.config.run_folder import (
    BUDGET, CSV_LOG, LOG_DIR, RESUMABLE_CHANGES, TENSORBOARD_LOG, RunFolder, changed_settings,
)
from sei.config.schema import ExperimentConfig, from_dict
from sei.core.devices import lightning_devices
from sei.core.errors import ConfigError
from sei.core.files import atomic_write_text
from sei.core.units import duration_text, level_of
from sei.data.channels import training_channels
from sei.data.sources import ImageSet
from sei.losses.registry import build_method
from sei.models.weights import save_weights
from sei.physics.base import physics_upscale
from sei.physics.noise import gaussian_sigma
from sei.physics.spec import PhysicsSpec
from sei.training.budget import StepBudget
from sei.training.checkpointing import (
    AtomicCheckpointIO, check_resumable, checkpoint_callbacks, read_checkpoint, remove_orphans,
)
from sei.training.datamodule import SEIDataModule, check_crop_fits, read_training_folder
from sei.training.ema import EMA
from sei.training.guards import DivergenceGuard, check_finite_weights
from sei.training.measured_noise import estimate_run_noise, learned_physics
from sei.training.memory_plan import plan_memory
from sei.training.module import SEIModule
from sei.training.progress import RunProgressBar, silence_lightning_tips
from sei.training.time_budget import TimeBudget, measure_step, steps_for_time

__all__ = ["build_trainer", "load_run_config", "prepare_run", "spec_of_operator", "train", "train_or_reuse",
           "TrainResult"]

@dataclass
class TrainResult:
    """What a finished run produced."""

    out_dir: Path
    weights: Path
    config: ExperimentConfig
    metrics: dict[str, float]
    seconds: float
    rank: int = 0


def _prepare_output(config: ExperimentConfig, resume: bool | str | Path) -> Path | None:
    """Check the output folder and return the checkpoint to resume from (or None)."""
    folder = RunFolder(config.out_dir)
    last = folder.last_checkpoint
    folder.check_writable()  # never overwrite a config.yaml that sei did not write
    # temporary files of killed saves: removed when the run is known to be stopped (resumed, or reused empty),
    # never while another process may still be writing it
    orphans = (folder.checkpoint_dir, *([folder.path] if folder.is_sei_run() else []))
    if resume:
        explicit = isinstance(resume, (str, Path)) and not isinstance(resume, bool)
        checkpoint = Path(resume) if explicit else last
        if explicit and not checkpoint.is_file():  # said before "finished": the path asked for is wrong either way
            raise ConfigError(f"nothing to resume: no checkpoint at {checkpoint}")
        remove_orphans(*orphans)
        folder.check_not_finished(config.train.steps, config.train.epochs, config.train.time)
        if not checkpoint.is_file():
            raise ConfigError(f"nothing to resume: no checkpoint at {checkpoint}")
        check_resumable(checkpoint)  # a damaged one: the error names the newest intact one
        if explicit:
            _check_checkpoint_settings(checkpoint, config)
        if folder.has_config():
            changed = folder.changed_settings(config)
            if changed:
                raise ConfigError("a resumed run must keep its settings; these differ from the saved run: "
                                  + ", ".join(changed))
        return checkpoint
    if last.is_file() or folder.is_finished():
        raise ConfigError(f"{folder.path} already holds a run; pass --resume to continue it, or choose another "
                          "--out-dir")
    remove_orphans(*orphans)
    return None


def _check_checkpoint_settings(checkpoint: Path, config: ExperimentConfig) -> None:
    """Refuse a checkpoint (``--resume PATH``) that another run, of other settings, wrote.

    :raises ConfigError: naming the settings that differ.
    """
    recorded = read_checkpoint(checkpoint, mmap=True).get("hyper_parameters", {}).get("config")
    if not isinstance(recorded, dict):
        raise ConfigError(f"{checkpoint} records no run settings (it is not a checkpoint sei wrote); it cannot be "
                          "resumed")
    changed = changed_settings(from_dict(recorded), config)
    if changed:
        raise ConfigError(f"{checkpoint} is a checkpoint of a run with other settings ({'; '.join(changed[:4])}); "
                          "resume it with its own settings (sei train --resume RUN_FOLDER), or start a new run")


def build_trainer(config: ExperimentConfig, callbacks: Sequence[L.Callback] = (), replan: bool = False,
                  **overrides: Any) -> L.Trainer:
    """The Lightning trainer for a resolved configuration (``overrides`` go to ``L.Trainer``).

    :param replan: the time budget decided the steps: re-plan them from the run's pace, recording each plan in
        ``config.yaml`` (:class:`sei.training.time_budget.TimeBudget`).
    """
    train, folder = config.train, RunFolder(config.out_dir)
    steps = StepBudget(train.steps) if train.steps is not None else None
    bar = RunProgressBar(train.steps) if train.progress else None
    timing = None
    if train.time is not None:
        # a partial of a module-level function: spawned data-parallel processes receive the callbacks pickled
        record = functools.partial(_record_plan, config, bar)
        timing = (TimeBudget(train.time, steps, train.lr_decay_start, record) if replan and steps is not None
                  else TimeBudget(train.time))
    loggers = [CSVLogger(folder.path, name=LOG_DIR, version=CSV_LOG),
               TensorBoardLogger(folder.path, name=LOG_DIR, version=TENSORBOARD_LOG, default_hp_metric=False)]
    settings = dict(
        **lightning_devices(train.device, train.devices),
        num_nodes=train.num_nodes,
        strategy=train.strategy,
        precision=train.precision,
        max_epochs=train.epochs if train.epochs is not None else -1,  # step budgets: see StepBudget
        default_root_dir=folder.path,
        logger=loggers,
        callbacks=[DivergenceGuard(folder.checkpoint_dir), *([bar] if bar is not None else []),
                   *checkpoint_callbacks(folder.checkpoint_dir, train.checkpoint_every, train.checkpoint_keep),
                   *([steps] if steps is not None else []), *([timing] if timing is not None else []),
                   *([EMA(train.ema_decay)] if train.ema_decay else []), *callbacks],
        plugins=[AtomicCheckpointIO()],
        use_distributed_sampler=False,  # EpochSampler shards samples across ranks itself
        check_val_every_n_epoch=max(train.val_every, 1),
        limit_val_batches=None if train.val_every else 0,
        num_sanity_val_steps=0,
        # no gradient_clip_val: SEIModule.configure_gradient_clipping applies train.grad_clip and grad_clip_median,
        # after the divergence guard saw the raw gradients
        log_every_n_steps=train.log_every,
        enable_progress_bar=train.progress,
        enable_model_summary=False,  # the command line shows it with --verbose
    )
    settings.update(overrides)
    silence_lightning_tips()
    return L.Trainer(**settings)


def _record_plan(config: ExperimentConfig, bar: RunProgressBar | None, steps: int) -> None:
    """A time budget's new plan of ``steps``: recorded in the run's ``config.yaml``, and shown by its bar."""
    RunFolder(config.out_dir).write_config(config.replace(train=dataclasses.replace(config.train, steps=steps)))
    if bar is not None:
        bar.set_total(steps)


def prepare_run(config: ExperimentConfig, physics: LinearPhysics | None = None
                ) -> tuple[ExperimentConfig, ImageSet | None]:
    """The configuration a run trains with, every value decided: :func:`sei.config.resolve.resolve` (if not yet),
    then what the training images tell (read once, here): an ``auto`` noise level or gain estimated, the channels of
    a grayscale set, and float data's intensity map.

    :param physics: an operator handed over from Python (see :func:`train`).
    :return: the configuration and the training images as read (``None`` for a named dataset of clean images).
    """
    if physics is not None:  # the other values are decided (again, if they were) for this operator
        config = dataclasses.replace(config, physics=spec_of_operator(physics), resolved=False)
    config = resolve(config)
    images = read_training_folder(config)
    spec = estimate_run_noise(config, images)
    channels = config.model.channels
    if channels is None and not config.model.weights:  # grayscale data: a 1-channel network
        channels = training_channels(config.data.dataset, images.images if images is not None else None)
    # the folder's map to network units (sei.io.intensity), recorded so that restoring float data can reuse it
    intensity = images.intensity.to_dict() if images is not None and images.intensity is not None else None
    config = config.replace(physics=spec, model=dataclasses.replace(config.model, channels=channels),
                            data=dataclasses.replace(config.data, intensity=intensity))
    return config, images


def _with_memory_mode(config: ExperimentConfig, mode: str) -> ExperimentConfig:
    """``config`` with memory ``mode`` and its switches (:func:`sei.config.recipe.memory_switches`)."""
    switches = memory_switches(mode, config.model.backbone)
    return config.replace(
        train=dataclasses.replace(config.train, memory=switches["train.memory"],
                                  release_memory=switches["train.release_memory"]),
        model=dataclasses.replace(config.model, checkpointing=switches["model.checkpointing"]))


def train(config: ExperimentConfig, resume: bool | str | Path = False, callbacks: Sequence[L.Callback] = (),
          physics: LinearPhysics | None = None, **trainer_overrides: Any) -> TrainResult:
    """Train as ``config`` says; write ``config.yaml``, checkpoints, logs and ``weights.pt`` to its ``out_dir``.

    :param config: the configuration, resolved (:func:`sei.config.resolve.resolve`) or not.
    :param resume: True to continue from ``out_dir/checkpoints/last.ckpt``, or a checkpoint path.
    :param physics: any deepinv ``LinearPhysics`` with a Gaussian noise model, instead of the operator that
        ``config.physics`` describes (e.g. ``deepinv.physics.Blur`` with a motion kernel). Operators that ``sei``
        builds are recorded in ``config.yaml`` as their spec; others cannot be, which is said, and such a run can
        only be continued from Python.
    :raises ConfigError: if ``out_dir`` already holds a run and ``resume`` is not set, or settings conflict.
    """
    config, train_images = prepare_run(config, physics)
    folder = RunFolder(config.out_dir)
    folder.check_writable()
    # one process trains in a folder: the others (a second run, a resume while the first still runs) are refused
    with folder.claim() if rank_zero_only.rank == 0 else contextlib.nullcontext():
        return _train_claimed(config, folder, train_images, resume, callbacks, physics, trainer_overrides)


def _plan_duration(config: ExperimentConfig, physics: LinearPhysics, method: Any) -> ExperimentConfig:
    """Time the run's step (:func:`sei.training.time_budget.measure_step`), say how long the run will take, and
    with a time budget and no step count, set the steps that fit."""
    timing = measure_step(config, physics, method)
    train = config.train
    if train.time is not None and train.steps is None and train.epochs is None:
        steps = steps_for_time(train.time, timing.seconds)
        rank_zero_only(print)(f"time budget {duration_text(train.time)}: {timing.expected(steps)}")
        return config.replace(train=dataclasses.replace(train, steps=steps))
    if train.steps is not None:
        rank_zero_only(print)(f"expected duration: {timing.expected(train.steps)}"
                              + (f", stopped at {duration_text(train.time)}" if train.time is not None else ""))
    else:
        rank_zero_only(print)(f"expected: {timing.seconds:.3g} s per step at batch {timing.batch} (measured)")
    return config


def _train_claimed(config: ExperimentConfig, folder: RunFolder, train_images: ImageSet | None,
                   resume: bool | str | Path, callbacks: Sequence[L.Callback], physics: LinearPhysics | None,
                   trainer_overrides: dict[str, Any]) -> TrainResult:
    """:func:`train`, in a folder this process holds."""
    if resume and config.train.memory == AUTO and folder.has_config() and folder.is_sei_run():
        saved = folder.config  # a resumed run keeps its mode
        recorded = requested_mode(saved.train.memory, saved.model.checkpointing, saved.train.release_memory)
        config = _with_memory_mode(config, "none" if recorded == AUTO else recorded)
    check_crop_fits(config, train_images)
    checkpoint = _prepare_output(config, resume)
    if not config.physics.operator:
        config = config.replace(physics=folder.store_kernel(config.physics))  # the run keeps its own kernel copy
    if physics is None:
        physics = config.physics.build()
    method = build_method(config.loss.method, **config.loss.method_options())
    if config.train.memory == AUTO:  # measured before training; recorded in config.yaml
        plan = plan_memory(config, physics, method)
        rank_zero_only(print)(plan.describe())
        config = _with_memory_mode(config, plan.mode)
    planned = checkpoint is None and (config.train.time is not None or config.train.progress)
    steps_given = config.train.steps
    if planned:
        config = _plan_duration(config, physics, method)
    torch.manual_seed(config.train.seed)  # the backbone's initial weights
    module = SEIModule(config, physics=physics, method=method)
    folder.write_config(config)
    datamodule = SEIDataModule(config, physics=physics, train_images=train_images)
    replan = planned and steps_given is None and config.train.steps is not None  # the time budget chose them
    trainer = build_trainer(config, callbacks, replan=replan, **trainer_overrides)
    started = time.perf_counter()
    with warnings.catch_warnings():
        # Our sampler is deliberate, and small datasets give short epochs: Lightning's hints do not apply.
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*number of training batches.*smaller than the logging interval.*")
        warnings.filterwarnings("ignore", message=".*Experiment logs directory.*exists and is not empty.*")
        warnings.filterwarnings("ignore", message=".*Checkpoint directory.*exists and is not empty.*")
        warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")  # Lightning internals
        # the summary's size estimate for bf16 weights kept in float32: a note about the summary, not the run
        warnings.filterwarnings("ignore", message=".*is not supported by the model summary.*")
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(checkpoint) if checkpoint else None)
    seconds = time.perf_counter() - started
    plan = StepBudget.of(trainer)
    if plan is not None and plan.steps != config.train.steps:  # a time budget's last plan, as config.yaml has it
        config = config.replace(train=dataclasses.replace(config.train, steps=plan.steps))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.as_tensor(v).numel() == 1}
    weights = folder.weights_path
    if trainer.global_rank == 0:
        check_finite_weights(module.backbone, folder.checkpoint_dir, trainer.global_step)
        save_weights(module.backbone, weights, physics=learned_physics(config.physics, module.method))
        summary = {"epochs": trainer.current_epoch, "steps": trainer.global_step, "seconds": seconds,
                   "metrics": metrics, "weights": str(weights)}
        budget = next((c for c in trainer.callbacks if isinstance(c, TimeBudget)), None)
        if budget is not None:
            summary.update(training_seconds=budget.elapsed(), stopped_by_time=budget.stopped_early)
            if budget.stopped_early:
                rank_zero_only(print)(
                    f"the time budget ({duration_text(budget.seconds)}) was spent at step {trainer.global_step} of "
                    f"{config.train.steps}: the learning rate had not finished its schedule (the machine slowed down "
                    "after the plan was made); --resume --time LONGER continues it")
        atomic_write_text(folder.summary_path, json.dumps(summary, indent=2))
    return TrainResult(folder.path, weights, config, metrics, seconds, trainer.global_rank)


def load_run_config(run_dir: str | Path) -> ExperimentConfig:
    """The configuration a run recorded in its folder (a kernel stored there resolved against the folder)."""
    return RunFolder(run_dir).config


def spec_of_operator(physics: LinearPhysics) -> PhysicsSpec:
    """The physics spec of an operator handed over from Python: its own spec when ``sei`` built it; otherwise a
    record of its class, upscale and noise level, which cannot rebuild it (said with a warning).

    :raises ConfigError: if it is not a deepinv ``LinearPhysics`` with a Gaussian noise model of one level.
    """
    if not isinstance(physics, LinearPhysics):
        raise ConfigError(f"train(physics=...) needs a deepinv LinearPhysics, got {type(physics).__name__}")
    sigma = gaussian_sigma(physics)
    spec = getattr(physics, "spec", None)
    if isinstance(spec, PhysicsSpec):
        return spec
    upscale = physics_upscale(physics)
    name = f"{type(physics).__module__}.{type(physics).__qualname__}"
    warnings.warn(f"the operator {name} cannot be written to config.yaml (only its class and noise level are); "
                  "this run can be reproduced and resumed from Python only, by passing the same operator",
                  stacklevel=3)
    return PhysicsSpec(task="sr" if upscale > 1 else "deblurring", sr_factor=upscale if upscale > 1 else None,
                       noise_level=level_of(sigma), operator=name)


def train_or_reuse(config: ExperimentConfig) -> Path:
    """Train ``config``, resume it if it was interrupted, or reuse its weights if it already finished.

    :raises ConfigError: if the folder holds a run with other settings (nothing is overwritten).
    """
    config = resolve(config)
    folder = RunFolder(config.out_dir)
    if folder.has_config():
        changed = folder.changed_settings(config, RESUMABLE_CHANGES - BUDGET)
        if changed:
            raise ConfigError(f"{folder.path} holds a run with other settings ({', '.join(changed)}); remove it or "
                              "choose another --out-dir")
    if folder.is_finished():
        return folder.weights_path
    return train(config, resume=folder.last_checkpoint.is_file()).weights
