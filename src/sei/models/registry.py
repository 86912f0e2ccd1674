"""Backbones by name: every preset declares everything about its network, and weights files record which it was.

==================  =========  ===========  =============  ========  ============================================
preset              family     lr           checkpointing  operator  what
==================  =========  ===========  =============  ========  ============================================
``swinir``          swinir     paper's      yes            no        the paper's SwinIR (~11.5 M parameters)
``swinir-small``    swinir     paper's      yes            no        lightweight SwinIR (~0.9 M)
``unet-tiny``       unet       1e-3         no             no        tiny residual U-Net, for tests
``unet-small``      unet       1e-3         no             no        small residual U-Net (~1.1 M), the laptop's
``unet-base``       unet       5e-4         no             no        larger residual U-Net (~4.4 M)
``unet3d-small``    unet3d     1e-3         no             no        3-D residual U-Net for volumes, sized for a CPU
``unet3d-base``     unet3d     5e-4         no             no        wider 3-D residual U-Net, for a GPU
``unrolled-*``      unrolled   1e-3         no             yes       half-quadratic splitting with the operator
==================  =========  ===========  =============  ========  ============================================

"paper's" is the paper's rate by task (:data:`sei.config.recipe.PAPER_LR`). Every network has ``size_multiple``, the
grid its input sizes are aligned to when restoring in tiles. Adding a backbone is one :class:`BackbonePreset` (and
its family, if new) here, and the contract tests of ``tests/test_backbone_contracts.py`` run on it.

A family declares every option its networks take, with the values each may take (:class:`Between`,
:class:`Series`, :class:`OneOf`): a weights file's architecture record decides how much memory the network it
describes takes, so :func:`check_options` refuses anything outside them (unknown options, wrong types, sizes far
beyond the presets') before a network is built.

>>> preset = BACKBONES["unet-small"]
>>> preset.family.name, preset.lr, preset.checkpointing, preset.needs_physics
('unet', 0.001, False, False)
>>> build_backbone("unet-tiny", upscale=2).sei_architecture["upscale"]
2
>>> build_backbone("unet-tiny", width=200000)
Traceback (most recent call last):
...
sei.core.errors.ConfigError: backbone option 'width' = 200000 is outside 1..128 for unet
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sei.core.defaults import CHECKPOINTING, PAPER_SWINIR
from sei.core.errors import ConfigError, UnknownNameError

if TYPE_CHECKING:  # the registry is declarative: listing it imports neither torch nor deepinv
    from torch import nn

__all__ = ["ARCHITECTURE_KEYS", "BACKBONES", "CHANNELS", "CONVOLUTIONAL_LR", "RUNTIME_OPTIONS", "SWINIR", "UNET",
           "UNET3D", "UNROLLED", "UPSCALES", "backbone_from_architecture", "backbone_preset", "BackboneFamily",
           "BackbonePreset", "Between", "build_backbone", "check_architecture", "check_options", "needs_physics",
           "OneOf", "OptionRule", "Series"]


def _swinir(upscale: int, in_chans: int, physics: Any, **options: Any) -> nn.Module:
    from sei.models.swinir import SwinIR

    return SwinIR(upscale=upscale, in_chans=in_chans, **options)


def _unet(upscale: int, in_chans: int, physics: Any, **options: Any) -> nn.Module:
    from sei.models.unet import UNet

    return UNet(upscale=upscale, in_chans=in_chans, **options)


def _unet3d(upscale: int, in_chans: int, physics: Any, **options: Any) -> nn.Module:
    from sei.models.unet import UNet

    return UNet(upscale=upscale, in_chans=in_chans, spatial_dims=3, **options)


def _unrolled(upscale: int, in_chans: int, physics: Any, **options: Any) -> nn.Module:
    from sei.models.unrolled import UnrolledHQS

    return UnrolledHQS(physics, upscale=upscale, in_chans=in_chans, **options)


@dataclass(frozen=True)
class Between:
    """The values of a number option: ``low <= value <= high``; an integer for ``kind=int``, any real number
    (integers too) for ``kind=float``. Booleans are not numbers here."""

    low: float
    high: float
    kind: type = int

    def __str__(self) -> str:
        return f"{self.low:g}..{self.high:g}"

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not allowed, or None."""
        kinds = (int,) if self.kind is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            return "is not an integer" if self.kind is int else "is not a number"
        if not self.low <= value <= self.high:  # NaN fails here too
            return f"is outside {self}"
        return None


@dataclass(frozen=True)
class Series:
    """The values of an option that is one number per stage (SwinIR's ``depths``): a list or tuple of 1 to
    ``longest`` numbers, each allowed by ``item``."""

    item: Between
    longest: int

    def __str__(self) -> str:
        return f"1 to {self.longest} values in {self.item}"

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not allowed, or None."""
        if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= self.longest:
            return f"is not a list of {self}"
        for entry in value:
            problem = self.item.problem(entry)
            if problem is not None:
                return f"has an entry {entry!r} that {problem}"
        return None


@dataclass(frozen=True)
class OneOf:
    """The values of a switch or a word: one of ``choices`` (``True`` is not ``1``)."""

    choices: tuple[Any, ...]

    def __str__(self) -> str:
        return ", ".join(map(repr, self.choices))

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not allowed, or None."""
        if any(type(value) is type(choice) and value == choice for choice in self.choices):
            return None
        return f"is not one of {self}"


