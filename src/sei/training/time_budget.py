"""Wall-clock budgets (``sei train --time 10m``) and the expected duration printed before training.

A short probe times the run's own training step (its backbone, method, precision, batch and crop, on random
inputs) before training starts. With a time budget and no step count, the number of steps that fits is decided
from it, so that the learning-rate schedule (:mod:`sei.training.schedule`) runs its whole course; the steps are
recorded in ``config.yaml``, so a resumed run keeps the same schedule. :class:`TimeBudget` then stops training
once the budget is spent, whatever the probe said (a busy machine); the time spent travels in checkpoints, so a
resumed run gets what is left.

The probe can be wrong: another program may share the machine, and a short probe misjudges some steps (3-D networks
ran 20% faster in training than probed). So a run whose steps the budget decided re-plans them from its own measured
pace while its learning rate is still constant (:class:`TimeBudget`); the decay then ends when the budget does.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch

from sei.config.schema import ExperimentConfig
from sei.core.units import duration_text, plural
from sei.training.budget import StepBudget

__all__ = ["FIXED_OVERHEAD_SECONDS", "PROBE_STEPS", "REPLAN_EVERY", "REPLAN_SHARE", "STEP_SHARE", "StepTiming",
           "TimeBudget", "WARMUP_STEPS", "measure_step", "steps_for_time"]

# Steps timed by the probe, after untimed warm-up steps (allocations, kernels chosen: the first bf16 steps on a CPU
# take several times longer than the rest).
PROBE_STEPS = 3
WARMUP_STEPS = 2
# The share of a time budget given to training steps; the rest is left for data loading, logging and checkpoints.
STEP_SHARE = 0.9
# Seconds of every run that are not steps: the trainer's start, the last checkpoint and the weights.
FIXED_OVERHEAD_SECONDS = 5.0
# Re-planning from the run's own pace: after 4, 8, 16, 32 and 64 timed steps, then every 64. Its pace already holds
# data loading, logging and checkpoints, so only a small share is held back, for the pace's own jitter.
REPLAN_EVERY = 64
REPLAN_SHARE = 0.97


@dataclass(frozen=True)
class StepTiming:
    """The probe's measurement of one training step.

    :ivar seconds: the median time of one step, in seconds.
    :ivar batch: the batch size it was measured at.
    """

    seconds: float
    batch: int

    def expected(self, steps: int) -> str:
        """``"about 21 min for 2400 steps (0.52 s per step at batch 8, measured)"``."""
        total = steps * self.seconds / STEP_SHARE + FIXED_OVERHEAD_SECONDS
        return (f"about {duration_text(total)} for {plural(steps, 'step')} ({self.seconds:.3g} s per step at batch "
                f"{self.batch}, measured)")


def steps_for_time(seconds: float, step_seconds: float, share: float = STEP_SHARE) -> int:
    """The number of steps that fit in a budget of ``seconds``, at ``step_seconds`` per step (at least 1), when
    ``share`` of the time after the fixed overhead goes to steps.

    >>> steps_for_time(600, 0.25)
    2142
    """
    usable = max(seconds - FIXED_OVERHEAD_SECONDS, 0.0) * share
    return max(1, math.floor(usable / step_seconds))


def measure_step(config: ExperimentConfig, physics: Any, method: Any, device: torch.device | None = None,
                 steps: int = PROBE_STEPS) -> StepTiming:
    """Time the run's training step on a throwaway copy of its network (the run's initial weights and random
    streams are not touched).

    :param config: a resolved configuration (its memory mode decided).
    :param physics: the run's operator; ``method``: its training method (run in evaluation mode, so that a learned
        noise level does not move).
    """
    from sei.core.devices import torch_device
    from sei.physics.base import float32_physics
    from sei.training.memory_plan import MemorySetup, precision_context, probe_batch
    from sei.training.module import build_network

    device = device or torch_device(config.train.device)
    state = torch.random.get_rng_state()
    try:
        network = build_network(config, float32_physics(physics)).to(device)
    finally:
        torch.random.set_rng_state(state)
    autocast, dtype = precision_context(config.train.precision, device.type)
    if dtype is not None:
        network = network.to(dtype)
    MemorySetup(config.train.memory).prepare_network(network)
    operator = float32_physics(physics).to(device)
    channels = int(network.sei_architecture.get("in_chans", 3))
    batch = config.data.batch_size
    y, x = probe_batch(config.data.crop_size, physics, batch, channels, device, dtype or torch.float32)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-12)
    training = method.training
    method.eval()
    durations = []
    try:
        for step in range(WARMUP_STEPS + steps):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            with autocast:
                loss = method(network, operator, y, x, generator=torch.Generator().manual_seed(step)).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if step >= WARMUP_STEPS:
                durations.append(time.perf_counter() - started)
    finally:
        method.train(training)
        del network, optimizer, loss, y, x
        gc.collect()
    return StepTiming(statistics.median(durations), batch)


class TimeBudget(L.Callback):
    """Stop training once ``seconds`` of training are spent (counted over resumes: kept in checkpoints), and
    optionally re-plan the run's steps so that its learning-rate schedule ends with the budget.

    The re-plan times this process's steps after :data:`WARMUP_STEPS` and sets the steps to those done plus those
    that fit in the time left at that pace (:func:`steps_for_time` with :data:`REPLAN_SHARE`). It only happens
    while the rate is constant, and never moves the decay's start before the current step, so the steps already
    taken had the same rate under every plan: a run resumed from any checkpoint, with the last plan, repeats it.
    Under data parallelism rank 0's plan is broadcast.

    :param seconds: the budget, in seconds of wall clock.
    :param plan: the run's step budget, to re-plan; ``None`` keeps the steps as they are.
    :param decay_start: the fraction of the steps after which the rate decays (``train.lr_decay_start``).
    :param on_replan: called on rank 0 with each new step count (to record it).
    """

    def __init__(self, seconds: float, plan: StepBudget | None = None, decay_start: float = 0.5,
                 on_replan: Callable[[int], None] | None = None) -> None:
        if not seconds > 0:
            raise ValueError(f"a time budget must be positive, got {seconds}")
        self.seconds = float(seconds)
        self.spent = 0.0  # before this process's start (a resumed run)
        self.stopped_early = False
        self.plan = plan if decay_start > 0 else None  # no constant phase: nothing could be re-planned safely
        self.decay_start = decay_start
        self.on_replan = on_replan
        self._started: float | None = None
        self._first_step = 0
        self._origin: tuple[int, float] | None = None  # (step, clock) the pace is timed from

    def elapsed(self) -> float:
        """Seconds of training spent, resumes included."""
        return self.spent + (time.perf_counter() - self._started if self._started is not None else 0.0)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.perf_counter()
        self._first_step = getattr(trainer, "global_step", 0)
        self._origin = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_index: int
                           ) -> None:
        if self.elapsed() >= self.seconds and not trainer.should_stop:
            trainer.should_stop = True
            self.stopped_early = True
        if self.plan is not None:  # on every rank at the same steps, whatever each one's clock says (a broadcast)
            self._replan(trainer)

    def _replan(self, trainer: L.Trainer) -> None:
        step, now = trainer.global_step, time.perf_counter()
        if self._origin is None:  # the first steps are slow (allocations, kernels chosen): not timed
            if step - self._first_step >= WARMUP_STEPS:
                self._origin = (step, now)
            return
        origin_step, origin_time = self._origin
        timed = step - origin_step
        if timed < 4 or (timed & (timed - 1) and timed % REPLAN_EVERY):  # not 4, 8, 16, 32, 64, 128, 192 ...
            return
        if step >= self.decay_start * (self.plan.steps - 1):  # the rate decays: the plan is final
            return
        pace = (now - origin_time) / timed
        steps = step + steps_for_time(self.seconds - self.elapsed(), pace, REPLAN_SHARE)
        steps = max(steps, math.ceil(step / self.decay_start) + 1)  # the decay still ahead
        steps = int(trainer.strategy.broadcast(steps, src=0))
        if abs(steps - self.plan.steps) > 0.01 * self.plan.steps:  # not for the pace's jitter
            self.plan.set_steps(trainer, steps)
            if self.on_replan is not None and trainer.is_global_zero:
                self.on_replan(steps)

    def state_dict(self) -> dict[str, Any]:
        return {"spent": self.elapsed()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.spent = float(state_dict.get("spent", 0.0))
