"""Backbones (the paper's SwinIR, a small residual U-Net) and their weights files."""

from sei.models.registry import (
    BACKBONES, BackboneFamily, BackbonePreset, backbone_from_architecture, backbone_preset, build_backbone,
)
from sei.models.weights import load_backbone, load_state, read_weights, save_weights

__all__ = ["BACKBONES", "BackboneFamily", "BackbonePreset", "backbone_from_architecture", "backbone_preset",
           "build_backbone", "load_backbone",
           "load_state", "read_weights", "save_weights"]
