"""Backbones (the paper's SwinIR, a small residual U-Net) and their weights files."""

from sei.models.registry import BACKBONES, BackbonePreset, backbone_from_architecture, build_backbone
from sei.models.weights import load_backbone, load_state, read_weights, save_weights

__all__ = ["BACKBONES", "BackbonePreset", "backbone_from_architecture", "build_backbone", "load_backbone",
           "load_state", "read_weights", "save_weights"]
