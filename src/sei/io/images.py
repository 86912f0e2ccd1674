"""Reading and writing image files: as float tensors, or as pages in their own dtype.

:func:`read_image` gives a ``(C, H, W)`` float32 tensor (integer data in [0, 1], float data as stored).
:func:`read_image_file` gives the pixels as stored (8/16-bit integers or floats) and reads multi-page TIFF stacks
as a set of 2-D pages; :mod:`sei.io.intensity` maps them to the network's units and back, and
:func:`write_image_file` writes them back in their dtype (a stack as a stack). Reading accepts grayscale, RGB and
RGBA files (PNG, JPEG, TIFF, BMP, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sei.core.errors import ImageError
from sei.io.intensity import check_dtype, integer_map

__all__ = ["EIGHT_BIT_PILLOW_MODES", "IMAGE_SUFFIXES", "holds_8bit_pixels", "image_tensor", "ImageFile",
           "is_image_file", "list_images", "read_image", "read_image_array", "read_image_file", "single_page_array",
           "write_image", "write_image_file"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".ppm", ".pgm")


def is_image_file(path: str | Path) -> bool:
    """Whether ``path`` has one of the image suffixes :func:`read_image` understands."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name.

    :raises ImageError: if ``folder`` is not a directory or holds no image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{folder} is not a directory")
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))
    if not files:
        raise ImageError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files


@dataclass
class ImageFile:
    """An image file's pixels in its own dtype: one page, or the pages of a multi-page TIFF stack.

    :ivar pages: ``(H, W)`` or ``(H, W, C)`` arrays, all of one shape and dtype (uint8, uint16, int8, int16 or
        float), in the file's own units.
    :ivar resolution: TIFF pixels per unit ``(x, y)`` and its unit (``resolutionunit`` tag), when the file says.
    :ivar imagej: ImageJ metadata worth carrying over (``unit``, ``spacing``), when the file is an ImageJ TIFF.
    """

    pages: list[np.ndarray]
    resolution: tuple[tuple[float, float], int] | None = None
    imagej: dict[str, Any] = field(default_factory=dict)

    @property
    def dtype(self) -> np.dtype:
        return self.pages[0].dtype

    @property
    def is_stack(self) -> bool:
        return len(self.pages) > 1


def _check_pixels(array: np.ndarray, path: Path, pillow: bool = False) -> np.ndarray:
    """``array`` in a supported dtype (bool as uint8 0/255), with finite values.

    :param pillow: the array is Pillow's decoding, whose 32-bit 'I' mode holds 8- and 16-bit PGMs and the like.
    """
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * np.uint8(255)
    if pillow and array.dtype in (np.int32, np.int64, np.uint32):
        if array.min(initial=0) >= 0 and array.max(initial=0) <= 65535:
            return array.astype(np.uint8 if array.max(initial=0) <= 255 else np.uint16)
    try:
        check_dtype(array.dtype)
    except ImageError as error:
        raise ImageError(f"{path}: {error}") from None
    if np.issubdtype(array.dtype, np.floating):
        # NaN or infinite pixels (float TIFFs can hold them) would poison every loss and weight they touch
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        if bad:
            raise ImageError(f"{path}: {bad} pixel(s) are NaN or infinite; images must hold finite values")
    return array


def _png_bit_depth(path: Path) -> int:
    with open(path, "rb") as file:
        header = file.read(26)
    # signature (8), IHDR length and type (8), width and height (8), then the bit depth
    return header[24] if len(header) == 26 and header[:8] == b"\x89PNG\r\n\x1a\n" else 0


def _read_png16(path: Path) -> np.ndarray:
    # Pillow decodes 16-bit colour PNGs to 8 bits (and gray ones to int32); pypng keeps every bit and the dtype.
    import png

    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    array = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows]).reshape(height, width, info["planes"])
    return array[:, :, 0] if info["planes"] == 1 else array


def _series_pages(array: np.ndarray, axes: str) -> list[np.ndarray]:
    """The 2-D images of a TIFF series: samples (``S``) last, every axis but ``Y``, ``X``, ``S`` read as pages."""
    if "S" in axes:
        array = np.moveaxis(array, axes.index("S"), -1)
        axes = axes.replace("S", "") + "S"
    image_dims = 3 if axes.endswith("S") else 2
    pages = array.reshape(-1, *array.shape[array.ndim - image_dims:])
    return [page[:, :, 0] if page.ndim == 3 and page.shape[2] == 1 else page for page in pages]


