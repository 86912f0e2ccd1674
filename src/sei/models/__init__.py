"""Backbones (the paper's SwinIR, a small residual U-Net) and their weights files.

The names below load their module on first use, so that the registry (:mod:`sei.models.registry`) and the
published weights' names (:mod:`sei.models.hub`) can be read without importing torch or deepinv.
"""

from __future__ import annotations

from sei.core.lazy import lazy_exports

# public name -> module that defines it
_LAZY = {
    **dict.fromkeys(("BACKBONES", "BackboneFamily", "BackbonePreset", "backbone_from_architecture", "backbone_preset",
                     "build_backbone"), "sei.models.registry"),
    **dict.fromkeys(("load_backbone", "load_state", "read_weights", "save_weights"), "sei.models.weights"),
}

__all__ = ["BACKBONES", "BackboneFamily", "BackbonePreset", "backbone_from_architecture", "backbone_preset",
           "build_backbone", "load_backbone",
           "load_state", "read_weights", "save_weights"]


__getattr__, __dir__ = lazy_exports("sei.models", _LAZY, __all__)
