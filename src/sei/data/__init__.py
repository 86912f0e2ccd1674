"""Datasets: named and user image sets, checksum-verified downloads, measurement pairs and crops.

The names below load their module on first use, so that reading the registries and specs (``sei info``, every
command's ``--help``) does not import deepinv.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module that defines it
_LAZY = {
    **dict.fromkeys(("RemoteFile", "fetch", "file_md5"), "sei.io.download"),
    **dict.fromkeys(("CropDataset", "EpochSampler", "FullImageDataset", "MeasurementSet"), "sei.data.pairs"),
    **dict.fromkeys(("resize_shorter_side",), "sei.data.preprocess"),
    **dict.fromkeys(("NAMED_DATASETS", "ImageSet", "load_image_set"), "sei.data.sources"),
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sei.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
