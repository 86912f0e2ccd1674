"""Datasets: named and user image sets, checksum-verified downloads, measurement pairs and crops.

The names below load their module on first use, so that reading the registries and specs (``sei info``, every
command's ``--help``) does not import deepinv.
"""

from __future__ import annotations

from sei.core.lazy import lazy_exports

# public name -> module that defines it
_LAZY = {
    **dict.fromkeys(("RemoteFile", "fetch", "file_md5"), "sei.io.download"),
    **dict.fromkeys(("CropDataset", "EpochSampler", "FullImageDataset", "MeasurementSet"), "sei.data.pairs"),
    **dict.fromkeys(("resize_shorter_side",), "sei.data.preprocess"),
    **dict.fromkeys(("NAMED_DATASETS", "ImageSet", "load_image_set"), "sei.data.sources"),
}

__all__ = list(_LAZY)


__getattr__, __dir__ = lazy_exports("sei.data", _LAZY, __all__)
