"""Reconstructors: anything that maps a measurement to an estimate, built from the user's words.

A reconstructor is a callable ``(B, C, h, w) measurement -> (B, C, h r, w r) estimate`` that accepts any image
size. Trained networks come from a weights file, a training run's folder, or a published weights name; the
classical and zero-shot baselines (identity, bicubic, Wiener, TV, DIP, PnP, BM3D) share the interface, so
evaluation, restoration and reports need no special cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sei.errors import ConfigError, WeightsError
from sei.physics.spec import PhysicsSpec
from sei.physics.base import float32_physics, physics_upscale
from sei.tiling import tiled_apply

# How a trained network computes its estimates: float32 (exact), or under bf16 autocast (measured on this project's
# CPU, avx512_bf16: `sei restore` of a 256x256 photograph with the paper's SwinIR in 13.1 s against 39.4 s; on
# 8-bit photographs the unet-small demo network within 0.005 dB, its outputs within 2.2 grey levels).
INFERENCE_PRECISIONS = ("32-true", "bf16-mixed")
AUTO_INFERENCE_PRECISION = "auto"  # `sei restore`'s default, by data and device: see resolve_inference_precision



@dataclass
class NetworkSource:
    """Where a network came from, and what its origin says about the measurements it expects.

    :ivar weights: the local weights file.
    :ivar physics: the physics spec the network was trained for, when known (the run's configuration, the
        weights file's record, or what a published name says).
    :ivar run_config: the training run's resolved configuration, when the source is a run folder.
    """

    weights: Path
    physics: PhysicsSpec | None = None
    run_config: Any = None
    backbone: str | None = None


def locate_network(source: str | Path, download: bool = False) -> NetworkSource:
    """Resolve a weights file, a training run's folder, or a published weights name.

    :raises WeightsError: if the source is none of these.
    """
    from sei.models.weights import read_physics

    path = Path(source)
    if path.is_dir():
        from sei.training.run_folder import RunFolder

        folder = RunFolder(path)
        if not folder.is_finished():
            raise WeightsError(f"{path} is a folder without {folder.weights_path.name}; is it a finished training run?")
        if folder.has_config():
            config = folder.config
            physics = None if config.physics.operator else config.physics
            return NetworkSource(folder.weights_path, physics, config, config.model.backbone)
        return NetworkSource(folder.weights_path, read_physics(folder.weights_path))
    from sei.hub import resolve_weights

    weights, published = resolve_weights(source, download=download)
    if published is None:
        return NetworkSource(weights, read_physics(weights))
    return NetworkSource(weights, published.spec, None, published.backbone)


def choose_physics(given: PhysicsSpec, source: NetworkSource | None = None, measurements: str | Path | None = None,
                   required: bool = True, default_kernel: str | None = None) -> tuple[PhysicsSpec | None, str]:
    """The operator to restore or evaluate with, and where it came from.

    Options the user gave win; what they leave open comes from the network (its run, weights record or published
    name), else from the measurement folder's ``degradation.yaml``, else from ``default_kernel`` (simulated
    measurements of clean images).

    :param given: the spec of the options given (``None`` fields where an option was not given).
    :param measurements: a measurement folder or file whose folder may hold ``degradation.yaml``.
    :param required: raise when nothing says what the operator is (baselines always need it; plain networks not).
    :return: ``(spec, origin)``, ``spec`` None only when not required and unknown.
    :raises ConfigError: when required and unknown, or when the options do not describe an operator.
    """
    from sei.physics.spec import read_degradation_spec, resolve_spec

    recorded, origin = None, "the options"
    if source is not None and source.physics is not None:
        recorded, origin = source.physics, f"the network's record ({source.weights})"
    elif measurements is not None:
        folder = Path(measurements) if Path(measurements).is_dir() else Path(measurements).parent
        recorded = read_degradation_spec(folder)
        origin = f"{folder / 'degradation.yaml'}" if recorded is not None else origin
    given_any = any(v is not None for v in (given.task, given.kernel, given.sr_factor, given.noise_level,
                                                 given.gain))
    if given_any:
        origin = "the options" if recorded is None else f"the options, then {origin}"
    elif recorded is None and default_kernel is None:
        if not required:
            return None, "unknown"
        resolve_spec(given)  # raises: deblurring needs the blur kernel ...
    return resolve_spec(given, default_kernel, recorded), origin


class NetworkReconstructor(nn.Module):
    """A trained network as a reconstructor, optionally tiled for large images.

    :param network: backbone ``(B, C, h, w) -> (B, C, h r, w r)``.
    :param tile: tile size in measurement pixels (0: whole images).
    :param overlap: overlap between tiles in measurement pixels.
    :param precision: one of :data:`INFERENCE_PRECISIONS`; under ``bf16-mixed`` the network runs in bf16 autocast
        and its estimates come back in float32 (tiles are blended in float32).
    :raises ConfigError: for another precision.
    """

    def __init__(self, network: nn.Module, tile: int = 0, overlap: int = 32, precision: str = "32-true") -> None:
        super().__init__()
        check_inference_precision(precision)
        self.network = network.eval()
        self.tile = tile
        self.overlap = overlap
        self.precision = precision
        self.upscale = int(getattr(network, "sei_architecture", {}).get("upscale", 1))
        self.in_chans = int(getattr(network, "sei_architecture", {}).get("in_chans", 3))

    @torch.no_grad()
    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """Estimates of ``(B, C, h, w)`` measurements, any ``C`` routed to the network's channels
        (:func:`sei.data.channels.apply_by_channels`)."""
        from sei.data.channels import apply_by_channels

        return apply_by_channels(self._restore, y, self.in_chans)

    def _restore(self, y: torch.Tensor) -> torch.Tensor:
        if self.tile and max(y.shape[-2:]) > self.tile:
            return tiled_apply(self._estimate, y, self.tile, min(self.overlap, self.tile // 2), self.upscale,
                               multiple=getattr(self.network, "size_multiple", 1))
        return self._estimate(y)

    def _estimate(self, y: torch.Tensor) -> torch.Tensor:
        if self.precision == "bf16-mixed":
            with torch.autocast(y.device.type, dtype=torch.bfloat16):
                return self.network(y).float()
        return self.network(y)


def resolve_inference_precision(precision: str, device: torch.device, eight_bit: bool) -> str:
    """The precision a network restores in: ``"auto"`` becomes ``"bf16-mixed"`` for 8-bit data (``eight_bit``:
    8-bit inputs written as 8-bit outputs) on a device with native bf16
    (:func:`sei.training.precision.has_native_bf16`), else ``"32-true"``: 16-bit and float data would lose
    digits, and emulated bf16 is slower. Measured on this project's CPU (avx512_bf16) with an SEI unet-small: 1.8x
    faster, 92-94 % of 8-bit output values identical to float32's, the others 1 or 2 grey levels apart, PSNR
    within 0.002 dB. Other precisions are returned unchanged."""
    if precision != AUTO_INFERENCE_PRECISION:
        return precision
    from sei.training.precision import has_native_bf16

    return "bf16-mixed" if eight_bit and has_native_bf16(torch.device(device)) else "32-true"


def check_inference_precision(precision: str) -> None:
    """:raises ConfigError: unless ``precision`` is one of :data:`INFERENCE_PRECISIONS`."""
    if precision not in INFERENCE_PRECISIONS:
        raise ConfigError(f"unknown inference precision {precision!r}; valid: {', '.join(INFERENCE_PRECISIONS)}")


def load_network(source: NetworkSource, physics=None, backbone: str | None = None) -> nn.Module:
    """The backbone with its weights, checking that it fits ``physics``' upscale when given (physics-aware
    backbones also run ``physics`` inside)."""
    from sei.models.weights import load_backbone

    upscale = physics_upscale(physics) if physics is not None else None
    return load_backbone(source.weights, backbone=backbone or source.backbone, upscale=upscale, physics=physics)


def open_reconstructor(kind: str, physics, source: NetworkSource | None = None, options: dict | None = None,
                       backbone: str | None = None, tile: int = 0, overlap: int = 32,
                       ensemble: bool = False, precision: str = "32-true") -> nn.Module:
    """The reconstructor of a model kind: a trained network from ``source``, or a baseline for ``physics``.

    :param ensemble: average the network's estimates over the flips and 90-degree rotations that the operator
        allows (:mod:`sei.ensemble`); networks only.
    :param precision: how a trained network computes (:data:`INFERENCE_PRECISIONS`); the baselines compute in
        their own precision.
    :raises ConfigError: if a network is asked for without weights, or an ensemble without an operator, or a
        precision other than float32 for a baseline.
    """
    from sei.baselines import build_baseline, canonical_kind

    kind = canonical_kind(kind)
    check_inference_precision(precision)
    if kind != "network":
        if precision != "32-true":
            raise ConfigError(f"--precision {precision} applies to trained networks; the {kind} baseline computes in "
                              "its own precision")
        return build_baseline(kind, physics, options)
    if source is None:
        raise ConfigError("a trained network needs --weights (a file, a run folder or a published name); "
                          "or choose a baseline with --model-kind")
    if physics is not None and precision != "32-true":  # physics-aware networks call the operator in float32
        physics = float32_physics(physics)
    network = NetworkReconstructor(load_network(source, physics, backbone=backbone), tile=tile, overlap=overlap,
                                   precision=precision)
    if not ensemble:
        return network
    if physics is None:
        raise ConfigError("--ensemble needs the operator the measurements come from (--kernel, --task ...), which "
                          "these weights do not record")
    from sei.ensemble import SelfEnsemble

    return SelfEnsemble(network, physics)