OptionRule = Between | Series | OneOf
_SWITCH = OneOf((True, False))
# Every family takes these (build_backbone's upscale and in_chans): the paper's factors are 2 to 4; images have 1
# (grayscale), 3 (RGB), 4 (RGBA) or a few spectral channels.
UPSCALES = Between(1, 16)
CHANNELS = Between(1, 16)


def _options(**rules: OptionRule) -> Mapping[str, OptionRule]:
    """A family's option rules, read-only."""
    return MappingProxyType(rules)


def _swinir_consistency(upscale: int, options: Mapping[str, Any]) -> str | None:
    """What the per-option rules cannot say of a SwinIR: deepinv's upsampler takes x3 and powers of 2 only, there
    is one head count per stage, and each divides the embedding width."""
    config = {**PAPER_SWINIR, **options}
    depths, heads, width = config["depths"], config["num_heads"], config["embed_dim"]
    if upscale not in (1, 3) and upscale & (upscale - 1):
        return f"upscale {upscale} is not 1, 3 or a power of 2"
    if len(depths) != len(heads):
        return f"depths {list(depths)} and num_heads {list(heads)} must have one entry per stage each"
    if any(width % count for count in heads):
        return f"embed_dim {width} is not a multiple of every num_heads {list(heads)}"
    return None


@dataclass(frozen=True)
class BackboneFamily:
    """A kind of network: how it is built, what it can do, and the options it takes.

    :ivar build: ``build(upscale, in_chans, physics, **options) -> network``.
    :ivar checkpointing: the network can recompute its activations in the backward pass (``--memory
        checkpointing``/``lean``; :mod:`sei.training.memory_plan`).
    :ivar physics_aware: the network runs the measurement operator inside: it must be built with ``physics=``
        and is tied to operators of the same kind and upscale.
    :ivar options: every option ``build`` takes, with the values it may take; maxima a few times the largest
        preset's keep any network built from a record within memory.
    :ivar consistency: ``consistency(upscale, options) -> problem or None``, for rules between options that the
        per-option rules cannot say (``options`` merged over the preset's).
    :ivar spatial_dims: what the networks restore: 2 for ``(B, C, H, W)`` images, 3 for ``(B, C, D, H, W)`` volumes.
    """

    name: str
    build: Callable[..., nn.Module]
    checkpointing: bool = False
    physics_aware: bool = False
    options: Mapping[str, OptionRule] = field(default_factory=_options, hash=False)
    consistency: Callable[[int, Mapping[str, Any]], str | None] | None = None
    spatial_dims: int = 2


_RATE = Between(0.0, 1.0, float)  # a dropout probability
SWINIR = BackboneFamily("swinir", _swinir, checkpointing=True, consistency=_swinir_consistency, options=_options(
    # the paper's: embed 180, 6 stages of 6 blocks of 6 heads, window 8, trained on 48-pixel crops, mlp ratio 2; at
    # every maximum ~113 M parameters and ~40 M mask values (under 1 GB)
    embed_dim=Between(1, 360), depths=Series(Between(1, 8), 8), num_heads=Series(Between(1, 24), 8),
    window_size=Between(1, 16), img_size=Between(1, 64), mlp_ratio=Between(1.0, 4.0, float),
    qkv_bias=_SWITCH, patch_norm=_SWITCH, resi_connection=OneOf(("1conv", "3conv")),
    drop_rate=_RATE, attn_drop_rate=_RATE, drop_path_rate=_RATE,
    fused_attention=_SWITCH, checkpointing=OneOf(CHECKPOINTING)))
# The largest U-Net preset has width 64, 2 levels, 2 blocks; the widest stage is width * 2**levels wide. At every
# maximum a U-Net (or an unrolled network's denoiser) has ~134 M parameters (0.5 GB).
UNET = BackboneFamily("unet", _unet, options=_options(
    width=Between(1, 128), levels=Between(0, 3), blocks=Between(1, 4)))



# The 3-D U-Net: a 3x3x3 convolution costs 3x a 3x3 one per voxel and volumes hold many voxels, so its presets are
# narrower than the 2-D ones; the option maxima keep it within the 2-D family's memory bound.
UNET3D = BackboneFamily("unet3d", _unet3d, spatial_dims=3, options=_options(
    width=Between(1, 64), levels=Between(0, 3), blocks=Between(1, 4)))
UNROLLED = BackboneFamily("unrolled", _unrolled, physics_aware=True, options=_options(
    iterations=Between(1, 16), width=Between(1, 128), levels=Between(0, 3), blocks=Between(1, 4),
    init_sigma=Between(1e-4, 1.0, float)))
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

    @property
    def spatial_dims(self) -> int:
        """2 for a network of images, 3 for one of volumes (the family's)."""
        return self.family.spatial_dims


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
    "unet3d-small": BackbonePreset(UNET3D, {"width": 16, "levels": 2, "blocks": 1},
                                   "3-D residual U-Net for volumes (~0.4 M parameters), sized for a CPU"),
    "unet3d-base": BackbonePreset(UNET3D, {"width": 32, "levels": 2, "blocks": 2},
                                  "wider 3-D residual U-Net for volumes (~3 M parameters), for a GPU", lr=5e-4),
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


