"""Experiment configuration: typed sections, YAML files, command-line overrides, and resolved defaults.

A configuration has five sections (BasicSR-style YAML)::

    name: div2k_deblurring_gaussian_r2_sei
    physics: {task: deblurring, kernel: Gaussian_R2, noise_level: 5}
    data: {dataset: div2k, crop_size: 48, batch_size: 8}
    model: {backbone: swinir}
    loss: {method: sei, alpha: 1.0}
    train: {epochs: 500, lr: 1.0e-4}

Values left at ``None`` are resolved from the others by :func:`resolve` (learning rate by task, backbone and
budget by dataset), and the resolved configuration is what a run records in its ``config.yaml``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sei.errors import ConfigError, MissingGroundTruthError
from sei.physics.spec import DEFAULT_KERNEL, PhysicsSpec, read_degradation_spec, resolve_spec

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
# The named datasets small enough that the laptop recipe suits them on any device (sei.data.sources).
LAPTOP_DATASETS = ("sample", "photos")


# The physics section is the one physics spec (see sei.physics.spec).
PhysicsConfig = PhysicsSpec


@dataclass
class DataConfig:
    dataset: str = "div2k"
    kind: str = "clean"  # "clean" images, or "measurements" only
    datasets_dir: str = "datasets"
    download: bool = False
    resize: Any = "auto"  # shorter side in px, null to keep, "auto": 256 for named datasets
    crop_size: int = 48
    batch_size: int = 8
    samples_per_epoch: int | None = None  # default: one crop per image (at least 25 batches for step budgets)
    num_workers: int | None = None  # default: 0 on CPU, up to 8 on GPU
    noise_seed: int = 0
    val_dataset: str | None = None  # default: the dataset's "val" split when it has one
    val_max_images: int | None = None
    strict: bool = False  # an unreadable image fails the run instead of being skipped (always named)
    intensity: dict | None = None  # the folder's map to network units {offset, scale, dtype} (sei.intensity), set by train


@dataclass
class ModelConfig:
    backbone: str | None = None  # default: swinir, or the small backbone on the sample and photos datasets
    weights: str | None = None  # initial weights (fine-tuning)
    checkpointing: bool = False  # SwinIR recomputes block activations in the backward pass: set from train.memory
    channels: int | None = None  # image channels of the network: None = 1 for grayscale data, else 3 (at training)


@dataclass
class LossConfig:
    method: str = "sei"
    alpha: float = 1.0
    tau: float = 0.01
    stop_gradient: bool = True
    scale_factors: list[float] = field(default_factory=lambda: [0.75, 0.5])
    rotation_multiples: float = 1.0
    sure_constant: str = "unbiased"
    batched_probe: bool = True


@dataclass
class TrainConfig:
    epochs: int | None = None
    steps: int | None = None
    lr: float | None = None
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    lr_decay_start: float = 0.5  # fraction of training after which the rate decays linearly
    lr_final_factor: float = 0.01
    seed: int = 0
    device: str = "auto"  # cpu, cuda, cuda:1, auto
    devices: Any = 1  # number of devices (or "auto")
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "auto"  # auto: bf16-mixed where the device computes bf16 natively, else 32-true
    compile: Any = "auto"  # auto: reduce-overhead (CUDA graphs) on a single GPU, else off; false; a torch.compile mode
    memory: str = "auto"  # auto (measured before training), none, checkpointing, lean: sei.training.memory_plan
    release_memory: bool = False  # glibc returns freed memory to the system (sei.memory): set from train.memory
    checkpoint_every: int = 10  # epochs; the latest checkpoint is also kept at every epoch
    checkpoint_keep: int = 3  # periodic checkpoints kept (the newest); 0 keeps all
    ema_decay: float | None = None  # an exponential moving average of the weights for validation and weights.pt
    grad_clip: Any = "auto"  # bound on the global gradient norm; auto: LAPTOP_GRAD_CLIP for the laptop recipe,
    # none for the paper's (which does not clip); none or 0: off
    val_every: int = 0  # epochs; 0 turns validation off
    log_every: int = 10  # steps
    progress: bool = True


@dataclass
class ExperimentConfig:
    name: str | None = None
    out_dir: str | None = None
    physics: PhysicsConfig = field(default_factory=PhysicsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["physics"] = self.physics.to_dict()
        return values

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


_SECTIONS = {"physics": PhysicsConfig, "data": DataConfig, "model": ModelConfig, "loss": LossConfig,
             "train": TrainConfig}
_TOP_LEVEL = ("name", "out_dir")


def _section_fields(section: str) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(_SECTIONS[section])}


def from_dict(data: dict[str, Any], base: ExperimentConfig | None = None) -> ExperimentConfig:
    """A configuration from nested ``data``, on top of ``base`` (defaults if None).

    :raises ConfigError: for unknown sections or keys (listing the valid ones) and malformed sections.
    """
    config = from_flat({}, base)  # a copy: sections are mutable
    if not isinstance(data, dict):
        raise ConfigError(f"a configuration must be a mapping, got {type(data).__name__}")
    for key, value in data.items():
        if key in _TOP_LEVEL:
            setattr(config, key, value)
            continue
        if key not in _SECTIONS:
            raise ConfigError(f"unknown configuration section {key!r}; valid: {', '.join((*_TOP_LEVEL, *_SECTIONS))}")
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"configuration section {key!r} must be a mapping, got {value!r}")
        fields = _section_fields(key)
        section = getattr(config, key)
        for name, item in value.items():
            if name not in fields:
                raise ConfigError(f"unknown key {key}.{name}; valid keys of {key}: {', '.join(fields)}")
            setattr(section, name, item)
    return config


def from_flat(overrides: dict[str, Any], base: ExperimentConfig | None = None) -> ExperimentConfig:
    """A copy of ``base`` with dotted-key overrides such as ``{"train.lr": 1e-4}``."""
    base = base or ExperimentConfig()
    config = ExperimentConfig(name=base.name, out_dir=base.out_dir,
                              **{s: dataclasses.replace(getattr(base, s)) for s in _SECTIONS})
    for dotted, value in overrides.items():
        if dotted in _TOP_LEVEL:
            setattr(config, dotted, value)
            continue
        section, _, name = dotted.partition(".")
        if section not in _SECTIONS or name not in _section_fields(section):
            raise ConfigError(f"unknown configuration key {dotted!r}")
        setattr(getattr(config, section), name, value)
    return config


def load_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML file, with clear errors for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"configuration file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections, got {type(data).__name__}")
    return data


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """Defaults, then the YAML file at ``path``, then dotted-key ``overrides``."""
    return from_flat(overrides or {}, from_dict(load_yaml(path)))


def _is_named_dataset(dataset: str) -> bool:
    from sei.data.sources import NAMED_DATASETS

    return str(dataset).lower() in NAMED_DATASETS


def default_name(config: ExperimentConfig) -> str:
    physics = config.physics
    dataset = Path(str(config.data.dataset)).name if not _is_named_dataset(config.data.dataset) else config.data.dataset
    detail = physics.operator.rsplit(".", 1)[-1] if physics.operator else physics.short_name()
    return f"{dataset}_{physics.task}_{detail}_noise{physics.noise_label()}_{config.loss.method}"


def resolve_physics(physics: PhysicsSpec, data: DataConfig) -> PhysicsSpec:
    """The run's physics spec: clean datasets default to the paper's kernel; a folder of measurements takes what
    its ``degradation.yaml`` records, and otherwise must be told its kernel."""
    if physics.operator:  # handed over from Python (train(config, physics=...)): recorded as it is
        return physics
    if data.kind == "measurements":
        return resolve_spec(physics, None, read_degradation_spec(data.dataset) if Path(str(data.dataset)).is_dir()
                            else None)
    return resolve_spec(physics, DEFAULT_KERNEL)


def uses_laptop_recipe(config: ExperimentConfig) -> bool:
    """Whether defaults left open get the laptop recipe: on a CPU (the paper's SwinIR does not train there in any
    sensible time), and on the sample and photos datasets (too small for the paper's budget) anywhere."""
    from sei.devices import torch_device

    return str(config.data.dataset).lower() in LAPTOP_DATASETS or torch_device(config.train.device).type != "cuda"


def default_lr(backbone: str | None, task: str) -> float:
    """The learning rate follows the backbone: a preset's own rate where it has one, else the paper's rate by task
    for SwinIR and the laptop rate for the convolutional and unrolled networks (measured: 1e-4 leaves them far
    from converged in a laptop budget)."""
    from sei.models.registry import BACKBONES

    preset = BACKBONES.get(str(backbone))
    if preset is not None and preset.lr is not None:
        return preset.lr
    return PAPER_LR[task] if preset is None or preset.family == "swinir" else LAPTOP_LR


def resolve_train_compile(train: TrainConfig) -> str | None:
    """The torch.compile mode ``train`` runs in (None: not compiled), ``auto`` resolved for its device and number of
    processes (:func:`sei.models.compilation.resolve_compile`).

    :raises ConfigError: for an unknown mode, device or device count.
    """
    from sei.devices import torch_device, training_processes
    from sei.models.compilation import resolve_compile

    return resolve_compile(train.compile, torch_device(train.device),
                           training_processes(train.device, train.devices, train.num_nodes))


def resolve_grad_clip(value: Any, laptop: bool) -> float | None:
    """The gradient-norm bound a run trains with: ``auto`` gives :data:`LAPTOP_GRAD_CLIP` to the laptop recipe and
    none to the paper's; ``none``, None and 0 turn it off.

    :raises ConfigError: for a negative or non-numeric value.
    """
    word = value.strip().lower() if isinstance(value, str) else None
    if word == "auto":
        return LAPTOP_GRAD_CLIP if laptop else None
    if value is None or word == "none":
        return None
    try:
        bound = float(value)
    except (TypeError, ValueError):
        bound = math.nan
    if not (math.isfinite(bound) and bound >= 0.0):
        raise ConfigError(f"grad_clip must be a positive number, auto or none, got {value!r}")
    return bound or None


def _backbone_of_weights(weights: str | None) -> str | None:
    """The backbone that initial weights hold (a run folder, a weights file with a record, a published name)."""
    if not weights:
        return None
    from sei.errors import SEIError
    from sei.models.weights import read_weights
    from sei.reconstructors import locate_network

    try:
        source = locate_network(weights)
        return source.backbone or (read_weights(source.weights)[1] or {}).get("backbone")
    except SEIError:  # a missing or unreadable file is reported when the network is built, with its details
        return None


def describe_recipe(config: ExperimentConfig) -> str:
    """One line on what a resolved configuration trains, for the terminal."""
    train, model = config.train, config.model
    budget = f"{train.steps} steps" if train.steps is not None else f"{train.epochs} epochs"
    return (f"{model.backbone or 'backbone of the initial weights'}, {budget}, batch {config.data.batch_size} "
            f"of {config.data.crop_size}x{config.data.crop_size} crops, lr {train.lr:g}"
            f"{f' (gradient norm clipped at {train.grad_clip:g})' if train.grad_clip else ''}, {config.loss.method}, "
            f"precision {train.precision}{f', compiled ({train.compile} mode)' if train.compile else ''}")


def _resolve_memory_mode(config: ExperimentConfig) -> None:
    """A memory mode given (``train.memory``, or the older ``model.checkpointing``/``train.release_memory``) is
    recorded and its switches set; ``auto`` is left for the run to measure (``sei.training.memory_plan``)."""
    from sei.training.memory_plan import AUTO, requested_mode, set_memory_mode

    mode = requested_mode(config.train, config.model)
    if mode != AUTO:
        set_memory_mode(config, mode, _backbone_of_weights(config.model.weights) if not config.model.backbone else None)


def resolve(config: ExperimentConfig) -> ExperimentConfig:
    """Fill the automatic values and check the configuration's consistency.

    :raises ConfigError: for inconsistent or invalid settings.
    """
    from sei.devices import torch_device
    from sei.methods import canonical_method, method_entry
    from sei.training.precision import resolve_precision
    from sei.training.validation import check_train_settings

    config = from_flat({}, config)
    data, model, loss, train = config.data, config.model, config.loss, config.train
    if data.kind not in ("clean", "measurements"):
        raise ConfigError(f"data.kind must be 'clean' or 'measurements', got {data.kind!r}")
    loss.method = canonical_method(loss.method, loss.stop_gradient)
    if method_entry(loss.method).needs_ground_truth and data.kind == "measurements":
        raise MissingGroundTruthError(
            f"method {loss.method!r} needs clean images, but {data.dataset} holds measurements only; "
            "use a self-supervised method (sei, css, ei-shift, ei-rotate, sure)")
    config.physics = physics = resolve_physics(config.physics, data)
    laptop = uses_laptop_recipe(config)
    train.precision = resolve_precision(train.precision, torch_device(train.device))
    if model.backbone is None and not model.weights:  # with initial weights, they say which backbone
        model.backbone = LAPTOP_BACKBONE if laptop else "swinir"
    if train.epochs is None and train.steps is None:
        if laptop:
            train.steps = LAPTOP_STEPS
        else:
            train.epochs = PAPER_EPOCHS
    if train.epochs is not None and train.steps is not None:
        raise ConfigError("give either a number of epochs or a number of steps, not both")
    if (train.epochs is not None and train.epochs < 1) or (train.steps is not None and train.steps < 1):
        raise ConfigError("the number of epochs or steps must be positive")
    if train.lr is None:
        train.lr = default_lr(model.backbone or _backbone_of_weights(model.weights), physics.task)
    train.grad_clip = resolve_grad_clip(train.grad_clip, laptop)
    train.compile = resolve_train_compile(train) or False
    if data.batch_size < 1 or data.crop_size < 1:
        raise ConfigError("batch size and crop size must be positive")
    check_train_settings(train)
    _resolve_memory_mode(config)
    if not 0.0 <= train.lr_decay_start <= 1.0 or not 0.0 < train.lr_final_factor <= 1.0:
        raise ConfigError("lr_decay_start must lie in [0, 1] and lr_final_factor in (0, 1]")
    if data.val_dataset is None and _is_named_dataset(data.dataset) and data.kind == "clean":
        data.val_dataset = str(data.dataset)
    if config.name is None:
        config.name = default_name(config)
    if config.out_dir is None:
        config.out_dir = os.path.join("runs", config.name)
    return config