def _read_tiff(path: Path) -> ImageFile:
    # tifffile keeps 16-bit and floating-point colour, which Pillow reduces to 8 bits, and reads every page.
    import tifffile

    pages: list[np.ndarray] = []
    with tifffile.TiffFile(path) as tiff:
        for series in tiff.series:
            pages += _series_pages(np.asarray(series.asarray()), series.axes)
        first = tiff.pages[0]
        resolution = (tuple(float(v) for v in first.resolution), int(first.resolutionunit)) \
            if "XResolution" in first.tags else None
        imagej = {k: v for k, v in (tiff.imagej_metadata or {}).items() if k in ("unit", "spacing")}
    shapes = sorted({page.shape for page in pages})
    if len(shapes) > 1:
        raise ImageError(f"{path}: a stack whose pages differ in shape ({', '.join(map(str, shapes[:4]))}); "
                         "the pages of a stack must all have one shape: save them as separate files")
    return ImageFile(pages, resolution, imagej)


EIGHT_BIT_PILLOW_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr")


def holds_8bit_pixels(path: str | Path) -> bool:
    """Whether the file's header says that its pixels are 8-bit integers (or fewer bits); False when it says
    otherwise (16-bit, float) or cannot be read. Reads headers only."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tiff:
                return all(np.dtype(series.dtype) in (np.uint8, np.bool_) for series in tiff.series)
        if path.suffix.lower() == ".png":
            return 0 < _png_bit_depth(path) <= 8
        from PIL import Image

        with Image.open(path) as image:
            return image.mode in EIGHT_BIT_PILLOW_MODES
    except Exception:  # an unreadable file is reported when it is read
        return False


def read_image_file(path: str | Path) -> ImageFile:
    """Read an image file's pages in its own dtype and units (no scaling): see :class:`ImageFile`.

    Multi-page TIFFs (stacks, ImageJ hyperstacks) give one page per 2-D image; other files one page.

    :raises ImageError: if the file is missing or cannot be decoded, holds NaN or infinite values, an unsupported
        pixel type, or pages of different shapes.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image file not found: {path}")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            file = _read_tiff(path)
            file.pages = [_check_pixels(page, path) for page in file.pages]
            return file
        if path.suffix.lower() == ".png" and _png_bit_depth(path) == 16:
            return ImageFile([_check_pixels(_read_png16(path), path)])
    except ImageError:
        raise
    except Exception as error:  # decoder errors come in many types
        raise ImageError(f"cannot read image {path}: {error}") from error
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode == "P":  # palette images: expand to their colours
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            elif image.mode in ("LA", "PA"):
                image = image.convert("RGBA")
            elif image.mode == "CMYK" or image.mode == "YCbCr":
                image = image.convert("RGB")
            array = np.asarray(image)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ImageError(f"cannot read image {path}: {error}") from error
    return ImageFile([_check_pixels(array, path, pillow=True)])


def read_image_array(path: str | Path) -> np.ndarray:
    """Read a one-page image file as a float32 array of shape ``(H, W)`` or ``(H, W, C)``: integer data mapped
    from their dtype's full range to [0, 1] (:func:`sei.io.intensity.integer_map`), float data as stored.

    :raises ImageError: if the file is missing, cannot be decoded, or is a stack of pages.
    """
    return single_page_array(read_image_file(path), path)


def single_page_array(file: ImageFile, path: str | Path = "image") -> np.ndarray:
    """The one page of ``file`` as :func:`read_image_array` returns it (integers to [0, 1], floats as stored).

    :raises ImageError: if the file is a stack of pages.
    """
    if file.is_stack:
        raise ImageError(f"{path}: a stack of {len(file.pages)} pages where one image is expected; "
                         "save one 2-D image per file")
    page = file.pages[0]
    return integer_map(page.dtype).to_network(page) if np.issubdtype(page.dtype, np.integer) else page.astype(np.float32)


