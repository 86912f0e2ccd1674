"""Backbones by name: every preset declares everything about its network, and weights files record which it was.

==================  =========  ===========  =============  ========  ============================================
preset              family     lr           checkpointing  operator  what
==================  =========  ===========  =============  ========  ============================================
``swinir``          swinir     paper's      yes            no        the paper's SwinIR (~11.5 M parameters)
``swinir-small``    swinir     paper's      yes            no        lightweight SwinIR (~0.9 M)
``unet-tiny``       unet       1e-3         no             no        tiny residual U-Net, for tests
``unet-small``      unet       1e-3         no             no        small residual U-Net (~1.1 M), the laptop's
``unet-base``       unet       5e-4         no             no        larger residual U-Net (~4.4 M)
``unrolled-*``      unrolled   1e-3         no             yes       half-quadratic splitting with the operator
==================  =========  ===========  =============  ========  ============================================

"paper's" is the paper's rate by task (:data:`sei.config.recipe.PAPER_LR`). Every network has ``size_multiple``, the
grid its input sizes are aligned to when restoring in tiles. Adding a backbone is one :class:`BackbonePreset` (and
its family, if new) here, and the contract tests of ``tests/test_backbone_contracts.py`` run on it.

>>> preset = BACKBONES["unet-small"]
>>> preset.family.name, preset.lr, preset.checkpointing, preset.needs_physics
('unet', 0.001, False, False)
>>> build_backbone("unet-tiny", upscale=2).sei_architecture["upscale"]
2
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from sei.core.errors import ConfigError, UnknownNameError

__all__ = ["BACKBONES", "CONVOLUTIONAL_LR", "RUNTIME_OPTIONS", "SWINIR", "UNET", "UNROLLED",
           "backbone_from_architecture", "backbone_preset", "BackboneFamily", "BackbonePreset", "build_backbone",
           "needs_physics"]


def _swinir(upscale: int, in_chans: int, physics: Any, **options: Any) -> nn.Module:
    from sei.models.swinir import SwinIR

    return SwinIR(upscale=upscale, in_chans=in_chans, **options)


def _unet(upscale: int, in_chans: int, physics: Any, **options: Any) -> nn.Module:
    from sei.models.unet import UNet

    return UNet(upscale=upscale, in_chans=in_chans, **options)


def _unrolled(upscale: int, in_chans: int, physics: Any, **options: Any) -> nn.Module:
    from sei.models.unrolled import UnrolledHQS

    return UnrolledHQS(physics, upscale=upscale, in_chans=in_chans, **options)


@dataclass(frozen=True)
class BackboneFamily:
    """A kind of network: how it is built and what it can do.

    :ivar build: ``build(upscale, in_chans, physics, **options) -> network``.
    :ivar checkpointing: the network can recompute its activations in the backward pass (``--memory
        checkpointing``/``lean``; :mod:`sei.training.memory_plan`).
    :ivar physics_aware: the network runs the measurement operator inside: it must be built with ``physics=``
        and is tied to operators of the same kind and upscale.
    """

    name: str
    build: Callable[..., nn.Module]
    checkpointing: bool = False
    physics_aware: bool = False


SWINIR = BackboneFamily("swinir", _swinir, checkpointing=True)
UNET = BackboneFamily("unet", _unet)
UNROLLED = BackboneFamily("unrolled", _unrolled, physics_aware=True)
# The learning rate of the convolutional and unrolled networks: 1e-4 (the paper's, for SwinIR) leaves them far from
# converged in a laptop budget (benchmarks/laptop_quality.py).
CONVOLUTIONAL_LR = 1e-3


@dataclass(frozen=True)
class BackbonePreset:
    """A named backbone: its family, its options, a description, and the learning rate it trains with.

    :ivar lr: the learning rate when none is given; ``None`` for the paper's rate by task
        (:func:`sei.config.recipe.default_lr`).
    """

    family: BackboneFamily
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    lr: float | None = CONVOLUTIONAL_LR

    @property
    def checkpointing(self) -> bool:
        """Whether the network can recompute its activations (the family's)."""
        return self.family.checkpointing

    @property
    def needs_physics(self) -> bool:
        """Whether the network holds the measurement operator (the family's)."""
        return self.family.physics_aware


BACKBONES: dict[str, BackbonePreset] = {
    "swinir": BackbonePreset(SWINIR, {}, "the paper's SwinIR (embed 180, 6x6 blocks, ~11.5 M parameters)", lr=None),
    "swinir-small": BackbonePreset(
        SWINIR, {"embed_dim": 60, "depths": (6, 6, 6, 6), "num_heads": (6, 6, 6, 6)},
        "lightweight SwinIR (embed 60, 4x6 blocks, ~0.9 M parameters)", lr=None),
    "unet-tiny": BackbonePreset(UNET, {"width": 8, "levels": 2, "blocks": 1}, "tiny residual U-Net, for tests"),
    "unet-small": BackbonePreset(UNET, {"width": 32, "levels": 2, "blocks": 2},
                                 "small residual U-Net (~1.1 M parameters), fast on a CPU"),
    # measured (benchmarks/laptop_quality.py, bf16): at the small U-Net's 1e-3 its gradient norm overflowed at
    # step 153; 5e-4 trains
    "unet-base": BackbonePreset(UNET, {"width": 64, "levels": 2, "blocks": 2},
                                "larger residual U-Net (~4.4 M parameters)", lr=5e-4),
    "unrolled-tiny": BackbonePreset(
        UNROLLED, {"iterations": 2, "width": 8, "levels": 2, "blocks": 1},
        "half-quadratic splitting, 2 iterations, tiny denoiser; needs the operator; for tests"),
    "unrolled-small": BackbonePreset(
        UNROLLED, {"iterations": 4, "width": 16, "levels": 2, "blocks": 1},
        "half-quadratic splitting unrolled 4 times: the operator's exact data step and a shared noise-conditioned "
        "U-Net denoiser (~0.15 M parameters, an SEI step cheaper than unet-small's); needs the operator"),
    "unrolled-base": BackbonePreset(
        UNROLLED, {"iterations": 4, "width": 32, "levels": 2, "blocks": 1},
        "unrolled-small with a denoiser twice as wide (~0.6 M parameters, an SEI step about 3x as long); needs the "
        "operator"),
}


def backbone_preset(name: str) -> BackbonePreset:
    """The preset called ``name``.

    :raises UnknownNameError: listing the presets.
    """
    if name not in BACKBONES:
        raise UnknownNameError("backbone", name, BACKBONES)
    return BACKBONES[name]


# Options that change how a network computes, not what it is: not recorded with its weights.
RUNTIME_OPTIONS = ("fused_attention", "checkpointing")


def needs_physics(name: str) -> bool:
    """Whether the backbone ``name`` holds the measurement operator (must be built with ``physics=``)."""
    return backbone_preset(name).needs_physics


def build_backbone(name: str, upscale: int = 1, in_chans: int = 3, physics: Any = None, **options: Any) -> nn.Module:
    """A backbone by preset name, for ``upscale`` 1 (deblurring) or r (x r super-resolution).

    :param physics: the measurement operator, required by physics-aware presets (``unrolled-*``) and ignored by
        the others. It is held by the network, not stored in its weights.
    :param options: overrides of the preset's options (e.g. ``width=48``).
    :return: the network, carrying ``sei_architecture`` (what :func:`backbone_from_architecture` needs).
    :raises ConfigError: for a physics-aware preset without an operator.
    """
    preset = backbone_preset(name)
    merged = {**preset.options, **options}
    if not isinstance(upscale, int) or upscale < 1:
        raise ConfigError(f"upscale must be a positive integer, got {upscale!r}")
    if preset.needs_physics and physics is None:
        raise ConfigError(f"backbone {name!r} runs the measurement operator inside the network: build it with "
                          "physics=<the operator> (the training run's or evaluation's physics)")
    model = preset.family.build(upscale, in_chans, physics, **merged)
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
