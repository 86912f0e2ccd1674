"""Reconstruction baselines with the interface of a trained network: measurement in, estimate out, any size.

================  =====================================================================  ============  =====
kind (aliases)    what                                                                   deblurring    SR
================  =====================================================================  ============  =====
``identity`` (id) the measurement (nearest-neighbour enlargement for SR)                 yes           yes
``bicubic`` (up)  bicubic up-sampling                                                    no            yes
``wiener``        Laplacian-regularised inverse, regularisation from the noise level     yes (exact)   yes
``tv``            TV-regularised least squares, ADMM with Chambolle-Pock TV steps        yes           yes
``dip``           Deep Image Prior (deepinv's ConvDecoder)                               yes           yes
``pnp``           plug-and-play DPIR with a DRUNet denoiser (deepinv)                    yes           yes
``bm3d``          BM3D deblurring (optional ``bm3d`` package)                            yes           no
================  =====================================================================  ============  =====
"""

from __future__ import annotations

from typing import Any

from torch import nn

from sei.errors import UnknownNameError
from sei.physics.base import physics_upscale

MODEL_KINDS = ("network", "identity", "bicubic", "wiener", "tv", "dip", "pnp", "bm3d")
KIND_ALIASES = {"swinir": "network", "net": "network", "id": "identity", "up": "bicubic", "upsample": "bicubic"}


def canonical_kind(kind: str) -> str:
    """The registry name of a model kind or alias (the reference's ``swinir``, ``id``, ``up`` included)."""
    key = str(kind).strip().lower()
    key = KIND_ALIASES.get(key, key)
    if key not in MODEL_KINDS:
        raise UnknownNameError("model kind", kind, list(MODEL_KINDS) + list(KIND_ALIASES))
    return key


def build_baseline(kind: str, physics, options: dict[str, Any] | None = None) -> nn.Module:
    """A baseline reconstructor for ``physics`` (not ``network``: that one needs weights).

    :param options: ``wiener_strength``, ``tv_weight``, ``tv_iterations``, ``dip_iterations``, ``dip_channels``,
        ``dip_lr``, ``pnp_weights``, ``download``, ``bm3d_profile``, ``progress`` (missing ones take defaults).
    """
    from sei.baselines.classical import Bicubic, Identity, Wiener
    from sei.baselines.iterative import PnP, TotalVariation
    from sei.baselines.zero_shot import BM3DDeblurring, DeepImagePrior

    options = {k: v for k, v in (options or {}).items() if v is not None}
    kind = canonical_kind(kind)
    upscale = physics_upscale(physics)
    if kind == "identity":
        return Identity(upscale)
    if kind == "bicubic":
        return Bicubic(upscale)
    if kind == "wiener":
        return Wiener(physics, strength=options.get("wiener_strength"))
    if kind == "tv":
        return TotalVariation(physics, weight=options.get("tv_weight"), iterations=options.get("tv_iterations", 100))
    if kind == "dip":
        return DeepImagePrior(physics, iterations=options.get("dip_iterations"), channels=options.get("dip_channels", 256),
                              learning_rate=options.get("dip_lr", 1e-2), progress=options.get("progress", True))
    if kind == "pnp":
        return PnP(physics, weights=options.get("pnp_weights"), download=options.get("download", False))
    if kind == "bm3d":
        return BM3DDeblurring(physics, profile=options.get("bm3d_profile", "np"))
    raise UnknownNameError("model kind", kind, [k for k in MODEL_KINDS if k != "network"],
                           hint="a trained network is given with --weights")
