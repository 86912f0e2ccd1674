"""The edge: a configuration in the user's words becomes one in which every value is decided and checked, once.

:func:`resolve` fills what was left open from :mod:`sei.config.recipe` (backbone, budget, learning rate, precision,
compilation, gradient clipping), from the initial weights (their backbone and channels) and from the measurements'
``degradation.yaml`` (their operator), makes names canonical (methods, kernels, tasks), checks every value, and
returns a frozen configuration marked ``resolved``. Resolving a resolved configuration returns it unchanged, so a
command line and a Python caller of :func:`sei.training.train` resolve exactly once. What only the data can tell
(a noise level to estimate, grayscale images, float data's intensity map, the memory a step takes) is measured by
the training run before anything is built (:func:`sei.training.run.prepare_run`).

>>> config = resolve(from_flat({"data.dataset": "sample", "train.device": "cpu", "train.precision": "32-true"}))
>>> config.model.backbone, config.train.steps, config.train.lr, config.loss.method, config.physics.kernel
('unet-small', 2400, 0.001, 'sei', 'Gaussian_R2')
>>> resolve(config) is config
True
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from sei.config import recipe
from sei.config.schema import DataConfig, ExperimentConfig, TrainConfig, from_flat, load_config
from sei.config.sources import initial_network
from sei.core.checks import is_count, is_positive_number
from sei.core.defaults import CROP_SAMPLINGS
from sei.core.devices import torch_device, training_processes
from sei.core.errors import ConfigError, MissingGroundTruthError, UnknownNameError
from sei.core.units import duration_text, parse_duration, plural
from sei.losses.registry import METHOD_REGISTRY, canonical_method, method_entry
from sei.physics.spec import DEFAULT_KERNEL, PhysicsSpec, read_degradation_spec, resolve_spec

__all__ = ["DATA_KINDS", "PRECISIONS", "RUNS_DIR", "check_data_settings", "check_network_fits", "check_train_settings",
           "default_name", "describe_recipe", "is_named_dataset", "requested_config", "resolve", "resolve_physics"]

DATA_KINDS = ("clean", "measurements")
# Lightning's precision names (``lightning.fabric.connector._PRECISION_INPUT_STR``), spelled out so that
# checking a configuration does not import Lightning.
PRECISIONS = ("32-true", "32", "16-mixed", "16", "bf16-mixed", "bf16", "16-true", "bf16-true", "64-true", "64",
              "transformer-engine", "transformer-engine-float16")
# Where runs go when no --out-dir is given: runs/<name>.
RUNS_DIR = "runs"


METHOD_NAMES = tuple(entry.name for entry in METHOD_REGISTRY)


def is_named_dataset(dataset: str) -> bool:
    """Whether ``dataset`` names one of :data:`sei.data.sources.NAMED_DATASETS` (else it is a folder)."""
    from sei.data.sources import NAMED_DATASETS

    return str(dataset).lower() in NAMED_DATASETS


def default_name(config: ExperimentConfig) -> str:
    """``sample_deblurring_Gaussian_R2_noise5_sei``: dataset, task, operator, noise and method."""
    physics = config.physics
    dataset = config.data.dataset if is_named_dataset(config.data.dataset) else Path(str(config.data.dataset)).name
    detail = physics.operator.rsplit(".", 1)[-1] if physics.operator else physics.short_name()
    return f"{dataset}_{physics.task}_{detail}_noise{physics.noise_label()}_{config.loss.method}"


def resolve_physics(physics: PhysicsSpec, data: DataConfig) -> PhysicsSpec:
    """The run's physics spec: clean datasets default to the paper's kernel and noise level; a folder of
    measurements takes what its ``degradation.yaml`` records, and otherwise must be told its kernel and has its
    noise level estimated unless one is given."""
    if physics.operator:  # handed over from Python (train(config, physics=...)): recorded as it is
        return physics
    if data.kind == "measurements":
        folder = Path(str(data.dataset))
        return resolve_spec(physics, None, read_degradation_spec(folder) if folder.is_dir() else None, measured=True)
    return resolve_spec(physics, DEFAULT_KERNEL)


def psf_extent(physics: PhysicsSpec) -> tuple[int, ...]:
    """A volume PSF's shape ``(kd, kh, kw)`` (what a training crop must hold); ``()`` for images."""
    if physics.spatial_dims != 3 or physics.kernel is None:
        return ()
    from sei.physics.kernels import VOLUME_DIMS, load_kernel

    return tuple(load_kernel(physics.kernel, VOLUME_DIMS).shape)


