"""Backbones by name, and the architecture record that lets a weights file rebuild its network."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from sei.errors import ConfigError, UnknownNameError


@dataclass(frozen=True)
class BackbonePreset:
    """A named backbone: its family (``swinir``, ``unet`` or ``unrolled``), default options and a description.

    :ivar needs_physics: the network holds the measurement operator (physics-aware backbones): it must be
        built with ``physics=`` and is tied to operators of the same kind and upscale.
    :ivar lr: the learning rate it trains with when none is given; None for its family's (see
        :func:`sei.config.default_lr`).
    """

    family: str
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    needs_physics: bool = False
    lr: float | None = None


BACKBONES: dict[str, BackbonePreset] = {
    "swinir": BackbonePreset("swinir", {}, "the paper's SwinIR (embed 180, 6x6 blocks, ~11.5 M parameters)"),
    "swinir-small": BackbonePreset(
        "swinir", {"embed_dim": 60, "depths": (6, 6, 6, 6), "num_heads": (6, 6, 6, 6)},
        "lightweight SwinIR (embed 60, 4x6 blocks, ~0.9 M parameters)"),
    "unet-tiny": BackbonePreset("unet", {"width": 8, "levels": 2, "blocks": 1}, "tiny residual U-Net, for tests"),
    "unet-small": BackbonePreset("unet", {"width": 32, "levels": 2, "blocks": 2},
                                 "small residual U-Net (~1.1 M parameters), fast on a CPU"),
    # measured (benchmarks/laptop_quality.py, bf16): at the small U-Net's 1e-3 its gradient norm overflowed at
    # step 153; 5e-4 trains
    "unet-base": BackbonePreset("unet", {"width": 64, "levels": 2, "blocks": 2},
                                "larger residual U-Net (~4.4 M parameters)", lr=5e-4),
    "unrolled-tiny": BackbonePreset(
        "unrolled", {"iterations": 2, "width": 8, "levels": 2, "blocks": 1},
        "half-quadratic splitting, 2 iterations, tiny denoiser; needs the operator; for tests", needs_physics=True),
    "unrolled-small": BackbonePreset(
        "unrolled", {"iterations": 4, "width": 16, "levels": 2, "blocks": 1},
        "half-quadratic splitting unrolled 4 times: the operator's exact data step and a shared noise-conditioned "
        "U-Net denoiser (~0.15 M parameters, an SEI step cheaper than unet-small's); needs the operator",
        needs_physics=True),
    "unrolled-base": BackbonePreset(
        "unrolled", {"iterations": 4, "width": 32, "levels": 2, "blocks": 1},
        "unrolled-small with a denoiser twice as wide (~0.6 M parameters, an SEI step about 3x as long); needs the "
        "operator", needs_physics=True),
}


# Options that change how a network computes, not what it is: not recorded with its weights.
RUNTIME_OPTIONS = ("fused_attention", "checkpointing")


def needs_physics(name: str) -> bool:
    """Whether the backbone ``name`` holds the measurement operator (must be built with ``physics=``)."""
    if name not in BACKBONES:
        raise UnknownNameError("backbone", name, BACKBONES)
    return BACKBONES[name].needs_physics


def build_backbone(name: str, upscale: int = 1, in_chans: int = 3, physics: Any = None, **options: Any) -> nn.Module:
    """A backbone by preset name, for ``upscale`` 1 (deblurring) or r (x r super-resolution).

    :param physics: the measurement operator, required by physics-aware presets (``unrolled-*``) and ignored by
        the others. It is held by the network, not stored in its weights.
    :param options: overrides of the preset's options (e.g. ``width=48``).
    :return: the network, carrying ``sei_architecture`` (what :func:`backbone_from_architecture` needs).
    :raises ConfigError: for a physics-aware preset without an operator.
    """
    if name not in BACKBONES:
        raise UnknownNameError("backbone", name, BACKBONES)
    preset = BACKBONES[name]
    merged = {**preset.options, **options}
    if not isinstance(upscale, int) or upscale < 1:
        raise ConfigError(f"upscale must be a positive integer, got {upscale!r}")
    if preset.needs_physics and physics is None:
        raise ConfigError(f"backbone {name!r} runs the measurement operator inside the network: build it with "
                          "physics=<the operator> (the training run's or evaluation's physics)")
    if preset.family == "unrolled":
        from sei.models.unrolled import UnrolledHQS

        model = UnrolledHQS(physics, upscale=upscale, in_chans=in_chans, **merged)
    elif preset.family == "swinir":
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


def backbone_from_architecture(architecture: dict[str, Any], physics: Any = None) -> nn.Module:
    """Rebuild the network described by a weights file's architecture record.

    :param physics: the measurement operator, required when the record names a physics-aware backbone.
    :raises ConfigError: for a malformed record, or a physics-aware backbone without an operator.
    """
    try:
        return build_backbone(architecture["backbone"], upscale=int(architecture["upscale"]),
                              in_chans=int(architecture.get("in_chans", 3)), physics=physics,
                              **architecture.get("options", {}))
    except (KeyError, TypeError) as error:
        raise ConfigError(f"malformed architecture record {architecture!r}: {error}") from error
