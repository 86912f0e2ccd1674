"""Blur kernels: the paper's named kernels, and kernels read from files.

A kernel is a 2-D float tensor of shape ``(kh, kw)`` with non-negative entries summing to 1. Its centre
is the pixel ``(kh // 2, kw // 2)`` (the middle pixel for odd sizes). A 3-D kernel ``(kd, kh, kw)`` (a microscope's
PSF, planes along z) is accepted where the caller says it can use one (``dims=VOLUME_DIMS``).

Named kernels (sizes in pixels):

- ``Gaussian_R<s>``: isotropic Gaussian of standard deviation ``s`` on a ``(6s + 1)``-pixel square grid;
  the paper uses ``Gaussian_R1``, ``Gaussian_R2``, ``Gaussian_R3`` (7, 13 and 19 px).
- ``Box_R<r>``: uniform ``(2r + 1)``-pixel square box; the paper uses ``Box_R2``, ``Box_R3``, ``Box_R4``
  (5, 7 and 9 px).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from sei.core.errors import KernelError, UnknownNameError
from sei.io.voxels import VoxelSize

__all__ = ["KERNEL_FILE_SUFFIXES", "PAPER_KERNELS", "PLANE_DIMS", "VOLUME_DIMS", "box_kernel", "canonical_kernel_name",
           "gaussian_kernel", "is_kernel_path", "kernel_dimensionality", "kernel_from_file", "kernel_from_name",
           "load_kernel", "save_kernel", "validate_kernel", "write_kernel"]

PAPER_KERNELS = ("Gaussian_R1", "Gaussian_R2", "Gaussian_R3", "Box_R2", "Box_R3", "Box_R4")
KERNEL_FILE_SUFFIXES = (".pt", ".pth", ".npy", ".png", ".tif", ".tiff", ".bmp", ".pgm")
# The kernel dimensionalities a caller accepts: images only, or images and volumes.
PLANE_DIMS = (2,)
VOLUME_DIMS = (2, 3)
_NAME_PATTERN = re.compile(r"^(gaussian|box)_r(\d+)$", re.IGNORECASE)


def gaussian_kernel(std: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Isotropic Gaussian of standard deviation ``std`` px on a square grid of side ``6 std + 1``, summing to 1.

    :return: tensor of shape ``(6 std + 1, 6 std + 1)``.
    """
    if std < 1:
        raise KernelError(f"Gaussian standard deviation must be a positive integer, got {std}")
    coords = torch.arange(-3 * std, 3 * std + 1, dtype=torch.float64)
    profile = torch.exp(-(coords**2) / (2.0 * std**2))
    kernel = torch.outer(profile, profile)
    return (kernel / kernel.sum()).to(dtype)