def check_data_settings(data: DataConfig) -> None:
    """Check a :class:`~sei.config.schema.DataConfig`'s counts (batch and crop size, workers, pixel limit) and crop
    sampling.

    :raises ConfigError: naming the setting, the value and what is valid.
    """
    for name, minimum in (("batch_size", 1), ("crop_size", 1), ("num_workers", 0), ("samples_per_epoch", 1),
                          ("max_pixels", 1), ("val_max_images", 1)):
        value = getattr(data, name)
        optional = name in ("batch_size", "crop_size", "num_workers", "samples_per_epoch", "max_pixels",
                            "val_max_images")  # None: decided by resolve (batch and crop size) or later
        if not (optional and value is None) and not is_count(value, minimum):
            raise ConfigError(f"data.{name} must be an integer >= {minimum}, got {value!r}")
    if data.crop_sampling not in CROP_SAMPLINGS:
        raise UnknownNameError("crop sampling", data.crop_sampling, CROP_SAMPLINGS)


def check_train_settings(train: TrainConfig) -> None:
    """Check a :class:`~sei.config.schema.TrainConfig`'s values (learning rate, betas, precision, intervals).

    :raises ConfigError: naming the setting, the value and what is valid.
    """
    if train.lr is not None and not is_positive_number(train.lr):
        raise ConfigError(f"the learning rate must be a positive number, got {train.lr!r}")
    betas = list(train.betas) if isinstance(train.betas, (list, tuple)) else None
    if betas is None or len(betas) != 2 or not all(isinstance(b, (int, float)) and 0.0 <= b < 1.0 for b in betas):
        raise ConfigError(f"train.betas must be two numbers in [0, 1), got {train.betas!r}")
    recipe.check_memory_mode(train.memory)
    if str(train.precision) not in PRECISIONS:
        raise ConfigError(f"unknown precision {train.precision!r}; valid precisions: {', '.join(PRECISIONS)}")
    for name, minimum in (("log_every", 1), ("checkpoint_every", 0), ("checkpoint_keep", 0), ("val_every", 0),
                          ("num_nodes", 1)):
        value = getattr(train, name)
        if not is_count(value, minimum):
            raise ConfigError(f"train.{name} must be an integer >= {minimum}, got {value!r}")
    if train.time is not None:
        try:
            parse_duration(train.time)
        except ValueError as error:
            raise ConfigError(f"train.time: {error}") from None
    if (train.epochs is not None and train.steps is not None):
        raise ConfigError("give either a number of epochs or a number of steps, not both")
    if (train.epochs is not None and train.epochs < 1) or (train.steps is not None and train.steps < 1):
        raise ConfigError("the number of epochs or steps must be positive")
    if not 0.0 <= train.lr_decay_start <= 1.0 or not 0.0 < train.lr_final_factor <= 1.0:
        raise ConfigError("lr_decay_start must lie in [0, 1] and lr_final_factor in (0, 1]")


def check_network_fits(backbone: str | None, physics: PhysicsSpec, method: str, dataset: str) -> None:
    """Refuse a run whose network, method or dataset cannot take what its physics measures: a network of images
    for volumes (a 3-D PSF) or the reverse, a method written for images on volumes, the named datasets (images)
    through a 3-D PSF.

    :raises ConfigError: naming what fits instead.
    """
    from sei.models.registry import BACKBONES

    dims = physics.dimensionality
    measured = "volumes (its PSF is 3-D)" if dims == 3 else "images (its kernel is 2-D)"
    preset = BACKBONES.get(str(backbone)) if backbone else None
    if preset is not None and preset.spatial_dims != dims:
        fitting = " or ".join(name for name, other in BACKBONES.items() if other.spatial_dims == dims)
        restores = "volumes" if preset.spatial_dims == 3 else "images"
        raise ConfigError(f"backbone {backbone!r} restores {restores}, and this run measures {measured}: use "
                          f"--model {fitting}")
    if dims == 3 and not method_entry(method).volumes:
        fitting = ", ".join(entry for entry in METHOD_NAMES if method_entry(entry).volumes)
        raise ConfigError(f"method {method!r} is written for images; on volumes use one of {fitting}")
    if dims == 3 and is_named_dataset(dataset):
        raise ConfigError(f"{dataset} holds images, and a 3-D PSF blurs volumes: train on a folder of z-stacks "
                          "(multi-page TIFF)")


