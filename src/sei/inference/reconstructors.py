"""Reconstructors: anything that maps a measurement to an estimate, built from the user's words.

A reconstructor is a callable ``(B, C, h, w) measurement -> (B, C, h r, w r) estimate`` that accepts any image
size. Trained networks come from a weights file, a training run's folder, or a published weights name; the
classical and zero-shot baselines (identity, bicubic, Wiener, TV, DIP, PnP, BM3D) share the interface, so
evaluation, restoration and reports need no special cases.
"""

from __future__ import annotations

import torch
from torch import nn

from sei.config.sources import NetworkSource
from sei.core.errors import ConfigError
from sei.data.channels import apply_by_channels
from sei.inference.tiling import tiled_apply
from sei.physics.base import float32_physics, physics_upscale

__all__ = ["INFERENCE_PRECISIONS", "check_inference_precision", "load_network", "NetworkReconstructor",
           "open_reconstructor"]

# How a trained network computes its estimates: float32 (exact), or under bf16 autocast (measured on this project's
# CPU, avx512_bf16: `sei restore` of a 256x256 photograph with the paper's SwinIR in 13.1 s against 39.4 s; on
# 8-bit photographs the unet-small demo network within 0.005 dB, its outputs within 2.2 grey levels).
INFERENCE_PRECISIONS = ("32-true", "bf16-mixed")


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
        allows (:mod:`sei.inference.ensemble`); networks only.
    :param precision: how a trained network computes (:data:`INFERENCE_PRECISIONS`); the baselines compute in
        their own precision.
    :raises ConfigError: if a network is asked for without weights, or an ensemble without an operator, or a
        precision other than float32 for a baseline.

    >>> import torch
    >>> from sei.physics import make_physics
    >>> physics = make_physics("deblurring", kernel="Gaussian_R1", noise_level=5)
    >>> y = physics(torch.rand(1, 3, 32, 40), generator=torch.Generator().manual_seed(0))
    >>> open_reconstructor("wiener", physics)(y).shape
    torch.Size([1, 3, 32, 40])
    """
    from sei.inference.baselines import build_baseline, canonical_kind

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
    from sei.inference.ensemble import SelfEnsemble

    return SelfEnsemble(network, physics)