def box_kernel(radius: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Uniform box of side ``2 radius + 1`` px, summing to 1.

    :return: tensor of shape ``(2 radius + 1, 2 radius + 1)``.
    """
    if radius < 1:
        raise KernelError(f"box radius must be a positive integer, got {radius}")
    size = 2 * radius + 1
    return torch.full((size, size), 1.0 / size**2, dtype=dtype)


def _named_kernel(name: str) -> tuple[str, int]:
    """``(family, size)`` of a kernel name such as ``gaussian_r2``, checked by its form alone (nothing is built).

    :raises UnknownNameError: if the name is not of either form; the message lists the paper's kernels.
    """
    match = _NAME_PATTERN.match(name.strip()) if isinstance(name, str) else None
    if match is None:
        raise UnknownNameError(
            "kernel",
            name,
            PAPER_KERNELS,
            hint="Any Gaussian_R<int> or Box_R<int> works too, as does a kernel file "
            f"({', '.join(KERNEL_FILE_SUFFIXES)})",
        )
    return match.group(1).lower(), int(match.group(2))


def kernel_from_name(name: str) -> torch.Tensor:
    """The kernel called ``name`` (``Gaussian_R<s>`` or ``Box_R<r>``, case-insensitive).

    :raises UnknownNameError: if the name is not of either form; the message lists the paper's kernels.
    """
    family, size = _named_kernel(name)
    return gaussian_kernel(size) if family == "gaussian" else box_kernel(size)


def canonical_kernel_name(name: str) -> str:
    """``'gaussian_r2'`` -> ``'Gaussian_R2'``; raises like :func:`kernel_from_name` for bad names.

    >>> canonical_kernel_name("box_r3")
    'Box_R3'
    """
    family, size = _named_kernel(name)
    if size < 1:
        raise KernelError(f"kernel {name!r}: the radius must be a positive integer")
    return f"{family.capitalize()}_R{size}"


def validate_kernel(kernel: torch.Tensor, source: str = "kernel", dims: tuple[int, ...] = PLANE_DIMS) -> torch.Tensor:
    """Check a kernel and return it as float32, normalised to sum 1.

    Leading singleton dimensions are squeezed while the kernel has more than 2, so ``(1, 1, kh, kw)`` and a
    one-plane ``(1, kh, kw)`` PSF are 2-D kernels.

    :param dims: the dimensionalities the caller accepts (:data:`PLANE_DIMS`, or :data:`VOLUME_DIMS` for 3-D PSFs).
    :raises KernelError: if its dimensionality is not one of ``dims``, it is empty, complex, holds non-finite or
        negative values, or sums to 0.
    """
    if not isinstance(kernel, torch.Tensor):
        raise KernelError(f"{source}: expected a tensor, got {type(kernel).__name__}")
    if kernel.is_complex():  # casting would drop the imaginary part without a word
        raise KernelError(f"{source}: the kernel is complex-valued; a blur kernel is real (take its magnitude or "
                          "real part explicitly if that is what you mean)")
    kernel = kernel.detach().to(torch.float64)
    while kernel.ndim > 2 and kernel.shape[0] == 1:
        kernel = kernel[0]
    if kernel.ndim not in dims:
        wanted = "2-D (kh, kw)" if dims == PLANE_DIMS else "2-D (kh, kw) or 3-D (kd, kh, kw)"
        where = " here (a 3-D PSF blurs volumes)" if kernel.ndim == 3 else ""
        raise KernelError(f"{source}: a blur kernel must be {wanted}{where}, got shape {tuple(kernel.shape)}")
    if kernel.numel() == 0:
        raise KernelError(f"{source}: the kernel is empty")
    if not torch.isfinite(kernel).all():
        raise KernelError(f"{source}: the kernel holds NaN or infinite values")
    if (kernel < 0).any():
        raise KernelError(
            f"{source}: the kernel has negative entries (min {kernel.min().item():.3g}); a blur kernel "
            "must be non-negative, clip it first (e.g. numpy.clip(k, 0, None))"
        )
    total = kernel.sum()
    if total <= 0:
        raise KernelError(f"{source}: the kernel sums to 0 and cannot be normalised")
    return (kernel / total).to(torch.float32)


def kernel_from_file(path: str | Path, dims: tuple[int, ...] = PLANE_DIMS) -> torch.Tensor:
    """Read a kernel from ``.pt``/``.pth`` (a tensor), ``.npy`` (an array) or a grayscale image.

    :param dims: the kernel dimensionalities accepted (:func:`validate_kernel`).
    :return: float32 tensor of shape ``(kh, kw)`` (or ``(kd, kh, kw)``) normalised to sum 1.
    :raises KernelError: if the file is missing, of an unknown type, or does not hold a valid kernel.
    """
    path = Path(path)
    if not path.is_file():
        raise KernelError(f"kernel file not found: {path}")
    suffix = path.suffix.lower()
    source = f"kernel file {path}"
    try:
        if suffix in (".pt", ".pth"):
            data = _load_tensor_file(path, source)
        elif suffix == ".npy":
            data = torch.from_numpy(_load_npy(path, source))
        elif suffix in KERNEL_FILE_SUFFIXES:
            from sei.io.images import read_image_array

            array = read_image_array(path)
            if array.ndim == 3:
                raise KernelError(f"{source}: a kernel image must be grayscale (one channel), got {array.shape[2]}")
            data = torch.from_numpy(array)
        else:
            raise KernelError(f"{source}: unknown kernel file type {suffix!r}; use one of {', '.join(KERNEL_FILE_SUFFIXES)}")
    except KernelError:
        raise
    except Exception as error:  # unpickling/decoding errors come in many types
        raise KernelError(f"{source}: cannot be read ({error})") from error
    return validate_kernel(data, source, dims)


_NPY_MAGIC = b"\x93NUMPY"


def _load_npy(path: Path, source: str) -> np.ndarray:
    # np.load takes any file without the .npy signature for a pickle, and would say so: name what it is instead
    with open(path, "rb") as file:
        if file.read(len(_NPY_MAGIC)) != _NPY_MAGIC:
            raise KernelError(f"{source}: not a NumPy .npy file (no .npy signature); write it with numpy.save")
    return np.load(path, allow_pickle=False)


def _load_tensor_file(path: Path, source: str) -> torch.Tensor | np.ndarray:
    from sei.core.files import describe_load_failure

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch's own message advises weights_only=False, i.e. running the file's code
        raise KernelError(f"{source}: cannot be read ({describe_load_failure(path, error)}); save the kernel as a "
                          "plain tensor (torch.save(tensor, path)) or a .npy array") from None
    if isinstance(data, dict) and len(data) == 1:
        data = next(iter(data.values()))
    return torch.from_numpy(data) if isinstance(data, np.ndarray) else data


def load_kernel(spec: str | Path | torch.Tensor, dims: tuple[int, ...] = PLANE_DIMS) -> torch.Tensor:
    """A kernel from a name, a file path, or a tensor; always float32 ``(kh, kw)`` summing to 1, or ``(kd, kh, kw)``
    when ``dims`` allows volumes (:data:`VOLUME_DIMS`; the named kernels are 2-D)."""
    if isinstance(spec, torch.Tensor):
        return validate_kernel(spec, dims=dims)
    if is_kernel_path(spec):
        return kernel_from_file(spec, dims)
    return kernel_from_name(spec)


def kernel_dimensionality(spec: str | Path | torch.Tensor) -> int:
    """2 for a kernel that blurs images (every named kernel), 3 for a PSF that blurs volumes (a file or tensor
    holding ``(kd, kh, kw)`` with ``kd > 1``).

    :raises KernelError: like :func:`load_kernel`.
    """
    if isinstance(spec, str) and not is_kernel_path(spec):
        kernel_from_name(spec)
        return 2
    return load_kernel(spec, dims=VOLUME_DIMS).ndim


def is_kernel_path(spec: object) -> bool:
    """Whether ``spec`` names a kernel file (a path, or a string with a kernel file's suffix) rather than a name."""
    return isinstance(spec, Path) or (isinstance(spec, str) and Path(spec).suffix.lower() in KERNEL_FILE_SUFFIXES)


def write_kernel(kernel: torch.Tensor, path: str | Path) -> Path:
    """Write a 2-D or 3-D kernel, checked and normalised, as a float32 ``.npy`` file (what ``--kernel`` reads),
    atomically."""
    from sei.core.files import atomic_write

    path = Path(path)
    if path.suffix.lower() != ".npy":
        raise KernelError(f"kernel files are written as .npy, got {path.name}")
    array = validate_kernel(kernel, dims=VOLUME_DIMS).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda handle: np.save(handle, array, allow_pickle=False))


def save_kernel(kernel: torch.Tensor, path: str | Path, overwrite: bool = False,
                voxel_size: VoxelSize | None = None) -> tuple[Path, Path]:
    """Write a kernel as ``.npy`` (float32, what ``--kernel`` reads) and a PNG preview beside it (scaled to its
    maximum and enlarged so that each kernel pixel is visible; a 3-D PSF shows its brightest plane (xy) beside its
    xz section through the centre, z downwards, both square-rooted).

    :param overwrite: replace files of those names that are already there (otherwise refused, nothing written).
    :param voxel_size: the sampling the PSF was made for, recorded beside it (``psf.json``,
        :func:`sei.io.voxels.write_psf_voxel_size`) so that a stack of other voxels is refused.
    :return: the ``.npy`` and ``.png`` paths.
    :raises OutputExistsError: when any of the files exists and ``overwrite`` is not set.
    """
    from PIL import Image

    from sei.core.files import atomic_write
    from sei.io.outputs import check_replaceable
    from sei.io.voxels import psf_sampling_file, write_psf_voxel_size

    path = Path(path)
    if path.suffix.lower() != ".npy":
        raise KernelError(f"kernel files are written as .npy, got {path.name}")
    record = psf_sampling_file(path)
    check_replaceable([path, path.with_suffix(".png"), record], overwrite)
    path = write_kernel(kernel, path)
    if voxel_size is not None:
        write_psf_voxel_size(path, voxel_size)
    elif record.is_file():  # replaced (overwrite): an earlier PSF's record would describe this one
        record.unlink()
    array = np.load(path)
    if array.ndim == 3:  # xy | gap | xz, square-rooted so that the faint out-of-focus cone shows
        centre = array.shape[0] // 2
        views = [array[centre], np.zeros((array.shape[1], 1), array.dtype), array[:, array.shape[1] // 2, :]]
        height = max(view.shape[0] for view in views)
        array = np.sqrt(np.concatenate([np.pad(view, ((0, height - view.shape[0]), (0, 0))) for view in views],
                                       axis=1))
    preview = np.round(255 * array / array.max()).astype(np.uint8)
    zoom = max(1, 256 // max(array.shape))
    png = path.with_suffix(".png")
    image = Image.fromarray(preview).resize((array.shape[1] * zoom, array.shape[0] * zoom), Image.NEAREST)
    atomic_write(png, lambda handle: image.save(handle, format="PNG"))
    return path, png
