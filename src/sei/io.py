"""Reading and writing images as float tensors in [0, 1].

Images are ``(C, H, W)`` float32 tensors with values in [0, 1]. Reading accepts 8-bit and 16-bit
grayscale, RGB and RGBA files (PNG, JPEG, TIFF, BMP, ...) and floating-point TIFFs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sei.errors import ImageError

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


def _to_float(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if array.dtype in (np.int32, np.int64):  # PIL's 'I' mode holds 16-bit PNGs
        return array.astype(np.float32) / (65535.0 if array.max(initial=0) > 255 else 255.0)
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.floating):
        # NaN or infinite pixels (float TIFFs can hold them) would poison every loss and weight they touch
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        if bad:
            raise ImageError(f"{path}: {bad} pixel(s) are NaN or infinite; images must hold finite values")
        return array.astype(np.float32)
    raise ImageError(f"{path}: unsupported pixel type {array.dtype}")


def _png_is_16bit_colour(path: Path) -> bool:
    with open(path, "rb") as file:
        header = file.read(26)
    # signature (8), IHDR length and type (8), width and height (8), then bit depth and colour type
    return len(header) == 26 and header[:8] == b"\x89PNG\r\n\x1a\n" and header[24] == 16 and header[25] in (2, 6)


def _read_png16(path: Path) -> np.ndarray:
    # Pillow decodes 16-bit colour PNGs to 8 bits; pypng keeps every bit.
    import png

    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    return np.vstack([np.asarray(row, dtype=np.uint16) for row in rows]).reshape(height, width, info["planes"])


def _read_tiff(path: Path) -> np.ndarray:
    # tifffile keeps 16-bit and floating-point colour, which Pillow reduces to 8 bits.
    import tifffile

    array = np.asarray(tifffile.imread(path))
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[2] not in (1, 3, 4):
        array = array.transpose(1, 2, 0)  # planar (C, H, W) layout
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3):
        raise ImageError(f"{path}: image stacks and volumes are not supported (shape {array.shape}); "
                         "save one 2-D image per file")
    return array


def read_image_array(path: str | Path) -> np.ndarray:
    """Read an image file as a float32 array of shape ``(H, W)`` or ``(H, W, C)``, values scaled to [0, 1].

    :raises ImageError: if the file is missing or cannot be decoded.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image file not found: {path}")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            return _to_float(_read_tiff(path), path)
        if path.suffix.lower() == ".png" and _png_is_16bit_colour(path):
            return _to_float(_read_png16(path), path)
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
    return _to_float(array, path)


def read_image(path: str | Path, channels: int | None = 3) -> torch.Tensor:
    """Read an image file as a ``(C, H, W)`` float32 tensor in [0, 1].

    :param path: image file.
    :param channels: 3 to get RGB (grayscale is repeated, an alpha channel dropped), 1 to get
        grayscale (RGB converted to luma), ``None`` to keep the file's own channels.
    :raises ImageError: if the file is missing, unreadable, or has an unsupported layout.
    """
    array = read_image_array(path)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ImageError(f"{path}: unsupported image layout {array.shape}")
    tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
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


def write_image(path: str | Path, image: torch.Tensor, bits: int = 8) -> Path:
    """Write a ``(C, H, W)`` tensor in [0, 1] (clamped) as an image file, creating parent folders.

    :param bits: 8 or 16 (16-bit needs PNG or TIFF).
    :return: the path written.
    """
    from PIL import Image

    path = Path(path)
    if image.ndim != 3 or image.shape[0] not in (1, 3, 4):
        raise ImageError(f"expected a (C, H, W) tensor with 1, 3 or 4 channels, got {tuple(image.shape)}")
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    array = image.detach().float().clamp(0, 1).cpu().numpy().transpose(1, 2, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    if bits == 8:
        array = np.round(array * 255).astype(np.uint8)
        Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array).save(path)
        return path
    if path.suffix.lower() not in (".png", ".tif", ".tiff"):
        raise ImageError(f"16-bit images need a .png or .tif file name, got {path.name}")
    array = np.round(array * 65535).astype(np.uint16)
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        tifffile.imwrite(path, array[:, :, 0] if array.shape[2] == 1 else array)
    elif array.shape[2] == 1:
        Image.fromarray(array[:, :, 0]).save(path)
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
