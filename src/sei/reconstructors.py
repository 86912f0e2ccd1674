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

from sei.errors import WeightsError
from sei.tiling import tiled_apply

RUN_CONFIG = "config.yaml"
RUN_WEIGHTS = "weights.pt"


@dataclass
class NetworkSource:
    """Where a network came from, and what its origin says about the measurements it expects.

    :ivar weights: the local weights file.
    :ivar physics: ``{"task", "kernel", "sr_factor", "noise_level"}`` when known (run folder or published name).
    :ivar run_config: the training run's resolved configuration, when the source is a run folder.
    """

    weights: Path
    physics: dict[str, Any] | None = None
    run_config: Any = None
    backbone: str | None = None


def locate_network(source: str | Path, download: bool = False) -> NetworkSource:
    """Resolve a weights file, a training run's folder, or a published weights name.

    :raises WeightsError: if the source is none of these.
    """
    path = Path(source)
    if path.is_dir():
        if not (path / RUN_WEIGHTS).is_file():
            raise WeightsError(f"{path} is a folder without {RUN_WEIGHTS}; is it a finished training run?")
        if (path / RUN_CONFIG).is_file():
            from sei.config import from_dict, load_yaml

            config = from_dict(load_yaml(path / RUN_CONFIG))
            physics = {"task": config.physics.task, "kernel": config.physics.kernel,
                       "sr_factor": config.physics.sr_factor, "noise_level": config.physics.noise_level}
            return NetworkSource(path / RUN_WEIGHTS, physics, config, config.model.backbone)
        return NetworkSource(path / RUN_WEIGHTS)
    from sei.hub import resolve_weights

    weights, published = resolve_weights(source, download=download)
    if published is None:
        return NetworkSource(weights)
    physics = {"task": published.task, "kernel": published.kernel, "sr_factor": published.sr_factor,
               "noise_level": published.noise_level}
    return NetworkSource(weights, physics, None, published.backbone)


class NetworkReconstructor(nn.Module):
    """A trained network as a reconstructor, optionally tiled for large images.

    :param network: backbone ``(B, C, h, w) -> (B, C, h r, w r)``.
    :param tile: tile size in measurement pixels (0: whole images).
    :param overlap: overlap between tiles in measurement pixels.
    """

    def __init__(self, network: nn.Module, tile: int = 0, overlap: int = 32) -> None:
        super().__init__()
        self.network = network.eval()
        self.tile = tile
        self.overlap = overlap
        self.upscale = int(getattr(network, "sei_architecture", {}).get("upscale", 1))

    @torch.no_grad()
    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if self.tile and max(y.shape[-2:]) > self.tile:
            return tiled_apply(self.network, y, self.tile, min(self.overlap, self.tile // 2), self.upscale)
        return self.network(y)


def load_network(source: NetworkSource, upscale: int | None = None, backbone: str | None = None) -> nn.Module:
    """The backbone with its weights, checking that it fits ``upscale`` when given."""
    from sei.models.weights import load_backbone

    return load_backbone(source.weights, backbone=backbone or source.backbone, upscale=upscale)


def open_reconstructor(kind: str, physics, source: NetworkSource | None = None, options: dict | None = None,
                       backbone: str | None = None, tile: int = 0, overlap: int = 32) -> nn.Module:
    """The reconstructor of a model kind: a trained network from ``source``, or a baseline for ``physics``.

    :raises ConfigError: if a network is asked for without weights.
    """
    from sei.baselines import build_baseline, canonical_kind
    from sei.errors import ConfigError

    kind = canonical_kind(kind)
    if kind != "network":
        return build_baseline(kind, physics, options)
    if source is None:
        raise ConfigError("a trained network needs --weights (a file, a run folder or a published name); "
                          "or choose a baseline with --model-kind")
    network = load_network(source, upscale=getattr(physics, "upscale", None), backbone=backbone)
    return NetworkReconstructor(network, tile=tile, overlap=overlap)
