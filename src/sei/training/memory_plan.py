"""How a training step holds its memory (``train.memory``), and choosing it automatically.

Modes, fastest first:

- ``none``: every activation kept for the backward pass;
- ``checkpointing``: SwinIR recomputes each Swin block's activations in the backward pass (``model.checkpointing``);
- ``lean``: checkpointing, and freed memory returned to the system (``train.release_memory``, see
  :mod:`sei.core.memory`; a CPU matter: on a GPU it is checkpointing).

``auto`` (the default) measures before training: one training step (forward, backward, optimiser step) of the
run's own network, method, precision and crop size, on a copy of the network, at batch 1 (and 2), its peak memory
increase extrapolated to the run's batch as an affine function of the batch. It takes the first mode whose
estimate fits in :data:`USABLE_FRACTION` of the memory available (``MemAvailable`` of ``/proc/meminfo`` on a CPU,
``torch.cuda.mem_get_info`` on a GPU); when none fits, :class:`sei.core.errors.InsufficientMemoryError` says which
batch or crop size would, before training starts. Backbones without checkpointing (U-Nets, unrolled networks) have
only ``none``: for them ``auto`` is a check.

"""

from __future__ import annotations

import copy
import gc
import math
import re
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sei.config.recipe import AUTO, MEMORY_MODES, check_memory_mode
from sei.core.errors import ConfigError, InsufficientMemoryError

__all__ = ["GIB", "MEMINFO", "OUT_OF_MEMORY", "USABLE_FRACTION", "available_memory", "candidate_modes",
           "choose_memory_mode", "estimate_mode", "format_bytes", "MemoryPlan", "MemorySetup", "ModeEstimate",
           "PeakMeter", "plan_memory", "precision_context", "probe_batch", "StepProbe"]

if TYPE_CHECKING:
    import torch
    from deepinv.physics import LinearPhysics

    from sei.config.schema import ExperimentConfig
    from sei.losses.base import Method

# The share of the available memory a training step may take: the rest is for the data set kept in memory, the
# loader, logging, and what other processes allocate meanwhile.
USABLE_FRACTION = 0.85
GIB = 2**30
OUT_OF_MEMORY = 2**62  # what a probe that ran out of memory reports: fits nowhere
MEMINFO = Path("/proc/meminfo")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def format_bytes(size: int) -> str:
    """``25.1 GB`` (GiB, one decimal) from 1 GB up, ``340 MB`` (MiB) below."""
    return f"{size / GIB:.1f} GB" if size >= GIB else f"{size / 2**20:.0f} MB"


def available_memory(device: torch.device) -> int:
    """Bytes a training step can still allocate: free device memory (plus what this process's caching allocator
    holds unused) on a GPU, ``MemAvailable`` of ``/proc/meminfo`` on a CPU (free physical pages elsewhere).

    :raises ConfigError: where neither can be read.
    """
    import os

    import torch

    if device.type == "cuda":
        torch.cuda.empty_cache()
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    try:
        match = re.search(r"MemAvailable:\s+(\d+) kB", MEMINFO.read_text())
    except OSError:
        match = None
    if match:
        return int(match.group(1)) * 1024
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError) as error:
        raise ConfigError("the available memory cannot be read here; choose --memory none|checkpointing|lean") \
            from error


class MemorySetup:
    """How a memory mode is applied: to the process (allocator settings) and to the network (checkpointing).
    The probe and ``benchmarks/memory_modes.py`` apply modes through it; ``sei train`` through the configuration
    that :func:`sei.config.recipe.memory_switches` gives (``model.checkpointing``, read by the training module).
    """

    def __init__(self, mode: str, release_threshold: int | None = None) -> None:
        """:param release_threshold: ``lean``: allocations above this many bytes are mapped individually and
            returned to the system when freed (default :data:`sei.core.memory.THRESHOLD_BYTES`)."""
        check_memory_mode(mode)
        if mode == AUTO:
            raise ConfigError("MemorySetup needs a resolved mode, not auto")
        self.mode = mode
        self.release_threshold = release_threshold

    @property
    def recomputes(self) -> bool:
        """Whether a network that can checkpoint its activations does."""
        return self.mode in ("checkpointing", "lean")

    def prepare_process(self) -> bool:
        """``lean``: this process's allocator returns freed memory to the system (process-wide, for good).

        :return: whether anything was changed.
        """
        from sei.core.memory import THRESHOLD_BYTES, release_freed_memory

        return self.mode == "lean" and release_freed_memory(self.release_threshold or THRESHOLD_BYTES)

    def prepare_network(self, network: Any) -> None:
        """Switch a network's activation checkpointing (networks without it are left alone)."""
        if hasattr(network, "checkpointing"):
            network.checkpointing = self.recomputes


