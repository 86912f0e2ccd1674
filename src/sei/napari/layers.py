"""Image layers to and from the files sei's library reads and writes, in their own dtype and with their voxel size.

A layer becomes a TIFF as ``sei restore`` and ``sei train`` would read one from a microscope: a 2-D layer one page,
a 3-D layer a z-stack (pages along z), an RGB layer colour pages; its dtype kept, so that the intensity handling
(:mod:`sei.io.intensity`) is that of the same array saved as a TIFF. Where the layer's units are lengths, its scale
is written as the voxel size (TIFF resolution tags in centimetres, and ImageJ's z-spacing), so that a PSF made for
other voxels is refused as it is for files. A PSF layer becomes the ``.npy`` kernel file ``--kernel`` reads, with its
voxel size recorded beside it (:func:`sei.io.voxels.write_psf_voxel_size`).

Layers are taken by what they hold (``data``, ``scale``, ``units``, ``rgb``, ``name``), so that these functions need
no viewer.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from sei.core.errors import ImageError
from sei.io.images import ImageFile, read_image_file, write_image_file
from sei.io.voxels import MICROMETRES_PER, VoxelSize, voxel_size_tags

__all__ = ["file_name", "layer_array", "layer_image_file", "layer_voxel_size", "read_layer_data",
           "write_layer", "write_psf_layer"]


def layer_array(layer: Any) -> np.ndarray:
    """The layer's pixels as a NumPy array in their own dtype (the full resolution of a multiscale layer)."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return np.asarray(data)


def _spatial_dims(layer: Any, array: np.ndarray) -> int:
    return array.ndim - (1 if getattr(layer, "rgb", False) else 0)


def layer_voxel_size(layer: Any) -> VoxelSize | None:
    """The voxel size of a layer whose units are lengths, in micrometres (``z`` ``None`` for a 2-D layer); ``None``
    for a layer in pixels (napari's default), whose scale says nothing physical."""
    array = layer_array(layer)
    dims = _spatial_dims(layer, array)
    units = tuple(getattr(layer, "units", ()) or ())
    scale = tuple(float(s) for s in layer.scale)
    sizes: list[float | None] = []
    for axis in range(-min(dims, 3), 0):
        factor = MICROMETRES_PER.get(str(units[axis]).strip().lower()) if len(units) >= -axis else None
        sizes.append(None if factor is None else scale[axis] * factor)
    if all(size is None for size in sizes):
        return None
    z = sizes[0] if len(sizes) == 3 else None
    return VoxelSize(z, sizes[-2], sizes[-1], "napari layer")


def layer_image_file(layer: Any) -> ImageFile:
    """The layer as :func:`sei.io.images.write_image_file` writes it: one page, or the pages of a z-stack.

    :raises ImageError: for a layer of more than three spatial dimensions (time series, channels: one z-stack or
        image per layer), or of fewer than two.
    """
    array = layer_array(layer)
    dims = _spatial_dims(layer, array)
    if dims not in (2, 3):
        raise ImageError(f"layer {layer.name!r} has {dims} dimensions ({tuple(array.shape)}): sei restores images "
                         "(2-D) and z-stacks (3-D); split other axes into layers of their own")
    voxel = layer_voxel_size(layer)
    resolution, imagej = voxel_size_tags(voxel) if voxel is not None else (None, {})
    if dims == 2:
        return ImageFile([array], resolution)
    return ImageFile(list(array), resolution, imagej, "Z", (array.shape[0],))


def file_name(layer: Any, suffix: str = ".tif") -> str:
    """A file name for the layer: its name with what file systems refuse replaced (``cells 1/2`` -> ``cells_1_2``)."""
    stem = re.sub(r"[^\w.-]+", "_", str(layer.name)).strip("._") or "layer"
    return stem + suffix


def write_layer(layer: Any, folder: str | Path) -> Path:
    """Write the layer into ``folder`` as a TIFF in its own dtype (:func:`layer_image_file`); return the path."""
    return write_image_file(Path(folder) / file_name(layer), layer_image_file(layer))


def read_layer_data(path: str | Path) -> np.ndarray:
    """The pixels of an image file as a layer holds them: one page ``(H, W[, C])``, a stack ``(D, H, W[, C])``."""
    pages = read_image_file(path).pages
    return pages[0] if len(pages) == 1 else np.stack(pages)


def write_psf_layer(layer: Any, path: str | Path) -> Path:
    """Write a PSF layer as the ``.npy`` kernel ``--kernel`` reads (checked and normalised), its voxel size recorded
    beside it when the layer has one; return the path.

    :raises KernelError: for data that is no kernel (negative, empty, even-sized ...).
    """
    import torch

    from sei.physics.kernels import write_kernel
    from sei.io.voxels import psf_sampling_file, write_psf_voxel_size

    array = layer_array(layer)
    path = write_kernel(torch.from_numpy(array.astype(np.float32)), path)
    voxel = layer_voxel_size(layer) if array.ndim == 3 else None
    if voxel is not None:
        write_psf_voxel_size(path, voxel)
    else:
        psf_sampling_file(path).unlink(missing_ok=True)  # a record of an earlier PSF would describe this one
    return path
