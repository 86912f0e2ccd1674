"""The Lightning module: a backbone, an operator and a training method, with the paper's optimiser.

The training loop is Lightning's (``trainer.fit`` in :func:`sei.training.run.train`); what one step does is
:meth:`SEIModule.training_step`: the method's loss on a batch, every random draw from a generator seeded by (run
seed, step, rank).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from deepinv.physics import LinearPhysics
from torch import nn

from sei.config.recipe import is_fp16
from sei.config.resolve import resolve
from sei.config.schema import ExperimentConfig, from_dict
from sei.config.sources import locate_network
from sei.core.errors import ConfigError
from sei.core.memory import release_freed_memory
from sei.core.rng import make_generator
from sei.losses.base import Method
from sei.losses.registry import build_method
from sei.metrics import psnr, ssim
from sei.models.compilation import compile_mode, compile_network, mark_step_begin, running_eagerly
from sei.models.registry import build_backbone
from sei.models.unet import UNet
from sei.models.weights import load_backbone
from sei.physics.base import Float32Physics, float32_physics, physics_upscale
from sei.training.budget import StepBudget
from sei.training.clipping import GradientClip
from sei.training.schedule import paper_scheduler

__all__ = ["build_network", "SEIModule"]

CLIP_STATE = "gradient_clip"  # the checkpoint's entry for the recent gradient norms (GradientClip)


def build_network(config: ExperimentConfig, physics) -> nn.Module:
    """A resolved run's backbone: loaded from its initial weights (a file, a run folder or a published name), or
    built from its preset, with activation checkpointing as its memory mode says.

    :param physics: the operator physics-aware backbones run (the run's, in float32: see :class:`Float32Physics`).
    :raises ConfigError: for checkpointing on a backbone without it, or channels the initial weights do not have.
    """
    model = config.model
    upscale = physics_upscale(physics)
    if model.weights:
        source = locate_network(model.weights, download=config.data.download)
        network = load_backbone(source.weights, backbone=model.backbone or source.backbone, upscale=upscale,
                                physics=physics)
        held = int(network.sei_architecture.get("in_chans", 3))
        if model.channels is not None and model.channels != held:
            raise ConfigError(f"the initial weights {model.weights} are for {held}-channel images, not "
                              f"{model.channels} (--channels)")
    else:
        network = build_backbone(model.backbone, upscale=upscale, in_chans=model.channels or 3, physics=physics)
    if hasattr(network, "checkpointing"):  # as the run's memory mode says, whatever initial weights had
        network.checkpointing = model.checkpointing
    elif model.checkpointing:
        raise ConfigError(f"activation checkpointing is available for SwinIR backbones, not {model.backbone}")
    return network


class SEIModule(L.LightningModule):
    """Trains ``backbone`` with ``method`` on measurements of ``physics``.

    Each training step draws its random numbers (SURE probe, transform parameters, fresh noise) from a
    generator seeded by (run seed, global step, rank), so a resumed run repeats an uninterrupted one.

    :param config: the experiment configuration (resolved here if it is not yet), or its dict; its dict is stored
        in checkpoints.
    :param physics: the run's operator, built once by the caller (default: built from ``config``'s physics spec).
    :param method: the training method, built once by the caller (default: built from ``config``'s loss section).
    """

    def __init__(self, config: ExperimentConfig | dict[str, Any], physics: LinearPhysics | None = None,
                 method: Method | None = None) -> None:
        super().__init__()
        config = resolve(config if isinstance(config, ExperimentConfig) else from_dict(config))
        self.save_hyperparameters({"config": config.to_dict()})
        self.config: ExperimentConfig = config
        # The operator as given, a submodule: it moves with the module and its state-dict keys stay ``physics.*``.
        self.physics = physics if physics is not None else config.physics.build()
        # What every physics call of the steps (losses, physics-aware backbones) goes through: the operator in
        # float32 outside autocast, whatever its kind (see Float32Physics); kept outside the module tree, like
        # `_network`, so that it adds no state-dict keys.
        object.__setattr__(self, "_float32_physics", float32_physics(self.physics))
        self.backbone = build_network(config, self.float32_physics)
        self.method = method if method is not None else build_method(config.loss.method,
                                                                     **config.loss.method_options())
        # The network the steps call: the backbone, or its compiled wrapper (`configure_model`), kept outside
        # the module tree so that state-dict keys stay those of the backbone.
        object.__setattr__(self, "_network", self.backbone)
        self._compile_mode = compile_mode(config.train.compile)  # None: not compiled
        self._step_started: float | None = None
        self._step_ended: float | None = None
        self._waited = self._computed = 0.0  # seconds over the measured steps (data_wait_fraction)
        self._clip = GradientClip(config.train.grad_clip, config.train.grad_clip_median)

    @property
    def float32_physics(self) -> Float32Physics:
        """The run's operator as the training steps call it: in float32, outside autocast."""
        return self._float32_physics

    def on_fit_start(self) -> None:
        if self.config.train.release_memory:  # in every process, spawned data-parallel ranks included
            release_freed_memory()

    def configure_model(self) -> None:
        if isinstance(self.backbone, UNet):  # convolutions run faster on channels-last tensors (same numbers)
            self.backbone.to(memory_format=torch.channels_last_3d if self.backbone.spatial_dims == 3
                             else torch.channels_last)
        if self._compile_mode is not None and self._network is self.backbone:
            object.__setattr__(self, "_network", compile_network(self.backbone, self._compile_mode))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self._network(y)

    def training_step(self, batch: dict[str, torch.Tensor], batch_index: int) -> torch.Tensor:
        mark_step_begin(self._compile_mode)
        generator = make_generator(self.config.train.seed, "loss", self.global_step, self.global_rank)
        output = self.method(self._network, self.float32_physics, batch["y"], batch.get("x"), generator=generator,
                             borders=batch.get("borders"))
        size = batch["y"].shape[0]
        self.log("train/loss", output.loss.detach(), prog_bar=True, batch_size=size)
        for name, value in output.parts.items():
            self.log(f"train/{name}", value, batch_size=size)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], batch_size=size)
        return output.loss

    def on_train_epoch_start(self) -> None:
        # The wait before an epoch's first batch includes starting the loader's worker processes, which the
        # steady state does not pay: counted only without workers (then it is just fetching that batch).
        loader = self.trainer.train_dataloader
        self._step_ended = time.perf_counter() if getattr(loader, "num_workers", 1) == 0 else None

    def on_train_batch_start(self, batch: Any, batch_index: int) -> None:
        self._step_started = time.perf_counter()

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_index: int) -> None:
        now = time.perf_counter()
        if self._step_started is not None:
            compute = now - self._step_started
            samples = batch["y"].shape[0] * self.trainer.world_size
            self.log("train/samples_per_s", samples / max(compute, 1e-9), prog_bar=True, batch_size=1)
            if self._step_ended is not None:  # time between the previous step's end and this one's start
                self._waited += self._step_started - self._step_ended
                self._computed += compute
            # Logged at every step as the run's running fraction over the measured steps: logged only on steps
            # that were not an epoch's first, it never appeared with one step per epoch, or when the logging
            # interval landed on first steps.
            if self._computed > 0:
                self.log("train/data_wait_fraction", self._waited / (self._waited + self._computed), batch_size=1)
        self._step_ended = now

    def validation_step(self, batch: dict[str, torch.Tensor], batch_index: int) -> None:
        with running_eagerly(self._compile_mode):  # validation images come in any size: no graph for each
            estimate = self(batch["y"])
        reference = batch["x"]
        self.log("val/psnr", psnr(estimate, reference).mean(), prog_bar=True, batch_size=1, sync_dist=True)
        if min(reference.shape[-2:]) >= 11:
            self.log("val/ssim", ssim(estimate, reference).mean(), batch_size=1, sync_dist=True)

    def configure_optimizers(self) -> dict[str, Any]:
        train = self.config.train
        parameters = list(self.backbone.parameters())
        # On GPUs the fused Adam updates all parameters in a few kernels instead of hundreds of launches (SwinIR has
        # 490 tensors), which counts once CUDA graphs remove the network's launches; CPU runs keep the for-loop
        # implementation that their published numbers were measured with. Not under float16: its gradient scaler
        # lets a fused step unscale internally, and the gradients could then not be clipped before it.
        fused = (bool(parameters) and all(parameter.is_cuda for parameter in parameters)
                 and not is_fp16(train.precision))
        optimizer = torch.optim.Adam(parameters, lr=train.lr, betas=tuple(train.betas), fused=fused or None)
        scheduler = paper_scheduler(optimizer, self._planned_steps(), train.lr_decay_start, train.lr_final_factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _planned_steps(self) -> int | Callable[[], int]:
        """The run's length for the schedule: its step budget, read at each step (a time budget may re-plan it while
        the rate is constant), or Lightning's estimate for an epoch budget."""
        budget = StepBudget.of(self._trainer)  # unattached: the config's steps
        if budget is not None:
            return lambda: budget.steps
        train = self.config.train
        return train.steps if train.steps is not None else int(self.trainer.estimated_stepping_batches)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CLIP_STATE] = self._clip.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if CLIP_STATE in checkpoint:  # checkpoints written before the relative bound start its history afresh
            self._clip.load_state_dict(checkpoint[CLIP_STATE])
        # checkpoints written before the schedule was a LambdaLR hold a SequentialLR's state; its step is all a
        # LambdaLR needs from it
        for state in checkpoint.get("lr_schedulers", ()):
            state.setdefault("lr_lambdas", [None])

    def configure_gradient_clipping(self, optimizer: torch.optim.Optimizer, gradient_clip_val: float | None = None,
                                    gradient_clip_algorithm: str | None = None) -> None:
        # Clipped here for every optimiser (Lightning's mixed-precision plugin refuses to clip for a fused one,
        # assuming a gradient scaler; the fused Adam is never used under float16, and a float16 scaler has unscaled
        # the gradients before this hook): the run's bound and its bound relative to recent norms, see GradientClip.
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        norm = self._clip(parameters)
        self.log("train/grad_norm", norm, batch_size=1)