class PeakMeter:
    """The peak memory increase of what runs between :meth:`start` and :meth:`peak`, in bytes.

    GPU: ``torch.cuda.max_memory_allocated`` above what was allocated at the start. CPU (Linux): the process's
    peak resident set (``VmHWM``), reset at the start through ``/proc/self/clear_refs`` after freed memory was
    returned to the system, above the resident set at the start.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._base = 0

    @staticmethod
    def available_here(device: torch.device) -> bool:
        """Whether peaks can be measured on ``device`` in this process."""
        import os

        return device.type == "cuda" or (_CLEAR_REFS.exists() and os.access(_CLEAR_REFS, os.W_OK)
                                          and _STATUS.exists())

    def start(self) -> None:
        import torch

        from sei.core.memory import trim_freed_memory

        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return
        trim_freed_memory()
        _CLEAR_REFS.write_text("5")  # resets VmHWM to the current resident set
        self._base = self._status_bytes("VmRSS")

    def peak(self) -> int:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return max(int(torch.cuda.max_memory_allocated(self.device)) - self._base, 0)
        return max(self._status_bytes("VmHWM") - self._base, 0)

    @staticmethod
    def _status_bytes(field: str) -> int:
        return int(re.search(rf"{field}:\s+(\d+) kB", _STATUS.read_text()).group(1)) * 1024


def precision_context(precision: str, device_type: str) -> tuple[Any, Any]:
    """(autocast context, parameter dtype or None) of a Lightning precision name."""
    import torch

    name = str(precision)
    if name in ("bf16-mixed", "bf16"):
        return torch.autocast(device_type, dtype=torch.bfloat16), None
    if name in ("16-mixed", "16"):
        return torch.autocast(device_type, dtype=torch.float16), None
    dtype = {"bf16-true": torch.bfloat16, "16-true": torch.float16, "64-true": torch.float64,
             "64": torch.float64}.get(name)
    return nullcontext(), dtype


def probe_batch(crop_size: int, physics: Any, batch: int, channels: int, device: torch.device,
                dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random batch of training crops ``y`` and matching images ``x`` (volumes for an operator of volumes,
    at the largest crop depth): what the memory and time probes take a step on."""
    import torch

    from sei.core.scaling import upscaled_size
    from sei.data.pairs import crop_shape
    from sei.physics.base import physics_spatial_dims, physics_upscale

    shape = crop_shape(crop_size, physics_spatial_dims(physics))
    generator = torch.Generator().manual_seed(0)
    y = torch.rand(batch, channels, *shape, generator=generator).to(device, dtype)
    x = torch.rand(batch, channels, *upscaled_size(shape, physics_upscale(physics)), generator=generator).to(device,
                                                                                                          dtype)
    return y, x


