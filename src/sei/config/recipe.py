"""The recipe: every default that depends on the machine, the data set or the budget, decided here and nowhere else.

=====================  ===========================================================================================
setting                ``auto`` or left open becomes
=====================  ===========================================================================================
crop and batch size    :data:`~sei.core.defaults.CROP_SIZE` and :data:`~sei.core.defaults.BATCH_SIZE` for images;
                       for volumes crops of :data:`~sei.core.defaults.VOLUME_CROP_SIZE` or four times SURE's
                       margin, in batches of about as many voxels as :data:`~sei.core.defaults.VOLUME_BATCH_SIZE`
                       crops of the former (:func:`default_crop`)
backbone, budget, lr   the laptop recipe (:data:`LAPTOP_BACKBONE`, :data:`LAPTOP_STEPS`, :data:`LAPTOP_LR`) on a CPU
                       and on the small photograph sets anywhere; the paper's (SwinIR, :data:`PAPER_EPOCHS`,
                       :data:`PAPER_LR`) on a GPU. The learning rate follows the backbone (:func:`default_lr`).
gradient clipping      :data:`LAPTOP_GRAD_CLIP` for the laptop recipe, none for the paper's
precision (training)   ``bf16-mixed`` where the device computes bf16 natively, else ``32-true``
precision (restoring)  ``bf16-mixed`` for 8-bit data on such a device, else ``32-true``
compilation            ``reduce-overhead`` (CUDA graphs) on a single GPU, else eager
memory mode            measured before training (:mod:`sei.training.memory_plan`); its switches: :func:`memory_switches`
data loader workers    none on a CPU, up to 8 on a GPU
=====================  ===========================================================================================

Measured (``benchmarks/precision_quality.py``, held-out photographs, Gaussian_R2, noise 5, on an H100): bf16-mixed
trains to within 0.02 dB of float32 (unet-small, 1000 steps: SEI -0.01 dB, supervised -0.02 dB; the paper's
SwinIR, SEI, 300 steps: +0.00 dB); on this project's CPU (avx512_bf16) within 0.07 dB (unet-small, SEI, 400 steps),
with a unet-small SEI step 1.5-2x faster and the paper's SwinIR step 2.6-2.8x faster. The losses keep their
reductions and SURE's finite difference in float32, and training calls every operator in float32 outside autocast
(:class:`sei.physics.base.Float32Physics`): only the network runs in bf16.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

from sei.core.defaults import BATCH_SIZE, CROP_SIZE, SURE_DIVERGENCES, VOLUME_BATCH_SIZE, VOLUME_CROP_SIZE
from sei.core.scaling import measured_margin
from sei.core.devices import has_native_bf16
from sei.core.errors import ConfigError

if TYPE_CHECKING:  # imported where a device is made: `sei train --help` quotes this module's constants
    import torch

__all__ = ["AUTO", "FP16_PRECISIONS", "LAPTOP_BACKBONE", "LAPTOP_DATASETS", "LAPTOP_GRAD_CLIP", "LAPTOP_LR",
           "LAPTOP_STEPS", "MEMORY_MODES", "PAPER_BACKBONE", "PAPER_EPOCHS", "PAPER_LR", "STEP_BUDGET_EPOCH",
           "GPU_VOLUME_BACKBONE", "GRAD_CLIP_MEDIAN", "VOLUME_BACKBONE",
           "check_memory_mode", "default_augment", "default_backbone", "default_budget", "default_crop",
           "default_divergence", "default_lr", "default_num_workers",
           "is_fp16",
           "memory_switches", "requested_mode", "resolve_compile", "resolve_grad_clip", "resolve_grad_clip_median",
           "resolve_inference_precision",
           "resolve_precision", "uses_laptop_recipe"]

AUTO = "auto"  # the word that asks this module to decide

# -- the paper's recipe and the laptop recipe -------------------------------------------------------------------
PAPER_BACKBONE = "swinir"
PAPER_LR = {"deblurring": 1e-4, "sr": 2e-4}
PAPER_EPOCHS = 500
# The laptop recipe: what trains best in about 10 minutes on two CPU cores (benchmarks/laptop_quality.py). A run
# gets it on a CPU, and on the sample and photos datasets anywhere; the paper's SwinIR and budget need a GPU.
LAPTOP_BACKBONE = "unet-small"
# About 10 minutes at 0.25 s per fp32 step on 2 cores, 6 with bf16. Held-out PSNR (benchmarks/laptop_quality.py):
# 411 -> 1158 fp32 steps gained 0.56 dB, 3920 bf16 steps only 0.05 dB more, so bf16's speed shortens the run.
LAPTOP_STEPS = 2400
LAPTOP_LR = 1e-3
# The laptop recipe's bound on the global gradient norm. Its gradients' norm is 0.005-0.3 once training settles;
# at twice the rate one batch's norm jumped to 5e7 and training diverged, which this bound stops (measured,
# benchmarks/laptop_quality.py's data: 1200 steps gave the same held-out PSNR, +0.02 dB, with and without it).
LAPTOP_GRAD_CLIP = 1.0
# Volumes and the laptop recipe also bound each step's gradient norm at this many times the median of the last steps'
# (sei.training.clipping): a 3-D U-Net's norms settle near 0.02, 50 times below the fixed bound, and single steps
# above them broke runs on the nuclei stack (benchmarks/volumes.py); a 2-D U-Net at the laptop rate diverged within
# the fixed bound in a CI run of the README's own-data training (16-bit cells, 5 minutes: the loss rose 1000-fold
# over ten steps at step 2000 of 3915, then overflowed). The paper's recipe keeps the bound its numbers were
# measured with (none).
GRAD_CLIP_MEDIAN = 4.0
# The named datasets small enough that the laptop recipe suits them on any device (sei.data.sources).
LAPTOP_DATASETS = ("sample", "photos")
# The networks of volumes (z-stacks), on a CPU and on a GPU.
VOLUME_BACKBONE = "unet3d-small"
GPU_VOLUME_BACKBONE = "unet3d-base"
# Batches per epoch at least, for runs with a step budget (progress, checkpoints).
STEP_BUDGET_EPOCH = 25


def uses_laptop_recipe(dataset: str, device: torch.device) -> bool:
    """Whether defaults left open get the laptop recipe: on a CPU (the paper's SwinIR does not train there in any
    sensible time), and on the sample and photos datasets (too small for the paper's budget) anywhere."""
    return str(dataset).lower() in LAPTOP_DATASETS or device.type != "cuda"


def default_backbone(laptop: bool, spatial_dims: int = 2) -> str:
    """The backbone a run trains when none is given (and no initial weights say which): for volumes the 3-D U-Net
    sized for a CPU (:data:`VOLUME_BACKBONE`), or the larger one on a GPU."""
    if spatial_dims == 3:
        return VOLUME_BACKBONE if laptop else GPU_VOLUME_BACKBONE
    return LAPTOP_BACKBONE if laptop else PAPER_BACKBONE


def default_crop(spatial_dims: int = 2, psf_shape: tuple[int, ...] = (), upscale: int = 1) -> tuple[int, int]:
    """``(crop size, batch size)`` of a run that gives neither: the images' defaults, or for volumes crops at least
    four times SURE's margin along every axis and at least :data:`~sei.core.defaults.VOLUME_CROP_SIZE`, in batches
    of about the voxels of :data:`~sei.core.defaults.VOLUME_BATCH_SIZE` crops of that size (at least one).

    SURE scores a crop without the PSF's half-extent at each end of every axis (what it holds depends on voxels
    outside the crop), so a crop four times that margin keeps half of each axis. A widefield PSF is long along z:
    the nuclei stack's 21 planes leave 12 of a 32-plane crop's planes scored, and crops of 40 (in batches of 2 for
    4 of 32^3) trained 31.92 dB against 31.35 and 31.04 (two seeds) in 20 minutes (benchmarks/volumes.py). The crop
    size counts measurement voxels: with axial super-resolution by ``upscale`` a crop's plane spans that many of the
    PSF's, and its margin along z is that many times smaller.

    >>> default_crop(), default_crop(3, (9, 9, 9)), default_crop(3, (21, 15, 15)), default_crop(3, (41, 33, 33))
    ((48, 8), (32, 4), (40, 2), (80, 1))
    >>> default_crop(3, (45, 21, 21), 3)  # margins of 8, 10 and 10 measurement voxels
    (40, 2)
    """
    if spatial_dims == 3:
        crop = max((VOLUME_CROP_SIZE, *(4 * m for m in measured_margin(psf_shape, upscale))))
        return crop, max(1, round(VOLUME_BATCH_SIZE * (VOLUME_CROP_SIZE / crop) ** 3))
    return CROP_SIZE, BATCH_SIZE


def default_augment(spatial_dims: int) -> bool:
    """Whether training crops are flipped and turned by the operator's symmetries (:class:`sei.data.pairs.CropDataset`)
    when the run does not say: for volumes, not for images.

    A z-stack is often one measurement, a single orientation of its scene: a 3-D U-Net trained on the benchmark
    phantom alone restored its flipped and turned copies worse (its 16-fold self-ensemble lost 0.19 dB, 17.66
    against 17.85); trained on crops drawn through the PSF's 16 symmetries it restored as well (17.83) and its
    ensemble gained 0.11 dB (17.94; benchmarks/volumes.py, 20 minutes on two cores). Images keep the paper's
    protocol, with which their published numbers were measured.

    >>> default_augment(3), default_augment(2)
    (True, False)
    """
    return spatial_dims == 3


def default_divergence(fine_tuning: bool) -> str:
    """How SURE estimates its divergence when the run does not say: exactly (``jvp``) when fine-tuning given
    weights, the paper's finite difference otherwise.

    A trained network continued for minutes on a few fixed measurements is where the finite difference was gamed
    (``pretrained:photos-sr-x2`` on 14 photographs: -42 per pixel against +0.43 exact, 31.86 dB; exact, 32.65 dB;
    on Gaussian_R2 deblurring both 30.68 dB; sei.losses.sure). From scratch the finite difference is the paper's
    and costs about 1.4 times less in bf16.

    >>> default_divergence(True), default_divergence(False)
    ('jvp', 'finite-difference')
    """
    return SURE_DIVERGENCES[1] if fine_tuning else SURE_DIVERGENCES[0]


def default_budget(laptop: bool) -> dict[str, int]:
    """``{"steps": ...}`` for the laptop recipe, ``{"epochs": ...}`` for the paper's."""
    return {"steps": LAPTOP_STEPS} if laptop else {"epochs": PAPER_EPOCHS}


def default_lr(backbone: str | None, task: str) -> float:
    """The learning rate follows the backbone: its preset's own rate (:class:`sei.models.registry.BackbonePreset`),
    else the paper's rate by task (unknown backbones, e.g. weights without an architecture record, are the paper's
    SwinIR)."""
    from sei.models.registry import BACKBONES

    preset = BACKBONES.get(str(backbone))
    if preset is not None and preset.lr is not None:
        return preset.lr
    return PAPER_LR[task]


def _bound_or_off(value: Any, automatic: float | None, setting: str) -> float | None:
    """A positive bound from a setting: ``auto`` gives ``automatic``; ``none``, None and 0 turn it off.

    :raises ConfigError: for a negative or non-numeric value, naming ``setting``.
    """
    word = value.strip().lower() if isinstance(value, str) else None
    if word == AUTO:
        return automatic
    if value is None or word == "none":
        return None
    try:
        bound = float(value)
    except (TypeError, ValueError):
        bound = math.nan
    if not (math.isfinite(bound) and bound >= 0.0):
        raise ConfigError(f"{setting} must be a positive number, auto or none, got {value!r}")
    return bound or None


def resolve_grad_clip(value: Any, laptop: bool) -> float | None:
    """The gradient-norm bound a run trains with: ``auto`` gives :data:`LAPTOP_GRAD_CLIP` to the laptop recipe and
    none to the paper's; ``none``, None and 0 turn it off.

    :raises ConfigError: for a negative or non-numeric value.

    >>> resolve_grad_clip("auto", laptop=True), resolve_grad_clip("auto", laptop=False), resolve_grad_clip(0.5, True)
    (1.0, None, 0.5)
    """
    return _bound_or_off(value, LAPTOP_GRAD_CLIP if laptop else None, "grad_clip")


def resolve_grad_clip_median(value: Any, spatial_dims: int, laptop: bool) -> float | None:
    """The bound on a step's gradient norm as a multiple of the recent median norm (:mod:`sei.training.clipping`):
    ``auto`` gives :data:`GRAD_CLIP_MEDIAN` to volumes and to the laptop recipe, none to the paper's recipe on images;
    ``none``, None and 0 turn it off.

    :raises ConfigError: for a negative or non-numeric value.

    >>> [resolve_grad_clip_median("auto", 3, False), resolve_grad_clip_median("auto", 2, True)]
    [4.0, 4.0]
    >>> resolve_grad_clip_median("auto", 2, False), resolve_grad_clip_median("8", 2, False)
    (None, 8.0)
    """
    automatic = GRAD_CLIP_MEDIAN if spatial_dims == 3 or laptop else None
    return _bound_or_off(value, automatic, "grad_clip_median")


# -- precision ---------------------------------------------------------------------------------------------------
FP16_PRECISIONS = ("16-mixed", "16", "16-true")  # float16: gradients may overflow, a scaler may rescale them


def is_fp16(precision: str) -> bool:
    """Whether Lightning's ``precision`` computes in float16, whose gradients may overflow now and then (under
    ``16-mixed`` a gradient scaler multiplies them and skips the overflowing steps itself)."""
    return str(precision) in FP16_PRECISIONS


def resolve_precision(precision: str, device: torch.device) -> str:
    """Lightning's precision for a requested one: ``"auto"`` becomes ``"bf16-mixed"`` where
    :func:`sei.core.devices.has_native_bf16`, else ``"32-true"``; anything else is returned unchanged."""
    if str(precision) != AUTO:
        return str(precision)
    return "bf16-mixed" if has_native_bf16(device) else "32-true"


def resolve_inference_precision(precision: str, device: torch.device, eight_bit: bool) -> str:
    """The precision a network restores in: ``"auto"`` becomes ``"bf16-mixed"`` for 8-bit data (``eight_bit``:
    8-bit inputs written as 8-bit outputs) on a device with native bf16, else ``"32-true"``: 16-bit and float data
    would lose digits, and emulated bf16 is slower. Measured on this project's CPU (avx512_bf16) with an SEI
    unet-small: 1.8x faster, 92-94 % of 8-bit output values identical to float32's, the others 1 or 2 grey levels
    apart, PSNR within 0.002 dB. Other precisions are returned unchanged."""
    import torch

    if precision != AUTO:
        return precision
    return "bf16-mixed" if eight_bit and has_native_bf16(torch.device(device)) else "32-true"


# -- compilation -------------------------------------------------------------------------------------------------
def resolve_compile(value: Any, device: torch.device, processes: int = 1) -> str | None:
    """The compile mode of a run on ``device`` in ``processes`` processes: ``auto`` becomes ``reduce-overhead`` on a
    single GPU, else None; anything else as :func:`sei.models.compilation.compile_mode` reads it.

    Measured on an H100 (``benchmarks/train_step.py``, the paper's SwinIR, SEI, batch 8): the eager bf16 step is no
    faster than the float32 one, bound by kernel launches; compiled with CUDA graphs it is 3.6x faster. On a CPU
    compiling gave no gain (the laptop U-Net's step is 86 % oneDNN convolutions) and costs its compile time.
    Data-parallel runs stay eager unless asked: CUDA-graph trees under DistributedDataParallel have open failure
    reports (PyTorch issues 113809, 140395), and this project has not had several GPUs to test them on.
    """
    from sei.models.compilation import compile_mode

    if isinstance(value, str) and value.strip().lower() == AUTO:
        return "reduce-overhead" if device.type == "cuda" and processes == 1 else None
    return compile_mode(value)


# -- memory ------------------------------------------------------------------------------------------------------
MEMORY_MODES = ("none", "checkpointing", "lean")  # fastest first


def check_memory_mode(mode: Any) -> None:
    """:raises ConfigError: if ``mode`` is not ``auto`` or one of :data:`MEMORY_MODES`."""
    if mode != AUTO and mode not in MEMORY_MODES:
        raise ConfigError(f"unknown memory mode {mode!r}; valid: {AUTO}, {', '.join(MEMORY_MODES)}")


def requested_mode(memory: str, checkpointing: bool, release_memory: bool) -> str:
    """The mode a configuration asks for: ``train.memory``, or, when that is ``auto``, the mode that the older
    switches ``model.checkpointing`` / ``train.release_memory`` force (runs recorded before ``train.memory``)."""
    check_memory_mode(memory)
    if memory != AUTO:
        return memory
    if release_memory:
        return "lean"
    return "checkpointing" if checkpointing else AUTO


def memory_switches(mode: str, backbone: str | None) -> dict[str, Any]:
    """The settings that apply memory ``mode`` to a run of ``backbone``: ``train.memory``, ``model.checkpointing``
    (recompute activations in the backward pass) and ``train.release_memory`` (glibc returns freed memory).

    ``lean`` on a backbone without checkpointing is the allocator setting alone; ``checkpointing`` asked for such a
    backbone is left for the network to refuse (it names the backbone).
    """
    from sei.models.registry import BACKBONES

    check_memory_mode(mode)
    if mode == AUTO:
        raise ConfigError("memory_switches needs a resolved mode, not auto")
    recompute = mode in ("checkpointing", "lean")
    preset = BACKBONES.get(str(backbone))
    if mode == "lean" and not (preset is not None and preset.checkpointing):
        recompute = False
    return {"train.memory": mode, "model.checkpointing": recompute, "train.release_memory": mode == "lean"}


# -- data loading ------------------------------------------------------------------------------------------------
def default_num_workers(accelerator_is_gpu: bool) -> int:
    """No worker processes on a CPU (crops are cheap slices and workers would compete for cores), up to 8 on a GPU."""
    if not accelerator_is_gpu:
        return 0
    return min(8, os.cpu_count() or 1)
