"""Backbones by name, and the architecture record that lets a weights file rebuild its network."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from sei.errors import ConfigError, UnknownNameError


@dataclass(frozen=True)
class BackbonePreset:
    """A named backbone: its family (``swinir`` or ``unet``), default options and a description."""

    family: str
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""


BACKBONES: dict[str, BackbonePreset] = {
    "swinir": BackbonePreset("swinir", {}, "the paper's SwinIR (embed 180, 6x6 blocks, ~11.5 M parameters)"),
    "swinir-small": BackbonePreset(
        "swinir", {"embed_dim": 60, "depths": (6, 6, 6, 6), "num_heads": (6, 6, 6, 6)},
        "lightweight SwinIR (embed 60, 4x6 blocks, ~0.9 M parameters)"),
    "unet-tiny": BackbonePreset("unet", {"width": 8, "levels": 2, "blocks": 1}, "tiny residual U-Net, for tests"),
    "unet-small": BackbonePreset("unet", {"width": 32, "levels": 2, "blocks": 2},
                                 "small residual U-Net (~1.1 M parameters), fast on a CPU"),
    "unet-base": BackbonePreset("unet", {"width": 64, "levels": 2, "blocks": 2},
                                "larger residual U-Net (~4.4 M parameters)"),
}


# Options that change how a network computes, not what it is: not recorded with its weights.
RUNTIME_OPTIONS = ("fused_attention", "checkpointing")


def build_backbone(name: str, upscale: int = 1, in_chans: int = 3, **options: Any) -> nn.Module:
    """A backbone by preset name, for ``upscale`` 1 (deblurring) or r (x r super-resolution).

    :param options: overrides of the preset's options (e.g. ``width=48``).
    :return: the network, carrying ``sei_architecture`` (what :func:`backbone_from_architecture` needs).
    """
    if name not in BACKBONES:
        raise UnknownNameError("backbone", name, BACKBONES)
    preset = BACKBONES[name]
    merged = {**preset.options, **options}
    if not isinstance(upscale, int) or upscale < 1:
        raise ConfigError(f"upscale must be a positive integer, got {upscale!r}")
    if preset.family == "swinir":
        from sei.models.swinir import SwinIR

        model = SwinIR(upscale=upscale, in_chans=in_chans, **merged)
    else:
        from sei.models.unet import UNet

        model = UNet(upscale=upscale, in_chans=in_chans, **merged)
    model.sei_architecture = {
        "backbone": name,
        "upscale": upscale,
        "in_chans": in_chans,
        "options": {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()
                    if k not in RUNTIME_OPTIONS},
    }
    return model


def backbone_from_architecture(architecture: dict[str, Any]) -> nn.Module:
    """Rebuild the network described by a weights file's architecture record."""
    try:
        return build_backbone(architecture["backbone"], upscale=int(architecture["upscale"]),
                              in_chans=int(architecture.get("in_chans", 3)), **architecture.get("options", {}))
    except (KeyError, TypeError) as error:
        raise ConfigError(f"malformed architecture record {architecture!r}: {error}") from error
