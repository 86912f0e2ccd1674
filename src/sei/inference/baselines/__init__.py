"""Reconstruction baselines with the interface of a trained network: measurement in, estimate out, any size.

========================  ==================================================================  ===========  ==========
kind (aliases)            what                                                                deblurring   SR
========================  ==================================================================  ===========  ==========
``identity`` (id)         the measurement (nearest-neighbour enlargement for SR)              yes          yes
``bicubic`` (up)          bicubic up-sampling                                                 no           yes
``wiener``                Laplacian-regularised inverse, regularisation from the noise level  yes (exact)  yes
``tv``                    TV-regularised least squares, ADMM with Chambolle-Pock TV steps     yes          yes
``richardson-lucy`` (rl)  Richardson-Lucy or RL-TV, stopped by the discrepancy principle      yes          with a PSF
``dip``                   Deep Image Prior (deepinv's ConvDecoder)                            yes          yes
``pnp``                   plug-and-play DPIR with a DRUNet denoiser (deepinv)                 yes          yes
``bm3d``                  BM3D deblurring (optional ``bm3d`` package)                         yes          no
========================  ==================================================================  ===========  ==========

Which baselines apply to which operator is declared by the operator's registry entry (:mod:`sei.physics.registry`).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from sei.core.defaults import BASELINE_DEFAULTS
from sei.core.errors import ConfigError, UnknownNameError
from sei.physics.base import physics_upscale
from sei.physics.registry import ALL_BASELINES

__all__ = ["BASELINE_DEFAULTS", "KIND_ALIASES", "MODEL_KINDS", "build_baseline", "canonical_kind"]

MODEL_KINDS = ("network", *ALL_BASELINES)
# The baselines' settings when the options leave them open: BASELINE_DEFAULTS (sei.core.defaults).
KIND_ALIASES = {"swinir": "network", "net": "network", "id": "identity", "up": "bicubic", "upsample": "bicubic",
                "rl": "richardson-lucy", "richardson_lucy": "richardson-lucy", "rl-tv": "richardson-lucy"}


def canonical_kind(kind: str) -> str:
    """The registry name of a model kind or alias (the reference's ``swinir``, ``id``, ``up`` included)."""
    key = str(kind).strip().lower()
    key = KIND_ALIASES.get(key, key)
    if key not in MODEL_KINDS:
        raise UnknownNameError("model kind", kind, list(MODEL_KINDS) + list(KIND_ALIASES))
    return key


def build_baseline(kind: str, physics, options: dict[str, Any] | None = None) -> nn.Module:
    """A baseline reconstructor for ``physics`` (not ``network``: that one needs weights).

    :param options: ``wiener_strength``, ``tv_weight``, ``tv_iterations``, ``rl_iterations``, ``rl_tv``,
        ``rl_stop``, ``dip_iterations``, ``dip_channels``,
        ``dip_lr``, ``pnp_weights``, ``download``, ``bm3d_profile``, ``progress`` (missing ones take defaults).
    :raises ConfigError: when the operator's registry entry (:mod:`sei.physics.registry`) says the baseline does
        not apply to it.
    """
    from sei.inference.baselines.classical import Bicubic, Identity, Wiener
    from sei.inference.baselines.iterative import PnP, TotalVariation
    from sei.inference.baselines.zero_shot import BM3DDeblurring, DeepImagePrior

    options = {**BASELINE_DEFAULTS, **{k: v for k, v in (options or {}).items() if v is not None}}
    kind = canonical_kind(kind)
    spec = getattr(physics, "spec", None)
    if kind != "network" and getattr(spec, "resolved", False) and kind not in spec.operator_kind.baselines:
        entry = spec.operator_kind
        task = "super-resolution" if entry.task == "sr" else entry.task
        raise ConfigError(f"the {kind} baseline does not apply to {task} by the {entry.name} operator; the ones that "
                          f"do: {', '.join(entry.baselines)}")
    upscale = physics_upscale(physics)
    if kind == "identity":
        return Identity(upscale)
    if kind == "bicubic":
        return Bicubic(upscale)
    if kind == "wiener":
        return Wiener(physics, strength=options.get("wiener_strength"))
    if kind == "tv":
        return TotalVariation(physics, weight=options.get("tv_weight"), iterations=options["tv_iterations"])
    if kind == "richardson-lucy":
        from sei.inference.baselines.richardson_lucy import RichardsonLucy

        return RichardsonLucy(physics, iterations=options["rl_iterations"], tv_weight=options["rl_tv"],
                              stop=options["rl_stop"])
    if kind == "dip":
        return DeepImagePrior(physics, iterations=options.get("dip_iterations"), channels=options["dip_channels"],
                              learning_rate=options["dip_lr"], progress=options.get("progress", True))
    if kind == "pnp":
        return PnP(physics, weights=options.get("pnp_weights"), download=options.get("download", False))
    if kind == "bm3d":
        return BM3DDeblurring(physics, profile=options["bm3d_profile"])
    raise UnknownNameError("model kind", kind, [k for k in MODEL_KINDS if k != "network"],
                           hint="a trained network is given with --weights")
