"""Where a network comes from: a weights file, a training run's folder, or a published weights name.

``--weights`` (``sei train`` for fine-tuning, ``sei test``, ``sei restore``) takes any of the three;
:func:`locate_network` turns the word into a :class:`NetworkSource` that says which file holds the weights and
what its origin says about the measurements the network expects, and :func:`choose_physics` decides the operator a
command restores or evaluates with from the options, the network's record and the measurements' folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sei.core.errors import SEIError, WeightsError
from sei.physics.spec import DEGRADATION_FILE, PhysicsSpec, read_degradation_spec, resolve_spec

__all__ = ["choose_physics", "HeldNetwork", "initial_network", "locate_network", "NetworkSource"]
@dataclass(frozen=True)
class NetworkSource:
    """Where a network came from, and what its origin says about the measurements it expects.

    :ivar weights: the local weights file.
    :ivar physics: the physics spec the network was trained for, when known (the run's configuration, the
        weights file's record, or what a published name says).
    :ivar run_config: the training run's resolved configuration, when the source is a run folder.
    :ivar backbone: the backbone preset, when the origin says it (a run, a published name).
    :ivar intensity: the intensity map record (:class:`sei.io.intensity.IntensityMap`'s dict) of the network's
        training data, when its origin records one (a run of measurements, or a zoo package exported from one).
    """

    weights: Path
    physics: PhysicsSpec | None = None
    run_config: Any = None
    backbone: str | None = None
    intensity: dict | None = None


def locate_network(source: str | Path, download: bool = False) -> NetworkSource:
    """Resolve a weights file (or a zoo package that ``sei export`` wrote), a training run's folder, or a published
    weights name.

    :raises WeightsError: if the source is none of these.
    """
    from sei.models.weights import read_intensity, read_physics

    path = Path(source)
    if path.is_dir():
        from sei.config.run_folder import RunFolder

        folder = RunFolder(path)
        if not folder.is_finished():
            raise WeightsError(f"{path} is a folder without {folder.weights_path.name}; is it a finished training run?")
        if folder.has_config():
            config = folder.config
            physics = None if config.physics.operator else config.physics
            return NetworkSource(folder.weights_path, physics, config, config.model.backbone, config.data.intensity)
        return NetworkSource(folder.weights_path, read_physics(folder.weights_path))
    from sei.models.hub import resolve_weights

    weights, published = resolve_weights(source, download=download)
    if published is None:
        return NetworkSource(weights, read_physics(weights), intensity=read_intensity(weights))
    return NetworkSource(weights, published.spec, None, published.backbone)


def choose_physics(given: PhysicsSpec, source: NetworkSource | None = None, measurements: str | Path | None = None,
                   required: bool = True, default_kernel: str | None = None) -> tuple[PhysicsSpec | None, str]:
    """The operator to restore or evaluate with, and where it came from.

    Options the user gave win; what they leave open comes from the network (its run, weights record or published
    name), else from the measurement folder's ``degradation.yaml``, else from ``default_kernel`` (simulated
    measurements of clean images). The noise level of measurements that nothing records is ``"auto"`` unless
    given: the caller estimates it from them.

    :param given: the spec of the options given (``None`` fields where an option was not given).
    :param measurements: a measurement folder or file whose folder may hold ``degradation.yaml``.
    :param required: raise when nothing says what the operator is (baselines always need it; plain networks not).
    :return: ``(spec, origin)``, ``spec`` None only when not required and unknown.
    :raises ConfigError: when required and unknown, or when the options do not describe an operator.
    """
    recorded, origin = None, "the options"
    if source is not None and source.physics is not None:
        recorded, origin = source.physics, f"the network's record ({source.weights})"
    elif measurements is not None:
        folder = Path(measurements) if Path(measurements).is_dir() else Path(measurements).parent
        recorded = read_degradation_spec(folder)
        origin = f"{folder / DEGRADATION_FILE}" if recorded is not None else origin
    given_any = any(v is not None for v in (given.task, given.kernel, given.sr_factor, given.noise_level,
                                                 given.gain, given.padding))
    if given_any:
        origin = "the options" if recorded is None else f"the options, then {origin}"
    elif recorded is None and default_kernel is None:
        if not required:
            return None, "unknown"
        resolve_spec(given)  # raises: deblurring needs the blur kernel ...
    measured = recorded is None and measurements is not None and default_kernel is None
    return resolve_spec(given, default_kernel, recorded, measured=measured), origin


@dataclass(frozen=True)
class HeldNetwork:
    """What initial weights say of the network they hold (``None`` where they do not say)."""

    backbone: str | None = None
    channels: int | None = None


def initial_network(weights: str | Path) -> HeldNetwork:
    """The backbone and channel count that initial weights hold (a run folder, a weights file with an architecture
    record, a published name), read without building the network; unknown fields are ``None``. A missing or
    unreadable file says nothing here: it is reported, with its details, when the network is built."""
    from sei.models.weights import read_weights

    try:
        source = locate_network(weights)
        architecture = read_weights(source.weights)[1] or {}
    except SEIError:
        return HeldNetwork()
    channels = architecture.get("in_chans", 3 if source.backbone or architecture else None)
    return HeldNetwork(source.backbone or architecture.get("backbone"), int(channels) if channels else None)