class StepProbe:
    """Measures the peak memory of one training step of a run (its backbone, method, precision and crop size) at
    a given memory mode and batch size, on a copy of the network with random inputs.

    :param network: the run's backbone (copied, never trained).
    :param method: the run's training method (run in evaluation mode: see :func:`plan_memory`).
    :param physics: the run's operator.
    :param device: where the run trains.
    :param copy_network: False when ``network`` is a throwaway built for the probe: it is then used (and changed:
        mode, dtype, device) instead of copied, which saves a network copy's time and memory.
    """

    def __init__(self, network: Any, method: Any, physics: LinearPhysics, config: ExperimentConfig,
                 device: torch.device, copy_network: bool = True) -> None:
        import torch

        from sei.physics.base import float32_physics

        self.config = config
        self.device = device
        self.method = method
        # called as the training steps call it: in float32 outside autocast (see sei.physics.base.Float32Physics)
        self.physics = float32_physics(physics).to(device)
        self.backbone = (copy.deepcopy(network) if copy_network else network).to(device)
        self.autocast, dtype = precision_context(config.train.precision, device.type)
        self.dtype = dtype or torch.float32
        if dtype is not None:
            self.backbone = self.backbone.to(dtype)
        self.channels = int(network.sei_architecture.get("in_chans", 3))

    def __call__(self, mode: str, batch: int) -> int:
        """Peak memory increase of one step in ``mode`` at ``batch``, in bytes.

        ``lean`` changes this process's allocator settings for good (:func:`sei.core.memory.release_freed_memory`), so
        it is measured last, and only when the run is going to use it.
        """
        import torch

        setup = MemorySetup(mode)
        if self.device.type == "cpu":
            setup.prepare_process()
        setup.prepare_network(self.backbone)
        y, x = probe_batch(self.config.data.crop_size, self.physics, batch, self.channels, self.device, self.dtype)
        optimizer = torch.optim.Adam(self.backbone.parameters(), lr=1e-12)
        meter = PeakMeter(self.device)
        training = self.method.training
        self.method.eval()
        meter.start()
        try:
            with self.autocast:
                loss = self.method(self.backbone, self.physics, y, x, generator=torch.Generator().manual_seed(1)).loss
            loss.backward()
            optimizer.step()
            return meter.peak()
        except (MemoryError, torch.OutOfMemoryError):
            return OUT_OF_MEMORY
        except RuntimeError as error:  # PyTorch's CPU allocator reports a failed allocation as a RuntimeError
            if "alloc" in str(error).lower():
                return OUT_OF_MEMORY
            raise
        finally:
            self.method.train(training)
            loss = None
            optimizer.zero_grad(set_to_none=True)
            del optimizer, y, x
            gc.collect()


@dataclass(frozen=True)
class ModeEstimate:
    """A mode's estimated peak at the run's batch.

    :ivar needed: bytes (an upper bound when ``bound`` is True: batch x the batch-1 peak).
    :ivar probes: measured peak increase in bytes by batch size.
    """

    mode: str
    needed: int
    probes: dict[int, int]
    bound: bool = False

    def affine(self) -> tuple[float, float]:
        """(fixed bytes, bytes per sample) of the probes' affine fit (fixed 0 with one probe)."""
        if 2 in self.probes and 1 in self.probes:
            slope = max(self.probes[2] - self.probes[1], 0)
            return float(self.probes[1] - slope), float(slope)
        return 0.0, float(self.probes[min(self.probes)]) / min(self.probes)


@dataclass(frozen=True)
class MemoryPlan:
    """The mode chosen for a run, with the numbers behind it."""

    mode: str
    estimates: tuple[ModeEstimate, ...]
    available: int
    batch: int
    device: str

    @property
    def budget(self) -> int:
        return int(self.available * USABLE_FRACTION)

    def numbers(self) -> str:
        """Each estimate and the memory available, e.g. ``step at batch 8: none ~25.1 GB, ...; RAM available ...``."""
        where = "free GPU memory" if self.device.startswith("cuda") else "RAM available"
        parts = [f"{e.mode} {'<= ' if e.bound else '~'}{format_bytes(e.needed)}" for e in self.estimates]
        return (f"step at batch {self.batch}: {', '.join(parts)}; {where} {format_bytes(self.available)}, of which "
                f"{USABLE_FRACTION:.0%} for the step")

    def describe(self) -> str:
        """One line for the terminal: the choice and the numbers behind it."""
        if not self.estimates:
            return f"memory: {self.mode} (peak memory cannot be measured on {self.device}: not checked)"
        return f"memory: {self.mode} ({self.numbers()})"


def estimate_mode(measure: Callable[[str, int], int], mode: str, batch: int, budget: int) -> ModeEstimate:
    """A mode's peak at ``batch`` from probes at batch 1 and, when needed, 2.

    The peak is taken as affine in the batch with a non-negative fixed part (gradients, optimiser state), so
    ``batch`` x the batch-1 peak bounds it: when that bound fits in ``budget`` no second probe is run. A second
    probe is not run either when it could not fit itself (2 x the batch-1 peak over ``budget``); the bound stands.
    """
    first = measure(mode, 1)
    if batch == 1:
        return ModeEstimate(mode, first, {1: first})
    if batch * first <= budget or 2 * first > budget:
        return ModeEstimate(mode, batch * first, {1: first}, bound=True)
    second = measure(mode, 2)
    slope = max(second - first, 0)
    return ModeEstimate(mode, first + (batch - 1) * slope, {1: first, 2: second})


