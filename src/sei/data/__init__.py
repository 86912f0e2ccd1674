"""Datasets: named and user image sets, checksum-verified downloads, measurement pairs and crops."""

from sei.io.download import RemoteFile, fetch, file_md5
from sei.data.pairs import CropDataset, EpochSampler, FullImageDataset, MeasurementSet
from sei.data.preprocess import resize_shorter_side
from sei.data.sources import NAMED_DATASETS, ImageSet, load_image_set

__all__ = ["NAMED_DATASETS", "CropDataset", "EpochSampler", "FullImageDataset", "ImageSet", "MeasurementSet",
           "RemoteFile", "fetch", "file_md5", "load_image_set", "resize_shorter_side"]