def resolve(config: ExperimentConfig) -> ExperimentConfig:
    """Decide every value left open and check them all (see the module); a resolved configuration is returned as
    it is.

    :raises ConfigError: for inconsistent or invalid settings (a subclass names the kind of problem).
    """
    if config.resolved:
        return config
    data, model, loss, train = config.data, config.model, config.loss, config.train
    if data.kind not in DATA_KINDS:
        raise ConfigError(f"data.kind must be 'clean' or 'measurements', got {data.kind!r}")
    method = canonical_method(loss.method, loss.stop_gradient)
    if method_entry(method).needs_ground_truth and data.kind == "measurements":
        raise MissingGroundTruthError(
            f"method {method!r} needs clean images, but {data.dataset} holds measurements only; "
            "use a self-supervised method (sei, css, ei-shift, ei-rotate, sure)")
    check_data_settings(data)
    physics = resolve_physics(config.physics, data)
    device = torch_device(train.device)
    laptop = recipe.uses_laptop_recipe(data.dataset, device)
    backbone, channels = model.backbone, model.channels
    if model.weights:  # initial weights say which network they hold
        held = initial_network(model.weights)
        backbone = backbone or held.backbone
        channels = channels or held.channels
    backbone = backbone or (None if model.weights else recipe.default_backbone(laptop, physics.spatial_dims))
    check_network_fits(backbone, physics, method, data.dataset)
    given_budget = train.epochs is not None or train.steps is not None or train.time is not None
    budget = {} if given_budget else recipe.default_budget(laptop)
    crop_size, batch_size = recipe.default_crop(physics.spatial_dims, psf_extent(physics), physics.upscale)
    mode = recipe.requested_mode(train.memory, model.checkpointing, train.release_memory)
    processes = training_processes(train.device, train.devices, train.num_nodes)
    values = {
        "loss.method": method,
        "model.backbone": backbone,
        "data.crop_size": data.crop_size or crop_size,
        "data.batch_size": data.batch_size or batch_size,
        "data.augment": data.augment if data.augment is not None else recipe.default_augment(physics.spatial_dims),
        "model.channels": channels,
        "train.precision": recipe.resolve_precision(train.precision, device),
        "train.lr": train.lr if train.lr is not None else recipe.default_lr(backbone, physics.task),
        "loss.divergence": loss.divergence or recipe.default_divergence(bool(model.weights)),
        "train.grad_clip": recipe.resolve_grad_clip(train.grad_clip, laptop),
        "train.grad_clip_median": recipe.resolve_grad_clip_median(train.grad_clip_median, physics.spatial_dims, laptop),
        "train.compile": recipe.resolve_compile(train.compile, device, processes) or False,
        **{f"train.{key}": value for key, value in budget.items()},
        "train.time": parse_duration(train.time) if train.time is not None else None,
        **(recipe.memory_switches(mode, backbone) if mode != recipe.AUTO else {}),  # auto: measured by the run
    }
    if data.val_dataset is None and is_named_dataset(data.dataset) and data.kind == "clean":
        values["data.val_dataset"] = str(data.dataset)
    resolved = from_flat(values, config)
    check_train_settings(resolved.train)
    name = config.name or default_name(dataclasses.replace(resolved, physics=physics))
    out_dir = config.out_dir or os.path.join(RUNS_DIR, name)
    return dataclasses.replace(resolved, name=name, out_dir=out_dir, physics=physics, resolved=True)


def _clip_text(absolute: float | None, relative: float | None) -> str:
    """How the gradient norm is bounded, for :func:`describe_recipe`."""
    bounds = [*([f"{absolute:g}"] if absolute else []), *([f"{relative:g}x its recent median"] if relative else [])]
    return f" (gradient norm clipped at {' and '.join(bounds)})" if bounds else ""


def describe_recipe(config: ExperimentConfig) -> str:
    """One line on what a resolved configuration trains, for the terminal."""
    from sei.data.pairs import crop_shape

    train, model = config.train, config.model
    budget = (plural(train.steps, "step") if train.steps is not None else plural(train.epochs, "epoch")
              if train.epochs is not None else "as many steps as fit")
    if train.time is not None:
        budget += f" in {duration_text(train.time)}"
    return (f"{model.backbone or 'backbone of the initial weights'}, {budget}, batch {config.data.batch_size} "
            f"of {'x'.join(map(str, crop_shape(config.data.crop_size, config.physics.dimensionality)))} crops"
            f"{' (all planes of a thinner stack)' if config.physics.dimensionality == 3 else ''}"
            f"{', flipped and turned as the operator allows' if config.data.augment else ''}, lr {train.lr:g}"
            f"{_clip_text(train.grad_clip, train.grad_clip_median)}, {config.loss.method}"
            f"{' (exact SURE divergence)' if config.loss.divergence == 'jvp' else ''}, "
            f"precision {train.precision}{f', compiled ({train.compile} mode)' if train.compile else ''}")


def requested_config(overrides: dict[str, object], config_file: str | Path | None = None,
                     resume: bool | str | Path = False) -> ExperimentConfig:
    """The configuration a training command describes, not yet resolved: a ``--config`` file's (or, when resuming
    a run folder, the run's own settings), then the dotted ``overrides`` the options gave.

    :raises ConfigError: for a missing or malformed file, or unknown keys.
    """
    from sei.config.run_folder import RunFolder

    if config_file:
        return load_config(config_file, overrides)
    out_dir = overrides.get("out_dir")
    if resume and out_dir and RunFolder(str(out_dir)).has_config():
        return from_flat(overrides, RunFolder(str(out_dir)).config)  # resume with the run's own settings
    return from_flat(overrides)