def candidate_modes(backbone_checkpoints: bool, device_type: str) -> tuple[str, ...]:
    """The modes ``auto`` tries, fastest first: without checkpointing only ``none``; on a GPU ``lean`` is
    checkpointing (its allocator setting is the CPU's), so it is not tried."""
    if not backbone_checkpoints:
        return ("none",)
    return ("none", "checkpointing") if device_type == "cuda" else MEMORY_MODES


def choose_memory_mode(measure: Callable[[str, int], int], modes: Sequence[str], batch: int, crop: int,
                       available: int, device: str = "cpu") -> MemoryPlan:
    """The first of ``modes`` whose estimated peak at ``batch`` fits in :data:`USABLE_FRACTION` of ``available``.

    :param measure: ``(mode, batch) -> bytes``, the peak memory increase of one step (e.g. a :class:`StepProbe`).
    :param crop: the run's crop size in pixels (for the suggestion when nothing fits).
    :param available: bytes available to the run.
    :raises InsufficientMemoryError: when no mode fits, with the batch and crop sizes that would.
    """
    budget = int(available * USABLE_FRACTION)
    estimates = []
    for mode in modes:
        estimate = estimate_mode(measure, mode, batch, budget)
        estimates.append(estimate)
        if estimate.needed <= budget:
            return MemoryPlan(mode, tuple(estimates), available, batch, device)
    plan = MemoryPlan(modes[-1], tuple(estimates), available, batch, device)
    raise InsufficientMemoryError(_what_fits(plan, estimates[-1], crop))


def _what_fits(plan: MemoryPlan, leanest: ModeEstimate, crop: int) -> str:
    """The message when nothing fits: the numbers, and the largest batch and crop sizes that would."""
    fixed, per_sample = leanest.affine()
    budget = plan.budget
    advice = []
    if per_sample > 0 and budget > fixed:
        batch = int((budget - fixed) // per_sample)
        if batch >= 1:
            advice.append(f"--batch-size {batch}")
        # per-sample memory grows with the crop's area
        side = int(crop * math.sqrt((budget - fixed) / (per_sample * plan.batch)))
        side -= side % 8
        if 8 <= side < crop:
            advice.append(f"--crop-size {side}")
    hint = (" or ".join(advice) + " would fit") if advice else "no smaller batch fits either: free memory or use a " \
                                                               "smaller network (--model)"
    return (f"the training step does not fit in memory ({plan.numbers()}): even {leanest.mode} needs about "
            f"{format_bytes(leanest.needed)}; {hint}")


def plan_memory(config: ExperimentConfig, physics: LinearPhysics, method: Method | None = None,
                available: int | None = None, device: torch.device | None = None) -> MemoryPlan:
    """Choose the memory mode of a resolved run by measuring its step (see the module's description).

    :param method: the run's training method (default: built from the configuration); the probe runs it in
        evaluation mode, so that a learned noise level is not moved by the probe's step.
    :param available: bytes available to the run (default: measured on its device, divided among the processes
        a multi-process CPU run starts on this machine).
    :raises InsufficientMemoryError: when even the leanest mode does not fit.
    """
    import torch

    from sei.core.devices import torch_device, training_processes
    from sei.losses.registry import build_method
    from sei.physics.base import float32_physics
    from sei.training.module import build_network

    device = device or torch_device(config.train.device)
    if device.type not in ("cpu", "cuda") or not PeakMeter.available_here(device):
        return MemoryPlan("none", (), 0, config.data.batch_size, str(device))  # nothing to measure with
    if available is None:
        available = available_memory(device)
        processes = training_processes(config.train.device, config.train.devices)  # on this node
        if device.type == "cpu" and processes > 1:
            available //= processes
    method = method if method is not None else build_method(config.loss.method, **config.loss.method_options())
    state = torch.random.get_rng_state()
    try:  # building the probe's network draws initial weights: the run's are unchanged
        network = build_network(config, float32_physics(physics))
    finally:
        torch.random.set_rng_state(state)
    probe = StepProbe(network, method, physics, config, device, copy_network=False)
    modes = candidate_modes(hasattr(network, "checkpointing"), device.type)
    del network
    return choose_memory_mode(probe, modes, config.data.batch_size, config.data.crop_size, available, str(device))
