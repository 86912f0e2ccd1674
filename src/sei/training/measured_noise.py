"""A run's noise parameters from its own measurements (``--noise-level auto``, ``--gain auto``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sei.config.schema import ExperimentConfig
from sei.core.errors import ConfigError
from sei.physics.spec import PhysicsSpec

__all__ = ["estimate_run_noise", "learned_physics"]

if TYPE_CHECKING:
    from sei.data.sources import ImageSet


def estimate_run_noise(config: ExperimentConfig, measurements: ImageSet | None) -> PhysicsSpec:
    """The run's physics spec with its ``"auto"`` noise level (and gain) estimated from its training measurements,
    said on the terminal; the spec unchanged if nothing is ``"auto"``.

    :param config: a resolved configuration.
    :param measurements: the run's training images as read (:func:`sei.training.datamodule.read_training_folder`;
        ``None`` for a named dataset of clean images).
    :raises ConfigError: for ``auto`` on clean images (their measurements are simulated with the level given).
    :raises ImageError: when the measurements do not allow an estimate (constant or too small images).
    """
    from sei.physics.noise_estimation import estimate_spec_noise

    physics, data = config.physics, config.data
    if not physics.needs_estimate:
        return physics
    if data.kind != "measurements":
        raise ConfigError("--noise-level auto or learn (and --gain auto) start from the noise of measurements you have "
                          "(--measurements FOLDER); clean images are measured with the noise you give: "
                          "--noise-level NUMBER")
    from sei.io.intensity import noise_level_text

    spec = estimate_spec_noise(physics, measurements.images)
    gain = f", gain {spec.gain:.4g}" if spec.gain is not None else ""
    print(f"noise estimated from {len(measurements)} measurements: level "
          f"{noise_level_text(spec.noise_level, measurements.intensity)}{gain}")
    return spec


def learned_physics(physics: PhysicsSpec, method) -> PhysicsSpec:
    """``physics`` with the noise level a training ``method`` learned (``--noise-level learn``), for the weights'
    record; ``physics`` unchanged when no level was learned."""
    import dataclasses

    level = getattr(method, "learned_noise_level", None)
    if physics.noise_source != "learned" or level is None:
        return physics
    return dataclasses.replace(physics, noise_level=float(f"{level:.4g}"))
