"""Reading and writing image files: as float tensors, or as pages in their own dtype.

:func:`read_image` gives a ``(C, H, W)`` float32 tensor (integer data in [0, 1], float data as stored).
:func:`read_image_file` gives the pixels as stored (8/16-bit integers or floats) and reads multi-page TIFF stacks
as a set of 2-D pages; :mod:`sei.io.intensity` maps them to the network's units and back, and
:func:`write_image_file` writes them back in their dtype (a stack as a stack). Reading accepts grayscale, RGB and
RGBA files (PNG, JPEG, TIFF, BMP, GIF, ...).

**Image-size policy.** Every reader checks the pixel count its file's header declares before it decodes anything:
a file may hold at most ``max_pixels`` pixels, all pages together (:data:`MAX_PIXELS` unless the caller says;
``--max-pixels`` on the command line). A larger file is refused with a one-line :class:`~sei.core.errors.ImageError`
naming it, and commands that read folders go on with the other files. The bound keeps a crafted header (a
760-byte PNG declaring 20000 x 20000 pixels) from taking minutes and gigabytes.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from sei.core.defaults import (MAX_PIXELS, STACK_CHUNK_BYTES, STACK_CHUNK_PLANES, STACK_MIN_BLOCKS,
                               STACK_SAMPLE_PLANES)
from sei.core.errors import ImageError
from sei.core.files import atomic_path, atomic_write
from sei.io.intensity import check_dtype, integer_map

__all__ = ["EIGHT_BIT_PILLOW_MODES", "IMAGE_SUFFIXES", "MAX_PIXELS", "check_pixel_count", "holds_8bit_pixels",
           "image_tensor", "ImageFile", "is_image_file", "list_images", "read_image", "read_image_array",
           "read_image_file", "read_image_sample", "read_stack_header", "single_page_array", "skipped_entries", "StackHeader",
           "write_image", "write_image_file", "write_stack_planes"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".ppm", ".pgm", ".gif")

# Pixels one file may hold, all pages together: MAX_PIXELS, 2**28 (imported above from sei.core.defaults, where
# the reasons are; help texts quote it without importing this module).


def check_pixel_count(pixels: int, path: str | Path, max_pixels: int | None = None) -> None:
    """The image-size policy (see the module): refuse a file whose header declares more than ``max_pixels``
    (``None``: :data:`MAX_PIXELS`).

    >>> check_pixel_count(4000 * 3000, "photo.jpg")

    :raises ImageError: naming the file, its size and the way to allow it.
    """
    max_pixels = MAX_PIXELS if max_pixels is None else max_pixels

    def count(n: int) -> str:
        return f"{n / 1e6:.0f} megapixels" if n >= 10**7 else f"{n:,} pixels"

    if pixels > max_pixels:
        raise ImageError(f"{path}: {count(pixels)}, above the limit of {count(max_pixels)} per file "
                         f"(--max-pixels {pixels} to allow it, if this machine has the memory)")


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
    files = sorted(p for p in folder.iterdir() if is_image_file(p) and _is_regular_file(p))
    if not files:
        skipped = skipped_entries(folder)
        raise ImageError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {folder}"
                         + (f"; skipped {', '.join(f'{p.name} ({why})' for p, why in skipped[:3])}" if skipped else ""))
    return files


def _is_regular_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a symlink loop, a name too long
        return False


def skipped_entries(folder: str | Path) -> list[tuple[Path, str]]:
    """The entries of ``folder`` named like images that :func:`list_images` leaves out, each with why (a broken
    link or a symlink loop, a folder), so that a command can name them rather than drop them silently."""
    entries = []
    for path in sorted(Path(folder).iterdir()):
        if not is_image_file(path) or _is_regular_file(path):
            continue
        reason = ("a broken link or a symlink loop" if path.is_symlink() else
                  "a folder" if path.is_dir() else "not a regular file")
        entries.append((path, reason))
    return entries


@dataclass
class ImageFile:
    """An image file's pixels in its own dtype: one page, or the pages of a multi-page TIFF stack.

    :ivar pages: ``(H, W)`` or ``(H, W, C)`` arrays, all of one shape and dtype (uint8, uint16, int8, int16 or
        float), in the file's own units.
    :ivar resolution: TIFF pixels per unit ``(x, y)`` and its unit (``resolutionunit`` tag), when the file says.
    :ivar imagej: ImageJ metadata worth carrying over (``unit``, ``spacing``), when the file is an ImageJ TIFF.
    :ivar stack_axes: what the pages are along, for a TIFF that says (``"Z"`` for a z-stack, ``"TZ"`` for a
        time series of stacks, with :attr:`stack_shape` ``(t, z)``), so that a stack is written back as it was read;
        ``""`` for a plain sequence of pages.
    :ivar stack_shape: the length of each of :attr:`stack_axes` (their product is the number of pages).
    """

    pages: list[np.ndarray]
    resolution: tuple[tuple[float, float], int] | None = None
    imagej: dict[str, Any] = field(default_factory=dict)
    stack_axes: str = ""
    stack_shape: tuple[int, ...] = ()

    @property
    def dtype(self) -> np.dtype:
        return self.pages[0].dtype

    @property
    def is_stack(self) -> bool:
        return len(self.pages) > 1

    @property
    def pages_along_z(self) -> bool:
        """Whether the pages run along z alone (or the file does not say), so that the file can be read as one
        volume; a time series or a stack of channels cannot."""
        return self.stack_axes in ("", "Z")

    def resampled(self, pages: list[np.ndarray], factor: float, volume: bool = False, depth: int | None = None
                  ) -> ImageFile:
        """This file's metadata with other ``pages``, sampled ``factor`` times more finely (:mod:`sei.core.scaling`;
        ``1 / r`` for a measurement decimated by ``r``): an image has ``factor`` times the pixels per unit; a z-stack
        handled as one volume keeps its pixels, and its ImageJ ``spacing`` is divided by ``factor``; its planes are
        ``pages`` (or ``depth``, for planes written as they come: :func:`write_stack_planes`).

        >>> stack = ImageFile([np.zeros((2, 2))] * 12, ((10.0, 10.0), 3), {"spacing": 0.5}, "Z", (12,))
        >>> finer = stack.resampled([np.zeros((2, 2))] * 24, 2, volume=True)
        >>> finer.resolution, finer.imagej, finer.stack_shape
        (((10.0, 10.0), 3), {'spacing': 0.25}, (24,))
        """
        if factor == 1:
            return dataclasses.replace(self, pages=pages)
        if volume:
            imagej = dict(self.imagej)
            if "spacing" in imagej:
                imagej["spacing"] = float(imagej["spacing"]) / factor
            along_z = self.stack_axes == "Z" and bool(self.stack_shape)
            planes = len(pages) if depth is None else depth
            return ImageFile(pages, self.resolution, imagej, self.stack_axes if along_z else "",
                             (planes,) if along_z else ())
        resolution = None
        if self.resolution is not None:
            (x, y), unit = self.resolution
            resolution = ((x * factor, y * factor), unit)
        return dataclasses.replace(self, pages=pages, resolution=resolution)

    def volume(self, to_network: Callable[[np.ndarray], np.ndarray], path: str | Path, verb: str) -> torch.Tensor:
        """The pages as one ``(C, D, H, W)`` volume through ``to_network`` (the file's intensity map), for an
        operator whose PSF is 3-D; ``verb`` says what the caller does with it, for the error.

        :raises ImageError: for pages that run along anything but z, or a file of one page.
        """
        self.check_z_stack(path)
        if len(self.pages) < 2:
            raise ImageError(f"{path}: one image, and this operator's PSF is 3-D: {verb} z-stacks (multi-page "
                             "TIFF) with it, or single images with a 2-D PSF")
        return torch.stack([image_tensor(to_network(page), None, path) for page in self.pages], dim=1)

    def check_z_stack(self, path: str | Path) -> None:
        """Refuse a stack whose pages run along anything but z (a time series, channels), for callers that read
        one file as one volume.

        :raises ImageError: naming the file and its axes.
        """
        if not self.pages_along_z:
            raise ImageError(f"{path}: its pages run along {self.stack_axes} {self.stack_shape}, not along z alone: "
                             "save one z-stack per file")


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


def _png_size(path: Path) -> int:
    with open(path, "rb") as file:
        header = file.read(24)
    return int.from_bytes(header[16:20], "big") * int.from_bytes(header[20:24], "big")


def _read_png16(path: Path, max_pixels: int | None) -> np.ndarray:
    # Pillow decodes 16-bit colour PNGs to 8 bits (and gray ones to int32); pypng keeps every bit and the dtype.
    import png

    check_pixel_count(_png_size(path), path, max_pixels)  # pypng has no bound of its own
    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    rows = [np.asarray(row, dtype=np.uint16) for row in rows]
    if len(rows) != height:
        raise ImageError(f"cannot read image {path}: {len(rows)} of its {height} rows of pixels are there "
                         "(a truncated file, or a header alone)")
    array = np.vstack(rows).reshape(height, width, info["planes"])
    return array[:, :, 0] if info["planes"] == 1 else array


def _series_pages(array: np.ndarray, axes: str) -> list[np.ndarray]:
    """The 2-D images of a TIFF series: samples (``S``) last, every axis but ``Y``, ``X``, ``S`` read as pages."""
    if "S" in axes:
        array = np.moveaxis(array, axes.index("S"), -1)
        axes = axes.replace("S", "") + "S"
    image_dims = 3 if axes.endswith("S") else 2
    pages = array.reshape(-1, *array.shape[array.ndim - image_dims:])
    return [_gray(page) for page in pages]


# the axes a stack of 2-D images may run along and be written back with (ImageJ's order)
_STACK_AXES = "TZC"


def _stack_layout(series: list[Any]) -> tuple[str, tuple[int, ...]]:
    """``(axes, shape)`` of the pages of a file with one series along time, depth or channels ("" otherwise)."""
    if len(series) != 1:
        return "", ()
    axes, shape = series[0].axes, series[0].shape
    leading = [(axis, length) for axis, length in zip(axes, shape) if axis not in "YXS"]
    if not leading or any(axis not in _STACK_AXES for axis, _ in leading):
        return "", ()
    return "".join(axis for axis, _ in leading), tuple(int(length) for _, length in leading)


def _read_tiff(path: Path, max_pixels: int | None) -> ImageFile:
    # tifffile keeps 16-bit and floating-point colour, which Pillow reduces to 8 bits, and reads every page.
    import tifffile

    pages: list[np.ndarray] = []
    with tifffile.TiffFile(path) as tiff:
        series = list(tiff.series)
        check_pixel_count(sum(int(np.prod([n for axis, n in zip(s.axes, s.shape) if axis != "S"], dtype=np.int64))
                              for s in series), path, max_pixels)
        for one in series:
            pages += _series_pages(np.asarray(one.asarray()), one.axes)
        metadata = _tiff_metadata(tiff, series)
    shapes = sorted({page.shape for page in pages})
    if len(shapes) > 1:
        raise ImageError(f"{path}: a stack whose pages differ in shape ({', '.join(map(str, shapes[:4]))}); "
                         "the pages of a stack must all have one shape: save them as separate files")
    if len(pages) < 2:
        metadata = dataclasses.replace(metadata, stack_axes="", stack_shape=())
    return dataclasses.replace(metadata, pages=pages)


def _tiff_metadata(tiff: Any, series: list[Any]) -> ImageFile:
    """What an open TIFF says besides its pixels (resolution, ImageJ's unit and spacing, the stack's layout), as an
    :class:`ImageFile` with no pages."""
    first = tiff.pages[0]
    resolution = (tuple(float(v) for v in first.resolution), int(first.resolutionunit)) \
        if "XResolution" in first.tags else None
    imagej = {k: v for k, v in (tiff.imagej_metadata or {}).items() if k in ("unit", "spacing")}
    return ImageFile([], resolution, imagej, *_stack_layout(series))


def _gray(page: np.ndarray) -> np.ndarray:
    """An ``(H, W, 1)`` page as ``(H, W)``; other pages as they are."""
    return page[:, :, 0] if page.ndim == 3 and page.shape[2] == 1 else page


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


@contextlib.contextmanager
def _pillow_unbounded() -> Iterator[None]:
    # Pillow's own bound is a process-wide setting; sei applies its policy (check_pixel_count) from the header
    # instead, so the bound is lifted only while one header is opened and put back at once.
    from PIL import Image

    bound = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = bound


def read_image_file(path: str | Path, max_pixels: int | None = None) -> ImageFile:
    """Read an image file's pages in its own dtype and units (no scaling): see :class:`ImageFile`.

    Multi-page TIFFs (stacks, ImageJ hyperstacks) give one page per 2-D image; other files one page.

    :param max_pixels: the most pixels the file may hold, all pages together (the module's image-size policy;
        ``None``: :data:`MAX_PIXELS`).
    :raises ImageError: if the file is missing or cannot be decoded, declares more than ``max_pixels`` pixels,
        holds NaN or infinite values, an unsupported pixel type, pages of different shapes, or several frames
        (an animated GIF, PNG or WebP).
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not _is_regular_file(path):
        raise ImageError(f"image file not found: {path}")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            file = _read_tiff(path, max_pixels)
            file.pages = [_check_pixels(page, path) for page in file.pages]
            return file
        if path.suffix.lower() == ".png" and _png_bit_depth(path) == 16:
            return ImageFile([_check_pixels(_read_png16(path, max_pixels), path)])
    except ImageError:
        raise
    except Exception as error:  # decoder errors come in many types
        raise ImageError(f"cannot read image {path}: {error}") from error
    try:
        with _pillow_unbounded():
            image = Image.open(path)
        with image:
            check_pixel_count(image.size[0] * image.size[1], path, max_pixels)
            frames = getattr(image, "n_frames", 1)
            if frames > 1:  # reading the first alone would lose the others without a word
                raise ImageError(f"{path}: {frames} frames (an animation); sei reads one image per file: save the "
                                 "frames as separate files, or as a multi-page TIFF stack")
            image.load()
            if image.mode == "P":  # palette images: expand to their colours
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            elif image.mode in ("LA", "PA"):
                image = image.convert("RGBA")
            elif image.mode == "CMYK" or image.mode == "YCbCr":
                image = image.convert("RGB")
            array = np.asarray(image)
    except ImageError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
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
    (8-bit), or TIFF (any supported dtype, several pages as a stack, with the resolution, ImageJ's unit and spacing,
    and the stack's axes given), creating parent folders.

    The file is written under a temporary name and renamed (:func:`sei.core.files.atomic_write`): a full disk or a
    killed process leaves the previous file, or none, never a truncated one under the final name.

    :param file: ``(H, W)`` or ``(H, W, C)`` pages with ``C`` in 1, 3, 4.
    :return: the path written.
    :raises ImageError: for a layout or dtype the file format cannot hold (floats or stacks need TIFF, 16 bits
        PNG or TIFF).
    :raises StorageError: when the file cannot be written (naming it).
    """
    path = Path(path)
    pages = [_gray(page) for page in file.pages]
    if not pages or any(p.ndim not in (2, 3) or (p.ndim == 3 and p.shape[2] not in (3, 4)) for p in pages):
        raise ImageError(f"{path.name}: expected (H, W) or (H, W, 3|4) pages, got "
                         f"{[tuple(p.shape) for p in pages[:3]]}")
    dtype = pages[0].dtype
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        with atomic_path(path) as temporary:  # tifffile writes to a file name
            _write_tiff(temporary, pages, file)
        return path
    if len(pages) > 1:
        raise ImageError(f"{path.name}: a stack of {len(pages)} pages needs a .tif file name")
    if dtype.name not in ("uint8", "uint16"):
        raise ImageError(f"{path.name}: {dtype.name} data need a .tif file name (PNG and the others hold integers)")
    array = pages[0]
    if dtype.name == "uint16" and suffix != ".png":
        raise ImageError(f"16-bit images need a .png or .tif file name, got {path.name}")
    if dtype.name == "uint16" and array.ndim == 3:
        return atomic_write(path, lambda handle: _write_png16(handle, array))
    return atomic_write(path, lambda handle: _write_pillow(handle, array, suffix))


def _write_pillow(handle: IO[bytes], array: np.ndarray, suffix: str) -> None:
    from PIL import Image

    image_format = Image.registered_extensions().get(suffix)
    if image_format is None:
        raise ImageError(f"unknown image file type {suffix!r}; use one of {', '.join(IMAGE_SUFFIXES)}")
    Image.fromarray(array).save(handle, format=image_format)


def _write_tiff(target: Path, pages: list[np.ndarray], file: ImageFile) -> None:
    import tifffile

    shape, options = _tiff_layout(file, len(pages), pages[0].shape, pages[0].dtype)
    data = np.stack(pages) if len(pages) > 1 else pages[0]
    tifffile.imwrite(target, data.reshape(shape), **options)


def _tiff_layout(file: ImageFile, count: int, page_shape: tuple[int, ...], dtype: np.dtype
                 ) -> tuple[tuple[int, ...], dict[str, Any]]:
    """The array shape and ``tifffile.imwrite`` options of ``count`` pages with ``file``'s metadata."""
    colour = len(page_shape) == 3
    options: dict[str, Any] = {"photometric": "rgb" if colour else "minisblack"}
    if file.resolution is not None:
        options["resolution"], options["resolutionunit"] = file.resolution
    shape = (count, *page_shape) if count > 1 else tuple(page_shape)
    metadata: dict[str, Any] = {}
    if count > 1 and file.stack_axes and int(np.prod(file.stack_shape)) == count:
        # a z-stack goes back as a z-stack (ImageJ would otherwise read a 3-D array as channels)
        shape = (*file.stack_shape, *page_shape)
        metadata["axes"] = file.stack_axes + ("YXS" if colour else "YX")
    if bool(file.imagej) and not colour and np.dtype(dtype).name in ("uint8", "uint16", "float32"):
        options["imagej"] = True
        metadata.update(file.imagej)
    if metadata:
        options["metadata"] = metadata
    return shape, options


@dataclass(frozen=True)
class StackHeader:
    """A gray TIFF z-stack as its header describes it, its planes read on demand: for stacks too large to hold.

    :ivar path: the file.
    :ivar shape: ``(D, H, W)``.
    :ivar dtype: the pixels' dtype.
    :ivar metadata: the file's resolution, ImageJ metadata and stack layout, as :class:`ImageFile` with no pages.
    """

    path: Path
    shape: tuple[int, int, int]
    dtype: np.dtype
    metadata: ImageFile

    def too_large_to_hold(self, chunk_bytes: int | None = None) -> bool:
        """Whether its float32 copy would take more than ``chunk_bytes`` (:data:`STACK_CHUNK_BYTES`): then it is
        restored a chunk of planes at a time, and its intensity map and noise level come from
        :data:`STACK_SAMPLE_PLANES` planes."""
        return int(np.prod(self.shape, dtype=np.int64)) * 4 > (STACK_CHUNK_BYTES if chunk_bytes is None else chunk_bytes)

    def read_planes(self, start: int, stop: int) -> np.ndarray:
        """Planes ``[start, stop)``, ``(n, H, W)`` in the file's dtype (checked as :func:`read_image_file` checks).

        :raises ImageError: for a file that no longer reads.
        """
        import tifffile

        try:
            with tifffile.TiffFile(self.path) as tiff:
                planes = np.asarray(tiff.asarray(key=range(start, stop), series=0))
        except Exception as error:  # decoder errors come in many types
            raise ImageError(f"cannot read planes {start} to {stop - 1} of {self.path}: {error}") from error
        return _check_pixels(planes.reshape(stop - start, *self.shape[1:]), self.path)

    def blocks(self, chunk_bytes: int | None = None, depth: int = STACK_CHUNK_PLANES
               ) -> list[tuple[tuple[int, int, int], list[np.ndarray]]]:
        """Sub-volumes spread evenly over the stack whose float32 copies take at most ``chunk_bytes`` together
        (:data:`STACK_CHUNK_BYTES`): for training on a stack too large to hold. Each is ``depth`` planes deep (all of
        a thinner stack), of whole planes when the budget allows and otherwise of squares of them, small enough
        for at least :data:`STACK_MIN_BLOCKS` blocks;
        returned as ``((z, y, x) of its first voxel, its planes in the file's dtype)``, read a plane at a time.

        >>> StackHeader.block_grid((100, 64, 64), 48 * 64 * 64 * 2, 48)  # two slabs of whole planes
        [(0, 0, 0, 48, 64, 64), (52, 0, 0, 48, 64, 64)]

        :raises ImageError: for a file that no longer reads.
        """
        import tifffile

        budget = (STACK_CHUNK_BYTES if chunk_bytes is None else chunk_bytes) // 4
        grid = self.block_grid(self.shape, budget, depth)
        height, width = self.shape[1:]
        try:
            with tifffile.TiffFile(self.path) as tiff:
                found = [((z, y, x), [_check_pixels(np.asarray(tiff.asarray(key=i, series=0)).reshape(height, width)
                                                    [y:y + h, x:x + w], self.path) for i in range(z, z + d)])
                         for z, y, x, d, h, w in grid]
        except ImageError:
            raise
        except Exception as error:  # decoder errors come in many types
            raise ImageError(f"cannot read {self.path}: {error}") from error
        return found

    @staticmethod
    def block_grid(shape: tuple[int, int, int], voxels: int, depth: int) -> list[tuple[int, int, int, int, int, int]]:
        """``(z, y, x, d, h, w)`` of the blocks :meth:`blocks` reads from a ``(D, H, W)`` stack, ``voxels`` of them
        together at most (at least one block)."""
        planes, height, width = shape
        d = min(planes, depth)
        if d * height * width <= voxels:
            h, w = height, width
        else:  # squares of the planes, small enough that several spread over the stack
            side = max(1, int((voxels / (d * STACK_MIN_BLOCKS)) ** 0.5))
            h, w = min(height, side), min(width, side)
        starts = [np.linspace(0, n - size, -(-n // size)).round().astype(int)  # as few as cover the axis
                  for n, size in ((planes, d), (height, h), (width, w))]
        positions = [(int(z), int(y), int(x)) for z in starts[0] for y in starts[1] for x in starts[2]]
        count = min(len(positions), max(1, voxels // (d * h * w)))
        chosen = np.unique(np.linspace(0, len(positions) - 1, count).round().astype(int))
        return [(*positions[i], d, h, w) for i in chosen]

    def sample(self, count: int) -> ImageFile:
        """``count`` planes spread evenly over the stack (all of them when it has no more), as an :class:`ImageFile`
        with the stack's metadata."""
        indices = np.unique(np.linspace(0, self.shape[0] - 1, min(count, self.shape[0])).round().astype(int))
        return dataclasses.replace(self.metadata, pages=[self.read_planes(i, i + 1)[0] for i in indices])


def read_stack_header(path: str | Path, max_pixels: int | None = None) -> StackHeader | None:
    """The header of a gray z-stack TIFF (one series of 2-D pages along z); ``None`` for any other file.

    :raises ImageError: as :func:`read_image_file`, for a stack of more than ``max_pixels`` pixels.
    """
    import tifffile

    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff") or not _is_regular_file(path):
        return None
    try:
        with tifffile.TiffFile(path) as tiff:
            series = list(tiff.series)
            if len(series) != 1 or series[0].axes[-2:] != "YX" or len(series[0].shape) < 3:
                return None
            metadata = _tiff_metadata(tiff, series)
            if metadata.stack_axes not in ("", "Z") or any(axis not in "ZIQ" for axis in series[0].axes[:-2]):
                return None
            height, width = (int(n) for n in series[0].shape[-2:])
            depth = int(np.prod(series[0].shape[:-2]))
            dtype = np.dtype(series[0].dtype)
    except Exception as error:  # decoder errors come in many types
        raise ImageError(f"cannot read image {path}: {error}") from error
    check_pixel_count(depth * height * width, path, max_pixels)
    return StackHeader(path, (depth, height, width), dtype, metadata)


def read_image_sample(path: str | Path, max_pixels: int | None = None) -> ImageFile:
    """The file as :func:`read_image_file` reads it, but for a z-stack too large to hold
    (:meth:`StackHeader.too_large_to_hold`): :data:`STACK_SAMPLE_PLANES` of its planes, spread over it. For what is
    estimated from a file (its intensity map, its noise level) rather than restored."""
    header = read_stack_header(path, max_pixels)
    if header is not None and header.too_large_to_hold():
        return header.sample(STACK_SAMPLE_PLANES)
    return read_image_file(path, max_pixels)


def write_stack_planes(path: str | Path, planes: Iterable[np.ndarray], depth: int, metadata: ImageFile,
                       dtype: np.dtype) -> Path:
    """Write a z-stack plane by plane as they come (``planes``: ``depth`` arrays ``(H, W)`` in ``dtype``) with
    ``metadata``'s resolution, ImageJ metadata and layout (:attr:`StackHeader.metadata`, or its
    :meth:`ImageFile.resampled`), atomically.

    :raises StorageError: when the file cannot be written (naming it).
    """
    import tifffile

    path = Path(path)
    rest = iter(planes)
    page = _gray(np.asarray(next(rest), dtype=dtype))
    shape, options = _tiff_layout(metadata, depth, page.shape, dtype)

    def pages() -> Iterator[np.ndarray]:
        yield page
        for plane in rest:
            yield _gray(np.asarray(plane, dtype=dtype))

    with atomic_path(path) as temporary:
        tifffile.imwrite(temporary, pages(), shape=shape, dtype=dtype, **options)
    return path


def _write_png16(handle: IO[bytes], array: np.ndarray) -> None:
    # Pillow cannot write 16-bit colour PNGs; pypng can.
    import png

    height, width, planes = array.shape
    writer = png.Writer(width, height, greyscale=False, alpha=planes == 4, bitdepth=16)
    writer.write(handle, array.reshape(height, width * planes))
