"""Where images come from: the paper's datasets, an embedded sample, or the user's own folders.

Every source yields an :class:`ImageSet`: named ``(C, H, W)`` float tensors in the network's units (8-bit and
16-bit files in [0, 1], float files by the set's recorded range: :mod:`sei.io.intensity`), either clean images
(measurements are then simulated from them) or measurements only (the user's blurry or low-resolution
images, for self-supervised training and restoration).

=============== ============================================== =====================================================
name            images                                         splits
=============== ============================================== =====================================================
``div2k``       DIV2K high-resolution photographs              train: 0001-0800, val: 0801-0900
``urban100``    Urban100 high-resolution city photographs      train: img_001-090, val: img_091-100
``ct``          CT slices of the paper (HDF5, grayscale)       train: x_train, val: x_test; repeated to RGB
``sample``      photographs shipped with installed packages    train: 13 images, val: 3 images (no network needed)
``photos``      sample + 25 photographs of Debian's wallpaper  train: 38 images, val: sample's 3
                packages (downloaded, 62 MB; sei.data.photos)
``photos-test`` 12 photographs of two other Debian wallpaper   val: all 12 (evaluation only: there is no train
                packages that no training set uses             split)
                (downloaded, 142 MB; sei.data.photos)
PATH            a folder of image files                        all images (the split is ignored)
=============== ============================================== =====================================================

The named datasets are resized so that their shorter side is 256 px (bicubic, antialiased), as in the paper;
folders keep their size unless asked otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sei.io.download import RemoteFile, fetch
from sei.data.photos import HELD_OUT_PACKAGES, PHOTO_PACKAGES, PhotoPackage
from sei.data.preprocess import resize_shorter_side
from sei.core.errors import ConfigError, ImageError, ResourceUnavailableError, UnknownNameError
from sei.io.intensity import IntensityMap, float_map, integer_map, integer_set_map
from sei.io.images import image_tensor, list_images, read_image_file, read_stack_header, skipped_entries
from sei.io.voxels import VoxelSize, stated_voxel_size

__all__ = ["CT_FILE", "DIV2K_FILES", "NAMED_DATASETS", "PAPER_SHORTER_SIDE", "SAMPLE_SPLITS", "SCIKIT_LEARN_PHOTOS",
           "SPLITS", "URBAN100_FILE", "describe_skipped", "ImageSet", "load_image_set", "read_ct_slices",
           "sample_image"]

SPLITS = ("train", "val")
PAPER_SHORTER_SIDE = 256
_MAX_LISTED = 5  # skipped files named in a message; the rest are counted
_log = logging.getLogger("sei")


def describe_skipped(skipped: list[tuple[str, str]], set_name: str) -> str:
    """``skipped 2 unreadable image(s) in X: a.png (reason); b.tif (reason)``."""
    listed = "; ".join(f"{Path(path).name} ({reason})" for path, reason in skipped[:_MAX_LISTED])
    more = f"; and {len(skipped) - _MAX_LISTED} more" if len(skipped) > _MAX_LISTED else ""
    return f"skipped {len(skipped)} unreadable image(s) in {set_name}: {listed}{more}"

DIV2K_FILES = {
    "train": RemoteFile("DIV2K_train_HR.zip", "http://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip",
                        "bdc2d9338d4e574fe81bf7d158758658", extract=True),
    "val": RemoteFile("DIV2K_valid_HR.zip", "http://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip",
                      "9fcdda83005c5e5997799b69f955ff88", extract=True),
}
URBAN100_FILE = RemoteFile(
    "Urban100_HR.tar.gz", "https://huggingface.co/datasets/eugenesiow/Urban100/resolve/main/data/Urban100_HR.tar.gz",
    "65d9d84a34b72c6f7ca1e26a12df1e4c", extract=True)
# The MD5 as written in the paper's reference implementation. It has the look of a placeholder and could not be
# confirmed from a second source: it is marked unverified, which the error messages say.
CT_FILE = RemoteFile(
    "dinv_dataset0.h5", "https://huggingface.co/jtachella/equivariant_bootstrap/resolve/main/Tomography/dinv_dataset0.h5",
    "6f1e1a4f5c0a1f0e0a4b6e6b9a8b4b4b", checksum_verified=False)

# Photographs that ship inside installed wheels (no download): scikit-image's, and the two natural photographs of
# scikit-learn (SCIKIT_LEARN_PHOTOS, with their licences); grayscale ones are repeated to RGB.
SAMPLE_SPLITS = {
    "train": ("astronaut", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "moon", "brick",
              "grass", "gravel", "coins", "cell", "china", "flower"),
    "val": ("chelsea", "coffee", "camera"),
}
# The photographs that are not scikit-image's: the package that ships them, and their licence.
SCIKIT_LEARN_PHOTOS = {
    "china": "scikit-learn datasets/images/china.jpg: Summer Palace, Beijing, by danielbuechele (Flickr), CC BY 2.0",
    "flower": "scikit-learn datasets/images/flower.jpg: a dahlia, by vultilion (Flickr), CC BY 2.0",
}


@dataclass
class ImageSet:
    """Images of one split.

    :ivar name: what the set is (``"div2k/train"``, a folder path ...).
    :ivar names: one name per image (file stem or index), used for output files and metrics rows.
    :ivar images: ``(C, H, W)`` float32 tensors in [0, 1]; ``(C, D, H, W)`` for a set read as volumes.
    :ivar ground_truth: True for clean images, False for measurements only.
    :ivar skipped: files that could not be read, with the reason.
    :ivar intensity: the map from the files' intensities to the images' (:mod:`sei.io.intensity`) when one holds for
        the whole set (one dtype), ``None`` for the named datasets (8-bit photographs in [0, 1]) and for sets that
        mix 8- and 16-bit files (each by its dtype's full range).
    :ivar voxel_sizes: for a set read as volumes, each volume's voxel size as its file states it
        (:func:`sei.io.voxels.read_voxel_size`); empty otherwise.
    :ivar cut_sides: per image, per axis (planes first), whether its ``(start, end)`` side is a cut through a larger
        image (the blocks of a stack too large to hold) rather than the file's own border; empty when none is cut.
    """

    name: str
    names: list[str]
    images: list[torch.Tensor]
    ground_truth: bool = True
    skipped: list[tuple[str, str]] = field(default_factory=list)
    intensity: IntensityMap | None = None
    voxel_sizes: list[VoxelSize] = field(default_factory=list)
    cut_sides: list[tuple[tuple[bool, bool], ...]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    return split


def _read_files(files: list[Path], set_name: str, ground_truth: bool, resize: int | None,
                progress: bool = False, intensity: IntensityMap | None = None,
                max_pixels: int | None = None, volumes: bool = False) -> ImageSet:
    """Read files into an :class:`ImageSet` in network units (:mod:`sei.io.intensity`): integer files by their dtype's
    full range (dim ones by the set's robust range), float files by one robust range for the whole set (or
    ``intensity``, the map a run recorded, of the same kind), so that one noise level holds for every image. A stack
    contributes each page as an image (``name_0000`` ...), or, with ``volumes``, each file is one ``(C, D, H, W)``
    volume of its pages (planes along z; a file of one page is a volume of one plane), and a z-stack too large to
    hold (:meth:`~sei.io.images.StackHeader.too_large_to_hold`) is the blocks of it that
    :meth:`~sei.io.images.StackHeader.blocks` reads (``name_z0_y0_x0`` ...), whose crops train as the whole would.

    :raises ImageError: when no file is readable (a set mixing float and integer files is warned about: the two
        maps need not share a scale).
    :raises IntensityError: for float files with no intensity range.
    """
    from tqdm.auto import tqdm

    names, pages, skipped, planes, voxel_sizes, cut_sides = [], [], [], [], [], []
    for path in tqdm(files, desc=f"reading {set_name}", unit="image", disable=not progress or len(files) < 20):
        try:
            header = read_stack_header(path, max_pixels) if volumes else None
            if header is not None and header.too_large_to_hold():
                blocks = header.blocks()
                size = (len(blocks[0][1]), *blocks[0][1][0].shape)
                share = len(blocks) * np.prod(size) / np.prod(header.shape)
                _log.warning("%s (%s voxels) is too large to hold: read as %d blocks of %s spread over it (%.0f%% of "
                             "its voxels)", path.name, "x".join(map(str, header.shape)), len(blocks),
                             "x".join(map(str, size)), 100 * share)
                stated = stated_voxel_size(path)  # the file's metadata, read once for all its blocks
                for (z, y, x), block in blocks:
                    names.append(f"{path.stem}_z{z}_y{y}_x{x}")
                    voxel_sizes.append(stated)
                    extent = (len(block), *block[0].shape)
                    cut_sides.append(tuple((start > 0, start + n < whole)
                                           for start, n, whole in zip((z, y, x), extent, header.shape)))
                    pages += block
                    planes.append(len(block))
                continue
            file = read_image_file(path, max_pixels)
            if volumes:
                file.check_z_stack(path)
        except ImageError as error:
            skipped.append((str(path), str(error)))
            continue
        if volumes:
            names.append(path.stem)
            voxel_sizes.append(stated_voxel_size(path))
            cut_sides.append(((False, False),) * 3)
        else:
            names += [f"{path.stem}_{i:04d}" for i in range(len(file.pages))] if file.is_stack else [path.stem]
        pages += file.pages
        planes.append(len(file.pages))
    if not pages:
        reasons = "; ".join(reason for _, reason in skipped[:3])
        raise ImageError(f"no readable images in {set_name}" + (f" ({reasons})" if reasons else ""))
    floats = [page for page in pages if np.issubdtype(page.dtype, np.floating)]
    if floats and len(floats) < len(pages):  # each kind keeps its own map; only the user can say how they relate
        _log.warning("%s mixes float and integer image files: the floats are mapped by their own range, the integers "
                    "by their dtype's, so their intensities may not share a scale (convert them to one type)", set_name)
    floats_map = None
    if floats:
        floats_map = intensity if intensity is not None and not intensity.is_integer else float_map(
            floats, np.float32, set_name)
    integers = [page for page in pages if not np.issubdtype(page.dtype, np.floating)]
    dtypes = {page.dtype.name for page in integers}
    integers_map = None  # mixed 8/16 bits: each its full range
    if len(dtypes) == 1:
        dtype = dtypes.pop()
        recorded = intensity is not None and intensity.dtype == dtype
        integers_map = intensity if recorded else integer_set_map(integers, dtype, set_name)
    set_map = floats_map if floats else integers_map
    images = []
    for page in pages:
        is_float = np.issubdtype(page.dtype, np.floating)
        mapped = (floats_map if is_float else integers_map or integer_map(page.dtype)).to_network(page)
        if volumes:  # the stack's own channels: a grayscale volume is not tripled in memory
            images.append(image_tensor(mapped, None, set_name))
            continue
        image = image_tensor(mapped, 3, set_name)
        images.append(resize_shorter_side(image, resize, set_name, max_pixels) if resize else image)
    if volumes:
        starts = np.cumsum([0, *planes])
        images = [torch.stack(images[start:end], dim=1) for start, end in zip(starts[:-1], starts[1:])]
    return ImageSet(set_name, names, images, ground_truth, skipped, set_map, voxel_sizes,
                    cut_sides if any(any(map(any, sides)) for sides in cut_sides) else [])


def _report_skipped(images: ImageSet, strict: bool) -> ImageSet:
    """Say which files were skipped (a warning), or fail on them when ``strict``."""
    if images.skipped:
        message = describe_skipped(images.skipped, images.name)
        if strict:
            raise ImageError(f"{message} (--strict: stopping; remove or fix them)")
        _log.warning("%s; going on with %d image(s) (--strict to stop instead)", message, len(images))
    return images


def _div2k(split: str, root: Path, download: bool, resize: int | None, progress: bool) -> ImageSet:
    directory = root / "DIV2K"
    fetch(DIV2K_FILES[split], directory, download, progress)
    folder = directory / ("DIV2K_train_HR" if split == "train" else "DIV2K_valid_HR")
    files = sorted(folder.glob("*.png"))
    expected = 800 if split == "train" else 100
    if len(files) != expected:
        raise ResourceUnavailableError(f"{folder} holds {len(files)} PNG files, expected {expected}; "
                                       f"delete {directory} and download again")
    return _read_files(files, f"div2k/{split}", True, resize, progress)


def _urban100(split: str, root: Path, download: bool, resize: int | None, progress: bool) -> ImageSet:
    directory = root / "Urban100"
    fetch(URBAN100_FILE, directory, download, progress)
    files = sorted(directory.rglob("img_*.png"))
    if len(files) != 100:
        raise ResourceUnavailableError(f"{directory} holds {len(files)} img_*.png files, expected 100; "
                                       f"delete it and download again")
    files = files[:90] if split == "train" else files[90:]
    return _read_files(files, f"urban100/{split}", True, resize, progress)


def read_ct_slices(path: str | Path, split: str) -> list[torch.Tensor]:
    """CT slices of one split from a deepinv HDF5 dataset file (members ``x_train`` / ``x_test``), as RGB."""
    import h5py

    member = "x_train" if split == "train" else "x_test"
    try:
        with h5py.File(path, "r") as file:
            if member not in file:
                raise ImageError(f"{path} has no member {member!r} (members: {', '.join(file.keys())})")
            data = np.asarray(file[member], dtype=np.float32)
    except OSError as error:
        raise ImageError(f"cannot read HDF5 file {path}: {error}") from error
    if data.ndim == 3:
        data = data[:, None]
    if data.ndim != 4 or data.shape[1] not in (1, 3):
        raise ImageError(f"{path}:{member} should hold (N, 1, H, W) slices, got shape {data.shape}")
    if not np.isfinite(data).all():
        raise ImageError(f"{path}:{member} holds NaN or infinite values; images must hold finite values")
    tensor = torch.from_numpy(data)
    if tensor.shape[1] == 1:
        tensor = tensor.expand(-1, 3, -1, -1)
    return [slice_.clone() for slice_ in tensor]


def _ct(split: str, root: Path, download: bool, resize: int | None, progress: bool) -> ImageSet:
    path = fetch(CT_FILE, root / "CT", download, progress)
    slices = read_ct_slices(path, split)
    images = [resize_shorter_side(s, resize) if resize else s for s in slices]
    return ImageSet(f"ct/{split}", [f"{i:04d}" for i in range(len(images))], images, True)


def sample_image(name: str) -> torch.Tensor:
    """A photograph of the ``sample`` set (scikit-image's, or scikit-learn's for :data:`SCIKIT_LEARN_PHOTOS`) as a
    ``(3, H, W)`` float tensor in [0, 1].

    :raises ResourceUnavailableError: if the package that ships it is not installed.
    """
    if name in SCIKIT_LEARN_PHOTOS:
        try:
            from sklearn.datasets import load_sample_image
        except ImportError as error:
            raise ResourceUnavailableError(f"the sample photograph {name!r} ships with scikit-learn, which is not "
                                           "installed: pip install scikit-learn") from error
        array = np.asarray(load_sample_image(f"{name}.jpg"))
    else:
        from skimage import data

        array = np.asarray(getattr(data, name)())
    tensor = torch.from_numpy(array.astype(np.float32) / 255.0)
    if tensor.ndim == 2:
        return tensor.expand(3, -1, -1).clone()
    return tensor[..., :3].permute(2, 0, 1).contiguous()


def _sample(split: str, root: Path, download: bool, resize: int | None, progress: bool) -> ImageSet:
    names = list(SAMPLE_SPLITS[split])
    images = [sample_image(name) for name in names]
    return ImageSet(f"sample/{split}", names, [resize_shorter_side(i, resize) if resize else i for i in images], True)


def _packaged_photos(packages: tuple[PhotoPackage, ...], dataset: str, root: Path, download: bool,
                     resize: int | None, progress: bool) -> ImageSet:
    """The photographs of Debian packages, each package fetched (checksum-verified) into ``root/dataset``."""
    names, files = [], []
    for package in packages:
        directory = root / dataset / package.folder
        fetch(package.remote, directory, download, progress)
        for photo in package.photos:
            if not (directory / photo.member).is_file():
                raise ResourceUnavailableError(f"{directory / photo.member} is missing from the extracted "
                                               f"{package.remote.filename}; delete {directory} and download again")
            names.append(photo.name)
            files.append(directory / photo.member)
    packaged = _read_files(files, dataset, True, resize, progress)
    if packaged.skipped:
        raise ResourceUnavailableError(f"{describe_skipped(packaged.skipped, dataset)}: delete "
                                       f"{root / dataset} and download again")
    return ImageSet(dataset, names, packaged.images, True)


def _photos(split: str, root: Path, download: bool, resize: int | None, progress: bool) -> ImageSet:
    """The sample photographs, and for training the photographs of Debian's wallpaper packages too."""
    sample = _sample(split, root, download, resize, progress)
    if split != "train":
        return ImageSet(f"photos/{split}", sample.names, sample.images, True)
    packaged = _packaged_photos(PHOTO_PACKAGES, "photos", root, download, resize, progress)
    return ImageSet("photos/train", sample.names + packaged.names, sample.images + packaged.images, True)


def _photos_test(split: str, root: Path, download: bool, resize: int | None, progress: bool) -> ImageSet:
    """Photographs that no training set uses, for evaluation only."""
    if split == "train":
        raise ConfigError("photos-test is for evaluation only (sei test --dataset photos-test); train on its "
                          "measurements with `sei degrade` and `sei train --measurements`")
    packaged = _packaged_photos(HELD_OUT_PACKAGES, "photos-test", root, download, resize, progress)
    return ImageSet(f"photos-test/{split}", packaged.names, packaged.images, True)


NAMED_DATASETS: dict[str, Callable[..., ImageSet]] = {
    "div2k": _div2k, "urban100": _urban100, "ct": _ct, "sample": _sample, "photos": _photos,
    "photos-test": _photos_test,
}


def load_image_set(
    dataset: str | Path,
    split: str = "train",
    datasets_dir: str | Path = "datasets",
    download: bool = False,
    ground_truth: bool = True,
    resize: int | None | str = "auto",
    progress: bool = False,
    strict: bool = False,
    intensity: IntensityMap | dict | None = None,
    max_pixels: int | None = None,
    volumes: bool = False,
) -> ImageSet:
    """Images of ``dataset``'s ``split``.

    :param dataset: a name (``div2k``, ``urban100``, ``ct``, ``sample``, ``photos``) or a folder of images.
    :param split: ``"train"`` or ``"val"``; ignored for folders.
    :param datasets_dir: where named datasets are stored (and downloaded to).
    :param download: allow downloading a named dataset that is missing.
    :param ground_truth: for folders: True if they hold clean images, False if they hold measurements.
    :param resize: shorter side in pixels, ``None`` to keep sizes, ``"auto"`` for 256 on named datasets and
        none on folders.
    :param strict: fail on an unreadable file instead of skipping it (skipped files are always named in a
        warning).
    :param intensity: for folders: the map to use (a run's or ``sei degrade``'s record) instead of the set's own,
        for files of its kind (float files; integer files of its dtype).
    :param max_pixels: for folders: the most pixels one file may hold (:func:`sei.io.images.check_pixel_count`).
    :param volumes: for folders: read each file as one ``(C, D, H, W)`` volume (z-stacks blurred by a 3-D PSF); the
        named datasets hold images.
    :raises UnknownNameError: for a name that is neither a dataset nor an existing folder.
    :raises ImageError: for a folder of measurements, or a name written as a path, that does not exist.
    :raises ResourceUnavailableError: for a named dataset that is missing offline.
    """
    split = _check_split(split)
    key = str(dataset).strip()
    if key.lower() in NAMED_DATASETS:
        if volumes:
            raise ConfigError(f"{key} holds images, not volumes: a 3-D PSF needs a folder of z-stacks")
        if not ground_truth:
            raise ConfigError(f"{key} holds clean images, not measurements")
        size = PAPER_SHORTER_SIDE if resize == "auto" else resize
        return _report_skipped(NAMED_DATASETS[key.lower()](split, Path(datasets_dir), download, size, progress), strict)
    path = Path(key).expanduser()
    if path.is_dir() or path.is_file():
        size = None if resize == "auto" else resize
        files = list_images(path) if path.is_dir() else [path]
        if isinstance(intensity, dict):
            intensity = IntensityMap.from_dict(intensity)
        if volumes and size:
            raise ConfigError("volumes are restored at their own sampling: --resize applies to images only")
        images = _read_files(files, str(path), ground_truth, size, progress, intensity, max_pixels, volumes)
        if path.is_dir():  # broken links and the like are named with the unreadable files
            images.skipped += [(str(entry), reason) for entry, reason in skipped_entries(path)]
        return _report_skipped(images, strict)
    if not ground_truth or any(separator in key for separator in ("/", "\\")) or Path(key).suffix:
        what = "measurements folder" if not ground_truth else "folder"
        raise ImageError(f"{what} not found: {path}")
    raise UnknownNameError("dataset", dataset, NAMED_DATASETS, hint="or pass an existing folder of images")