def image_tensor(array: np.ndarray, channels: int | None = 3, path: str | Path = "image") -> torch.Tensor:
    """A ``(H, W)`` or ``(H, W, C)`` array as a ``(C, H, W)`` float32 tensor in the channels asked for.

    :param channels: 3 to get RGB (grayscale is repeated, an alpha channel dropped), 1 to get
        grayscale (RGB converted to luma), ``None`` to keep the array's own channels.
    :raises ImageError: for an unsupported layout.
    """
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ImageError(f"{path}: unsupported image layout {array.shape}")
    tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32))
    if channels is None:
        return tensor
    if tensor.shape[0] == 4:  # drop alpha: restoration works on the colour planes
        tensor = tensor[:3]
    if channels == 3:
        return tensor.expand(3, -1, -1).clone() if tensor.shape[0] == 1 else tensor
    if channels == 1:
        if tensor.shape[0] == 1:
            return tensor
        weights = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
        return (tensor * weights).sum(0, keepdim=True)
    raise ValueError(f"channels must be 1, 3 or None, got {channels}")


def read_image(path: str | Path, channels: int | None = 3) -> torch.Tensor:
    """Read a one-page image file as a ``(C, H, W)`` float32 tensor: integer data in [0, 1] (their dtype's full
    range), float data as stored (:func:`read_image_array`).

    :param path: image file.
    :param channels: see :func:`image_tensor`.
    :raises ImageError: if the file is missing, unreadable, a stack, or has an unsupported layout.
    """
    return image_tensor(read_image_array(path), channels, path)


def write_image(path: str | Path, image: torch.Tensor, bits: int = 8) -> Path:
    """Write a ``(C, H, W)`` tensor in [0, 1] (clamped) as an 8- or 16-bit image file, creating parent folders.

    :param bits: 8 or 16 (16-bit needs PNG or TIFF).
    :return: the path written.
    """
    if image.ndim != 3 or image.shape[0] not in (1, 3, 4):
        raise ImageError(f"expected a (C, H, W) tensor with 1, 3 or 4 channels, got {tuple(image.shape)}")
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    array = image.detach().float().cpu().numpy().transpose(1, 2, 0)
    return write_image_file(path, ImageFile([integer_map(f"uint{bits}").from_network(array)]))


def write_image_file(path: str | Path, file: ImageFile) -> Path:
    """Write pages in their own dtype: one page as PNG (8/16-bit integers) or any image format Pillow writes
    (8-bit), or TIFF (any supported dtype, several pages as a stack, with the resolution and ImageJ unit and
    spacing given), creating parent folders.

    :param file: ``(H, W)`` or ``(H, W, C)`` pages with ``C`` in 1, 3, 4.
    :return: the path written.
    :raises ImageError: for a layout or dtype the file format cannot hold (floats or stacks need TIFF, 16 bits
        PNG or TIFF).
    """
    from PIL import Image

    path = Path(path)
    pages = [page[:, :, 0] if page.ndim == 3 and page.shape[2] == 1 else page for page in file.pages]
    if not pages or any(p.ndim not in (2, 3) or (p.ndim == 3 and p.shape[2] not in (3, 4)) for p in pages):
        raise ImageError(f"{path.name}: expected (H, W) or (H, W, 3|4) pages, got "
                         f"{[tuple(p.shape) for p in pages[:3]]}")
    dtype = pages[0].dtype
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix in (".tif", ".tiff"):
        import tifffile

        colour = pages[0].ndim == 3
        options: dict[str, Any] = {"photometric": "rgb" if colour else "minisblack"}
        if file.resolution is not None:
            options["resolution"], options["resolutionunit"] = file.resolution
        imagej = bool(file.imagej) and not colour and dtype.name in ("uint8", "uint16", "float32")
        if imagej:
            options.update(imagej=True, metadata=dict(file.imagej))
        data = np.stack(pages) if len(pages) > 1 else pages[0]
        tifffile.imwrite(path, data, **options)
        return path
    if len(pages) > 1:
        raise ImageError(f"{path.name}: a stack of {len(pages)} pages needs a .tif file name")
    if dtype.name not in ("uint8", "uint16"):
        raise ImageError(f"{path.name}: {dtype.name} data need a .tif file name (PNG and the others hold integers)")
    array = pages[0]
    if dtype.name == "uint8":
        Image.fromarray(array).save(path)
    elif suffix != ".png":
        raise ImageError(f"16-bit images need a .png or .tif file name, got {path.name}")
    elif array.ndim == 2:
        Image.fromarray(array).save(path)
    else:
        _write_png16(path, array)
    return path


def _write_png16(path: Path, array: np.ndarray) -> None:
    # Pillow cannot write 16-bit colour PNGs; pypng can.
    import png

    height, width, planes = array.shape
    writer = png.Writer(width, height, greyscale=False, alpha=planes == 4, bitdepth=16)
    with open(path, "wb") as file:
        writer.write(file, array.reshape(height, width * planes))
