"""The experiment configuration: five typed, frozen sections, read from YAML and overridden by dotted keys.

A configuration has five sections (BasicSR-style YAML)::

    name: div2k_deblurring_gaussian_r2_sei
    physics: {task: deblurring, kernel: Gaussian_R2, noise_level: 5}
    data: {dataset: div2k, crop_size: 48, batch_size: 8}
    model: {backbone: swinir}
    loss: {method: sei, alpha: 1.0}
    train: {epochs: 500, lr: 1.0e-4}

Every section is a frozen dataclass: a configuration is never changed in place, only replaced by a new one
(:func:`from_flat`, :func:`from_dict`, ``dataclasses.replace``). Values left at ``None`` or ``"auto"`` are decided
by :func:`sei.config.resolve.resolve` (from :mod:`sei.config.recipe`), which returns the configuration a run
records in its ``config.yaml``; nothing below the edge decides them again.

>>> config = from_flat({"train.lr": 1e-4, "physics.kernel": "Box_R3"})
>>> config.train.lr, config.physics.kernel, config.loss.alpha
(0.0001, 'Box_R3', 1.0)
>>> config.train.lr = 1.0
Traceback (most recent call last):
...
dataclasses.FrozenInstanceError: cannot assign to field 'lr'
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# the defaults help texts quote live in sei.core.defaults, which `sei train --help` reads without importing torch
from sei.core.defaults import CHECKPOINT_EVERY, CHECKPOINT_KEEP, CROP_SAMPLINGS, DATASETS_DIR, SEED
from sei.core.errors import ConfigError
from sei.core.files import read_yaml_mapping
from sei.losses.equivariance import DEFAULT_ALPHA
from sei.losses.sure import DEFAULT_TAU, SURE_CONSTANTS
from sei.physics.spec import PhysicsSpec
from sei.transforms import DEFAULT_SCALE_FACTORS, VOLUME_SCALE_AXES

__all__ = ["DataConfig", "ExperimentConfig", "flatten_config", "from_dict", "from_flat", "load_config", "LossConfig",
           "ModelConfig", "PhysicsConfig", "section_fields", "TrainConfig"]

# The physics section is the one physics spec (see sei.physics.spec).
PhysicsConfig = PhysicsSpec


class _Section:
    """Lists read from YAML are kept as tuples (a frozen section holds no mutable sequence)."""

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, list):
                object.__setattr__(self, item.name, tuple(value))


@dataclass(frozen=True)
class DataConfig(_Section):
    dataset: str = "div2k"
    kind: str = "clean"  # "clean" images, or "measurements" only
    datasets_dir: str = DATASETS_DIR
    download: bool = False
    resize: Any = "auto"  # shorter side in px, null to keep, "auto": 256 for named datasets
    crop_size: int | None = None  # default: CROP_SIZE, for volumes VOLUME_CROP_SIZE or the PSF's size (resolve)
    crop_sampling: str = CROP_SAMPLINGS[0]  # where crops are drawn (sei.data.pairs.CropDataset)
    augment: bool | None = None  # crops flipped and turned by the operator's symmetries; None: the recipe's (resolve)
    batch_size: int | None = None  # default: BATCH_SIZE, for volumes VOLUME_BATCH_SIZE (resolve)
    samples_per_epoch: int | None = None  # default: one crop per image (at least 25 batches for step budgets)
    num_workers: int | None = None  # default: 0 on CPU, up to 8 on GPU
    noise_seed: int = 0
    val_dataset: str | None = None  # default: the dataset's "val" split when it has one
    val_max_images: int | None = None
    strict: bool = False  # an unreadable image fails the run instead of being skipped (always named)
    max_pixels: int | None = None  # pixels one image file may hold; None: sei.io.images.MAX_PIXELS
    intensity: dict | None = None  # the folder's map to network units (sei.io.intensity), measured by train


@dataclass(frozen=True)
class ModelConfig(_Section):
    backbone: str | None = None  # default: the recipe's (sei.config.recipe), or the initial weights'
    weights: str | None = None  # initial weights (fine-tuning)
    checkpointing: bool = False  # SwinIR recomputes block activations in the backward pass: set from train.memory
    channels: int | None = None  # image channels of the network: None = 1 for grayscale data, else 3 (at training)


@dataclass(frozen=True)
class LossConfig(_Section):
    method: str = "sei"
    alpha: float = DEFAULT_ALPHA
    tau: float = DEFAULT_TAU
    stop_gradient: bool = True
    scale_factors: tuple[float, ...] = DEFAULT_SCALE_FACTORS
    scale_axes: str = VOLUME_SCALE_AXES[0]  # which axes of a volume SEI's down-scaling shrinks
    rotation_multiples: float = 1.0
    sure_constant: str = SURE_CONSTANTS[0]
    batched_probe: bool = True
    divergence: str | None = None  # how SURE estimates its divergence: None = the recipe's (sei.config.recipe)

    def method_options(self) -> dict[str, Any]:
        """The options :func:`sei.losses.registry.build_method` takes."""
        return {"stop_gradient": self.stop_gradient, "alpha": self.alpha, "tau": self.tau,
                "scale_factors": self.scale_factors, "scale_axes": self.scale_axes,
                "rotation_multiples": self.rotation_multiples,
                "sure_constant": self.sure_constant, "batched_probe": self.batched_probe,
                **({"divergence": self.divergence} if self.divergence else {})}


@dataclass(frozen=True)
class TrainConfig(_Section):
    epochs: int | None = None
    steps: int | None = None
    time: float | None = None  # seconds of training; alone, the steps are measured to fit (sei.training.time_budget)
    lr: float | None = None
    betas: tuple[float, float] = (0.9, 0.999)
    lr_decay_start: float = 0.5  # fraction of training after which the rate decays linearly
    lr_final_factor: float = 0.01
    seed: int = SEED
    device: str = "auto"  # cpu, cuda, cuda:1, auto
    devices: Any = 1  # number of devices (or "auto")
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "auto"  # auto: bf16-mixed where the device computes bf16 natively, else 32-true
    compile: Any = "auto"  # auto: reduce-overhead (CUDA graphs) on a single GPU, else off; false; a torch.compile mode
    memory: str = "auto"  # auto (measured before training), none, checkpointing, lean: sei.training.memory_plan
    release_memory: bool = False  # glibc returns freed memory to the system (sei.core.memory): set from train.memory
    checkpoint_every: int = CHECKPOINT_EVERY  # epochs; the latest checkpoint is also kept at every epoch
    checkpoint_keep: int = CHECKPOINT_KEEP  # periodic checkpoints kept (the newest); 0 keeps all
    ema_decay: float | None = None  # an exponential moving average of the weights for validation and weights.pt
    grad_clip: Any = "auto"  # bound on the global gradient norm; auto: the recipe's (sei.config.recipe); none or 0: off
    grad_clip_median: Any = "auto"  # bound as a multiple of the recent median norm; auto: the recipe's; none or 0: off
    val_every: int = 0  # epochs; 0 turns validation off
    log_every: int = 10  # steps
    progress: bool = True


_SECTIONS = {"physics": PhysicsConfig, "data": DataConfig, "model": ModelConfig, "loss": LossConfig,
             "train": TrainConfig}
_TOP_LEVEL = ("name", "out_dir")


def _yaml_safe(value: Any) -> Any:
    """Tuples as lists, recursively: what ``yaml.safe_dump`` writes and what a run's ``config.yaml`` holds."""
    if isinstance(value, (tuple, list)):
        return [_yaml_safe(item) for item in value]
    if isinstance(value, dict):
        return {key: _yaml_safe(item) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment: its name and output folder, and the five sections.

    :ivar resolved: set by :func:`sei.config.resolve.resolve` only (not recorded): every value is decided.
    """

    name: str | None = None
    out_dir: str | None = None
    physics: PhysicsConfig = field(default_factory=PhysicsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    resolved: bool = field(default=False, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as YAML-safe nested values (what ``config.yaml`` holds)."""
        values: dict[str, Any] = {"name": self.name, "out_dir": self.out_dir, "physics": self.physics.to_dict()}
        for section in ("data", "model", "loss", "train"):
            values[section] = {item.name: _yaml_safe(getattr(getattr(self, section), item.name))
                               for item in dataclasses.fields(_SECTIONS[section])}
        return values

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def replace(self, **sections: Any) -> ExperimentConfig:
        """A copy with whole sections or top-level values replaced, keeping ``resolved`` (for values decided at the
        edge: a measured noise level, the memory mode)."""
        return dataclasses.replace(self, **sections)


def section_fields(section: str) -> tuple[str, ...]:
    """The keys of a section (``"train"`` -> ``("epochs", "steps", ...)``)."""
    return tuple(item.name for item in dataclasses.fields(_SECTIONS[section]) if item.name != "resolved")


def from_flat(overrides: dict[str, Any], base: ExperimentConfig | None = None) -> ExperimentConfig:
    """``base`` (defaults if None) with dotted-key overrides such as ``{"train.lr": 1e-4}``: a new, unresolved
    configuration.

    :raises ConfigError: for an unknown key.
    """
    base = base or ExperimentConfig()
    top: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    for dotted, value in overrides.items():
        if dotted in _TOP_LEVEL:
            top[dotted] = value
            continue
        section, _, name = dotted.partition(".")
        if section not in _SECTIONS or name not in section_fields(section):
            raise ConfigError(f"unknown configuration key {dotted!r}")
        sections[section][name] = value
    changed = {name: dataclasses.replace(getattr(base, name), resolved=False, **values) if name == "physics"
               else dataclasses.replace(getattr(base, name), **values)
               for name, values in sections.items() if values}
    return dataclasses.replace(base, **top, **changed, resolved=False)


def from_dict(data: dict[str, Any], base: ExperimentConfig | None = None) -> ExperimentConfig:
    """A configuration from nested ``data`` (a YAML file's mapping), on top of ``base`` (defaults if None).

    :raises ConfigError: for unknown sections or keys (listing the valid ones) and malformed sections.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"a configuration must be a mapping, got {type(data).__name__}")
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in _TOP_LEVEL:
            flat[key] = value
            continue
        if key not in _SECTIONS:
            raise ConfigError(f"unknown configuration section {key!r}; valid: {', '.join((*_TOP_LEVEL, *_SECTIONS))}")
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"configuration section {key!r} must be a mapping, got {value!r}")
        fields = section_fields(key)
        for name, item in value.items():
            if name not in fields:
                raise ConfigError(f"unknown key {key}.{name}; valid keys of {key}: {', '.join(fields)}")
            flat[f"{key}.{name}"] = item
    return from_flat(flat, base)


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """Defaults, then the YAML file at ``path``, then dotted-key ``overrides``.

    :raises ConfigError: for a missing or malformed file, or unknown keys.
    """
    return from_flat(overrides or {}, from_dict(read_yaml_mapping(path, "configuration file")))


def flatten_config(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1}}`` -> ``{"train.lr": 1}``."""
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flatten_config(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