def check_options(name: str, upscale: Any, in_chans: Any, options: Mapping[str, Any], what: str = "backbone"
                  ) -> None:
    """Check what a backbone would be built from against its family's declared rules, building nothing.

    :param options: overrides of the preset's options.
    :param what: what holds the settings, for messages (``"backbone"``, ``"architecture record"``).
    :raises UnknownNameError: for an unknown preset or option.
    :raises ConfigError: for an ``upscale``, ``in_chans`` or option value its rule refuses, or options that do not
        fit together.
    """
    preset = backbone_preset(name)
    family = preset.family
    for key, value, rule in (("upscale", upscale, UPSCALES), ("in_chans", in_chans, CHANNELS)):
        problem = rule.problem(value)
        if problem is not None:
            raise ConfigError(f"{what} {key!r} = {reprlib.repr(value)} {problem} for {family.name}")
    for key, value in options.items():
        if key not in family.options:
            raise UnknownNameError(f"{family.name} option", key, family.options)
        problem = family.options[key].problem(value)
        if problem is not None:
            raise ConfigError(f"{what} option {key!r} = {reprlib.repr(value)} {problem} for {family.name}")
    problem = family.consistency(upscale, {**preset.options, **options}) if family.consistency else None
    if problem is not None:
        raise ConfigError(f"{what} options do not fit together for {family.name}: {problem}")


def build_backbone(name: str, upscale: int = 1, in_chans: int = 3, physics: Any = None, **options: Any) -> nn.Module:
    """A backbone by preset name, for ``upscale`` 1 (deblurring) or r (x r super-resolution).

    :param physics: the measurement operator, required by physics-aware presets (``unrolled-*``) and ignored by
        the others. It is held by the network, not stored in its weights.
    :param options: overrides of the preset's options (e.g. ``width=48``), within its family's rules.
    :return: the network, carrying ``sei_architecture`` (what :func:`backbone_from_architecture` needs).
    :raises UnknownNameError: for an unknown preset or option.
    :raises ConfigError: for settings outside the family's rules (:func:`check_options`), or a physics-aware
        preset without an operator.
    """
    preset = backbone_preset(name)
    check_options(name, upscale, in_chans, options)
    merged = {**preset.options, **options}
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


# What build_backbone records with a network's weights (the first two are required).
ARCHITECTURE_KEYS = ("backbone", "upscale", "in_chans", "options")


def _kind(value: Any) -> str:
    """``None`` or ``a str``, ``a list`` ...: what a value is, for messages."""
    return "None" if value is None else f"a {type(value).__name__}"


def check_architecture(architecture: Any) -> None:
    """Check a weights file's architecture record (what :func:`build_backbone` records) before anything is built:
    its layout, its backbone's name, and every value against the family's rules (:func:`check_options`).

    :raises UnknownNameError: for an unknown backbone or option.
    :raises ConfigError: for anything else the record should not hold.
    """
    if not isinstance(architecture, Mapping):
        raise ConfigError(f"architecture record is {_kind(architecture)}, not a dict")
    unknown = sorted(str(key) for key in architecture if key not in ARCHITECTURE_KEYS)
    if unknown:
        raise ConfigError(f"architecture record holds unknown entries {unknown}; it holds "
                          f"{', '.join(ARCHITECTURE_KEYS)} only")
    missing = [key for key in ARCHITECTURE_KEYS[:2] if key not in architecture]
    if missing:
        raise ConfigError(f"architecture record has no {' and no '.join(map(repr, missing))}")
    name, options = architecture["backbone"], architecture.get("options", {})
    if not isinstance(name, str):
        raise ConfigError(f"architecture record 'backbone' = {reprlib.repr(name)} is not a backbone name")
    if not isinstance(options, Mapping):
        raise ConfigError(f"architecture record 'options' is {_kind(options)}, not a dict")
    check_options(name, architecture["upscale"], architecture.get("in_chans", 3), options, "architecture record")


def backbone_from_architecture(architecture: Mapping[str, Any], physics: Any = None) -> nn.Module:
    """Rebuild the network described by a weights file's architecture record, once the record is checked
    (:func:`check_architecture`): a record cannot make it allocate more than its family's rules allow.

    :param physics: the measurement operator, required when the record names a physics-aware backbone.
    :raises UnknownNameError: for an unknown backbone or option.
    :raises ConfigError: for a malformed record, values outside the family's rules, or a physics-aware backbone
        without an operator.
    """
    check_architecture(architecture)
    return build_backbone(architecture["backbone"], upscale=architecture["upscale"],
                          in_chans=architecture.get("in_chans", 3), physics=physics,
                          **architecture.get("options", {}))
