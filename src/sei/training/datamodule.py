"""Lightning data module: loads a dataset, simulates its measurements once, serves crops and full images."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader

from sei.config.recipe import STEP_BUDGET_EPOCH, default_num_workers
from sei.config.schema import ExperimentConfig
from sei.core.errors import ConfigError, ImageTooSmallError
from sei.core.scaling import scale_factors
from sei.data.channels import to_channels
from sei.data.pairs import CropDataset, EpochSampler, FullImageDataset, MeasurementSet
from sei.data.sources import NAMED_DATASETS, PAPER_SHORTER_SIDE, ImageSet, load_image_set
from sei.physics.symmetry import operator_symmetries

__all__ = ["check_crop_fits", "read_training_folder", "SEIDataModule"]


def read_training_folder(config: ExperimentConfig) -> ImageSet | None:
    """A run's training images when they come from a folder (``None`` for a named dataset of clean images), read
    once: the run measures their noise, channels and intensity map on them, then trains on them.

    :raises ConfigError: for a named dataset given as measurements (they hold clean images).
    """
    data = config.data
    if data.kind == "clean" and str(data.dataset).strip().lower() in NAMED_DATASETS:
        return None
    from pathlib import Path

    from sei.data.degradation import recorded_intensity

    folder = Path(data.dataset)
    # measurements that sei degrade wrote with a set's map are read with it: their recorded noise is in its units
    intensity = recorded_intensity(folder) if data.kind == "measurements" and folder.is_dir() else None
    return load_image_set(data.dataset, "train", data.datasets_dir, False, ground_truth=data.kind == "clean",
                          resize=data.resize, progress=config.train.progress, strict=data.strict,
                          max_pixels=data.max_pixels, intensity=intensity,
                          volumes=config.physics.dimensionality == 3)


def check_crop_fits(config: ExperimentConfig, images: ImageSet | None) -> None:
    """Refuse a crop larger than every training measurement before anything is allocated for it (the memory plan
    measures a step at the crop size): from the images read, or, for a named dataset, from its resizing.

    A 3-D PSF must fit in every stack and in a crop along every axis (SURE leaves out the PSF's half-size at each
    border of a crop: a smaller crop keeps nothing).

    :raises ImageTooSmallError: naming the crop and the largest measurement's shorter side, or the PSF and the stack
        or crop it does not fit in.
    """
    data = config.data
    if images is not None and config.physics.dimensionality == 3:
        _check_psf_fits(config, images)
    # a clean image is r times its measurement's size across (an image under SR), a clean volume as wide (axial SR)
    upscale = 1 if data.kind == "measurements" else scale_factors(config.physics.upscale,
                                                                  config.physics.dimensionality)[-1]
    if images is not None:
        side = max(min(image.shape[-2:]) for image in images.images) // upscale
    else:
        resize = PAPER_SHORTER_SIDE if data.resize == "auto" else data.resize
        if not resize:
            return  # sizes unknown until read: the crop dataset checks them then
        side = resize // upscale
    if data.crop_size > side:
        raise ImageTooSmallError(f"the {data.crop_size}x{data.crop_size} crop (--crop-size) is larger than every "
                                 f"training measurement (the largest has a shorter side of {side} px); use "
                                 f"--crop-size {side} or less")


def _check_psf_fits(config: ExperimentConfig, images: ImageSet) -> None:
    from sei.core.scaling import upscaled_size
    from sei.data.pairs import crop_shape
    from sei.io.voxels import check_psf_sampling, read_psf_voxel_size
    from sei.physics.kernels import VOLUME_DIMS, load_kernel

    psf = tuple(load_kernel(config.physics.kernel, VOLUME_DIMS).shape)
    sampling = read_psf_voxel_size(config.physics.kernel)
    upscale = config.physics.upscale
    measured = config.data.kind == "measurements"  # stepped r times the PSF along z; a clean stack as the PSF
    for name, stated in zip(images.names, images.voxel_sizes):
        check_psf_sampling(sampling, stated, f"the stack {name}", upscale if measured else 1)
    text = "x".join(map(str, psf))
    for name, volume in zip(images.names, images.images):
        # in the estimate's voxels, which the PSF samples (a measured stack has 1/r of its planes: axial SR)
        depth = volume.shape[1] if measured else volume.shape[1] // upscale
        size = upscaled_size((depth, *volume.shape[2:]), upscale)
        if any(k > n for k, n in zip(psf, size)):
            raise ImageTooSmallError(f"the PSF ({text} voxels, z y x) is larger than the stack {name} "
                                     f"({'x'.join(map(str, size))}): make a PSF that fits (sei psf ... --planes N "
                                     "--size N) or record more planes")
        crop = upscaled_size(crop_shape(config.data.crop_size, 3, depth), upscale)
        if any(k > n for k, n in zip(psf, crop)):
            raise ImageTooSmallError(f"a {'x'.join(map(str, crop))} crop of {name} is smaller than the PSF ({text}) "
                                     f"along some axis: use --crop-size {max(psf)} or more, or a smaller PSF")


class SEIDataModule(L.LightningDataModule):
    """Training crops (and optional full validation images) for one experiment configuration.

    :param physics: the run's operator, built once by the caller (default: built from ``config``'s physics spec).
    :param train_images: the training images as read by the caller (:func:`read_training_folder`), so that a
        folder is read once (default: read in :meth:`setup`).
    """

    def __init__(self, config: ExperimentConfig, physics=None, train_images: ImageSet | None = None) -> None:
        super().__init__()
        self.config = config
        self.physics = physics if physics is not None else config.physics.build()
        self.train_images = train_images
        self.train_set: CropDataset | None = None
        self.val_set: FullImageDataset | None = None

    def _load(self, dataset: str, split: str, ground_truth: bool, images: ImageSet | None = None):
        """The images of a split (read unless given) in the network's channels (:mod:`sei.data.channels`;
        validation colour images become luma for a 1-channel network)."""
        data = self.config.data
        if images is None:
            images = load_image_set(dataset, split, data.datasets_dir, data.download, ground_truth, data.resize,
                                    progress=self.config.train.progress, strict=data.strict,
                                    max_pixels=data.max_pixels, volumes=self.config.physics.dimensionality == 3)
        channels = self.config.model.channels or 3
        images.images = [to_channels(image, channels, colour_to_luma=split == "val") for image in images.images]
        return images

    def prepare_data(self) -> None:
        # Runs on one process per node before `setup`: downloads happen here, once.
        data = self.config.data
        if str(data.dataset).lower() in NAMED_DATASETS and data.download:
            self._load(data.dataset, "train", True)
            if data.val_dataset and self.config.train.val_every:
                self._load(data.val_dataset, "val", True)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        data = self.config.data
        ground_truth = data.kind == "clean"
        physics = self.physics
        images = self._load(data.dataset, "train", ground_truth, self.train_images)
        self.train_images = None  # the crops hold the images now
        measurements = MeasurementSet(images, physics, data.noise_seed)
        # a step budget on a few images: epochs of at least STEP_BUDGET_EPOCH batches, not one step each
        minimum = STEP_BUDGET_EPOCH * data.batch_size if self.config.train.steps is not None else 0
        symmetries = operator_symmetries(physics) if data.augment else (0,)
        self.train_set = CropDataset(measurements, data.crop_size, self.config.train.seed, data.samples_per_epoch,
                                     minimum, data.crop_sampling, symmetries)
        if data.val_dataset and self.config.train.val_every:
            val_images = self._load(data.val_dataset, "val", True)
            if data.val_max_images:
                val_images.names = val_images.names[: data.val_max_images]
                val_images.images = val_images.images[: data.val_max_images]
            self.val_set = FullImageDataset(MeasurementSet(val_images, physics, data.noise_seed))

    def _rank_and_world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 1
        return trainer.global_rank, trainer.world_size

    def _workers(self) -> int:
        if self.config.data.num_workers is not None:
            return self.config.data.num_workers
        trainer = self.trainer
        on_gpu = trainer is not None and trainer.accelerator.__class__.__name__ == "CUDAAccelerator"
        return default_num_workers(on_gpu)

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            raise ConfigError("setup() must run before train_dataloader()")
        rank, world_size = self._rank_and_world()
        sampler = EpochSampler(len(self.train_set), self.config.train.seed, rank, world_size)
        workers = self._workers()
        return DataLoader(self.train_set, batch_size=self.config.data.batch_size, sampler=sampler,
                          num_workers=workers, pin_memory=torch.cuda.is_available(), drop_last=False,
                          persistent_workers=workers > 0)

    def val_dataloader(self) -> DataLoader:
        if self.val_set is None:
            return DataLoader([])
        return DataLoader(self.val_set, batch_size=1, num_workers=0)
