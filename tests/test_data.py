"""Data: checksum-verified downloads, dataset loaders on small local files, measurements, crops, sampler."""

from __future__ import annotations

import hashlib
import io
import sys
import tarfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import sei.data.sources as sources
from sei.data import CropDataset, EpochSampler, MeasurementSet, RemoteFile, fetch, load_image_set
from sei.data.sources import SAMPLE_SPLITS, ImageSet, read_ct_slices
from sei.core.errors import ConfigError, ImageError, ImageTooSmallError, ResourceUnavailableError, UnknownNameError
from sei.physics import make_physics


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def random_png(rng, height=40, width=52) -> bytes:
    return png_bytes(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def remote(path: Path, extract: bool = True, md5: str | None = None) -> RemoteFile:
    return RemoteFile(path.name, path.as_uri(), md5 or hashlib.md5(path.read_bytes()).hexdigest(), extract)


class TestDownload:
    def make_zip(self, tmp_path: Path) -> Path:
        path = tmp_path / "server" / "images.zip"
        path.parent.mkdir()
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("folder/a.png", random_png(np.random.default_rng(0)))
        return path

    def test_offline_error_names_file_checksum_and_place(self, tmp_path):
        spec = RemoteFile("DATA.zip", "http://example.invalid/DATA.zip", "0123456789abcdef0123456789abcdef", True)
        with pytest.raises(ResourceUnavailableError) as info:
            fetch(spec, tmp_path / "store")
        message = str(info.value)
        for part in ("DATA.zip", "0123456789abcdef0123456789abcdef", "http://example.invalid/DATA.zip",
                     str(tmp_path / "store" / "DATA.zip"), "--download"):
            assert part in message

    def test_download_verify_extract(self, tmp_path):
        spec = remote(self.make_zip(tmp_path))
        store = tmp_path / "store"
        path = fetch(spec, store, download=True, progress=False)
        assert path.is_file() and (store / "folder" / "a.png").is_file()
        (store / "folder" / "a.png").unlink()
        fetch(spec, store, download=False)  # already extracted: nothing to do, no network
        assert not (store / "folder" / "a.png").exists()

    def test_checksum_mismatch_discards_the_download(self, tmp_path):
        spec = remote(self.make_zip(tmp_path), md5="f" * 32)
        store = tmp_path / "store"
        with pytest.raises(ResourceUnavailableError, match="expected f{32}"):
            fetch(spec, store, download=True, progress=False)
        assert not any(store.iterdir())

    def test_corrupted_local_file_is_refused(self, tmp_path):
        spec = remote(self.make_zip(tmp_path))
        store = tmp_path / "store"
        store.mkdir()
        (store / spec.filename).write_bytes(b"truncated")
        with pytest.raises(ResourceUnavailableError, match="incomplete or another version"):
            fetch(spec, store)

    def test_unreachable_url(self, tmp_path):
        spec = RemoteFile("x.zip", (tmp_path / "nothing.zip").as_uri(), "0" * 32, True)
        with pytest.raises(ResourceUnavailableError, match="could not be downloaded"):
            fetch(spec, tmp_path / "store", download=True, progress=False)
        assert not (tmp_path / "store" / "x.zip.part").exists()

    def test_archive_escaping_its_folder_is_refused(self, tmp_path):
        path = tmp_path / "evil.tar"
        with tarfile.open(path, "w") as archive:
            data = b"x"
            info = tarfile.TarInfo("../escape.txt")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        with pytest.raises(ResourceUnavailableError, match="unsafe"):
            fetch(remote(path), tmp_path / "store", download=True, progress=False)
        assert not (tmp_path / "escape.txt").exists()


def ar_archive(members: list[tuple[str, bytes]]) -> bytes:
    """An ``ar`` archive, the container of a Debian package."""
    out = bytearray(b"!<arch>\n")
    for name, data in members:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        out += data + (b"\n" if len(data) % 2 else b"")
    return bytes(out)


def tar_bytes(files: dict[str, bytes], links: dict[str, str] | None = None, compression: str = "xz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return buffer.getvalue()


def make_deb(path: Path, files: dict[str, bytes], links: dict[str, str] | None = None,
             data_member: str = "data.tar.xz") -> Path:
    """A Debian package whose payload installs ``files`` (paths like ``./usr/share/a.png``)."""
    compression = {"data.tar.xz": "xz", "data.tar.gz": "gz"}.get(data_member, "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(ar_archive([("debian-binary", b"2.0\n"), ("control.tar.xz", tar_bytes({})),
                                 (data_member, tar_bytes(files, links, compression or "xz"))]))
    return path


class TestDebianPackages:
    def package(self, tmp_path: Path, **kwargs) -> Path:
        rng = np.random.default_rng(5)
        files = {"./usr/share/backgrounds/a.png": random_png(rng), "./usr/share/backgrounds/b.png": random_png(rng),
                 "./usr/share/doc/pkg/copyright": b"GPL-2+ (odd length)"}
        return make_deb(tmp_path / "server" / "pkg_1.0_all.deb", files, **kwargs)

    def test_fetch_extracts_only_the_named_files(self, tmp_path):
        deb = self.package(tmp_path)
        spec = RemoteFile(deb.name, deb.as_uri(), hashlib.md5(deb.read_bytes()).hexdigest(), True,
                          members=("usr/share/backgrounds/b.png",))
        store = tmp_path / "store"
        fetch(spec, store, download=True, progress=False)
        extracted = [p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file() and p.suffix != ".deb"
                     and not p.name.startswith(".")]
        assert extracted == ["usr/share/backgrounds/b.png"]
        assert np.asarray(Image.open(store / extracted[0])).shape == (40, 52, 3)

    def test_gzip_payload(self, tmp_path):
        from sei.io.debian import extract_deb_files

        deb = make_deb(tmp_path / "p.deb", {"./x/a.txt": b"abc"}, data_member="data.tar.gz")
        (path,) = extract_deb_files(deb, ("x/a.txt",), tmp_path / "out")
        assert path.read_bytes() == b"abc"

    def test_missing_member_is_named(self, tmp_path):
        from sei.io.debian import extract_deb_files

        with pytest.raises(ResourceUnavailableError, match="has no file usr/share/nothing.png"):
            extract_deb_files(self.package(tmp_path), ("usr/share/nothing.png",), tmp_path / "out")

    def test_link_member_is_refused(self, tmp_path):
        from sei.io.debian import extract_deb_files

        deb = self.package(tmp_path, links={"./usr/share/backgrounds/c.png": "a.png"})
        with pytest.raises(ResourceUnavailableError, match="not a regular file"):
            extract_deb_files(deb, ("usr/share/backgrounds/c.png",), tmp_path / "out")

    def test_member_outside_the_destination_is_refused(self, tmp_path):
        from sei.io.debian import extract_deb_files

        with pytest.raises(ResourceUnavailableError, match="not a path inside"):
            extract_deb_files(self.package(tmp_path), ("../escape.png",), tmp_path / "out")

    @pytest.mark.parametrize("content, message", [
        (b"PK\x03\x04 not a package", "not a Debian package"),
        (ar_archive([("debian-binary", b"2.0\n")]), "no data.tar member"),
        (ar_archive([("data.tar.zst", b"\x28\xb5\x2f\xfd")]), "dpkg-deb -x"),
        (b"!<arch>\ndebian-binary   0           0     0     100644  4         XX", "damaged ar header"),
    ])
    def test_unreadable_packages(self, tmp_path, content, message):
        from sei.io.debian import extract_deb_files

        (tmp_path / "bad.deb").write_bytes(content)
        with pytest.raises(ResourceUnavailableError, match=message):
            extract_deb_files(tmp_path / "bad.deb", ("a",), tmp_path / "out")

    def test_truncated_payload(self, tmp_path):
        from sei.io.debian import extract_deb_files

        big = np.random.default_rng(7).bytes(600_000)  # incompressible: the cut falls inside this file
        deb = make_deb(tmp_path / "p.deb", {"./usr/share/big.bin": big})
        deb.write_bytes(deb.read_bytes()[:-200_000])
        with pytest.raises(ResourceUnavailableError, match="cannot read the files"):
            extract_deb_files(deb, ("usr/share/big.bin",), tmp_path / "out")
        assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]  # nothing half-written is left


class TestPhotosDataset:
    def test_the_table_is_consistent(self):
        from sei.data.photos import HELD_OUT_PACKAGES, PHOTO_PACKAGES

        names = [photo.name for package in PHOTO_PACKAGES + HELD_OUT_PACKAGES for photo in package.photos]
        assert len(names) == len(set(names)) and not set(names) & {n for s in SAMPLE_SPLITS.values() for n in s}
        # the held-out photographs come from packages no training set uses
        assert not {p.folder for p in PHOTO_PACKAGES} & {p.folder for p in HELD_OUT_PACKAGES}
        for package in PHOTO_PACKAGES + HELD_OUT_PACKAGES:
            assert package.remote.members == tuple(photo.member for photo in package.photos)
            assert package.remote.url.startswith("https://deb.debian.org/") and len(package.remote.md5) == 32
            assert all(photo.credit for photo in package.photos)

    def test_sample_plus_packaged_photographs(self, tmp_path, monkeypatch):
        from sei.data.photos import PackagedPhoto, PhotoPackage

        rng = np.random.default_rng(6)
        deb = make_deb(tmp_path / "server" / "pics_1_all.deb",
                       {"./usr/share/bg/one.png": random_png(rng, 300, 400), "./usr/share/bg/art.png": random_png(rng)})
        package = PhotoPackage(RemoteFile(deb.name, deb.as_uri(), hashlib.md5(deb.read_bytes()).hexdigest(), True,
                                          members=("usr/share/bg/one.png",)),
                               (PackagedPhoto("one", "usr/share/bg/one.png", "someone, CC0"),))
        monkeypatch.setattr(sources, "PHOTO_PACKAGES", (package,))
        with pytest.raises(ResourceUnavailableError, match="--download"):
            load_image_set("photos", "train", tmp_path / "datasets")
        train = load_image_set("photos", "train", tmp_path / "datasets", download=True)
        assert train.names == list(SAMPLE_SPLITS["train"]) + ["one"] and train.images[-1].shape == (3, 256, 341)
        assert not (tmp_path / "datasets" / "photos" / "pics" / "usr/share/bg/art.png").exists()
        val = load_image_set("photos", "val", tmp_path / "datasets")
        assert val.names == list(SAMPLE_SPLITS["val"])
        (tmp_path / "datasets" / "photos" / "pics" / "usr/share/bg/one.png").unlink()
        with pytest.raises(ResourceUnavailableError, match="delete .* and download again"):
            load_image_set("photos", "train", tmp_path / "datasets")

    def test_held_out_photographs_for_evaluation_only(self, tmp_path, monkeypatch):
        from sei.data.photos import PackagedPhoto, PhotoPackage

        rng = np.random.default_rng(8)
        deb = make_deb(tmp_path / "server" / "walls_1_all.deb", {"./usr/share/w/a.png": random_png(rng, 300, 500),
                                                                 "./usr/share/w/b.png": random_png(rng, 512, 300)})
        package = PhotoPackage(RemoteFile(deb.name, deb.as_uri(), hashlib.md5(deb.read_bytes()).hexdigest(), True,
                                          members=("usr/share/w/a.png", "usr/share/w/b.png")),
                               (PackagedPhoto("a", "usr/share/w/a.png", "someone, CC0"),
                                PackagedPhoto("b", "usr/share/w/b.png", "someone, CC0")))
        monkeypatch.setattr(sources, "HELD_OUT_PACKAGES", (package,))
        with pytest.raises(ResourceUnavailableError, match="--download"):
            load_image_set("photos-test", "val", tmp_path / "datasets")
        test = load_image_set("photos-test", "val", tmp_path / "datasets", download=True)
        assert test.names == ["a", "b"] and [i.shape for i in test.images] == [(3, 256, 426), (3, 436, 256)]
        assert (tmp_path / "datasets" / "photos-test" / "walls" / "usr/share/w/a.png").is_file()
        with pytest.raises(ConfigError, match="evaluation only"):
            load_image_set("photos-test", "train", tmp_path / "datasets")


class TestNamedDatasets:
    def test_div2k_from_a_verified_local_archive(self, tmp_path, monkeypatch):
        rng = np.random.default_rng(0)
        archive = tmp_path / "server" / "DIV2K_valid_HR.zip"
        archive.parent.mkdir()
        with zipfile.ZipFile(archive, "w") as zipped:
            for index in range(801, 901):
                zipped.writestr(f"DIV2K_valid_HR/{index:04d}.png", random_png(rng, 30, 45))
        monkeypatch.setitem(sources.DIV2K_FILES, "val", remote(archive))
        images = load_image_set("div2k", "val", tmp_path / "datasets", download=True)
        assert len(images) == 100 and images.names[0] == "0801" and images.names[-1] == "0900"
        assert images.images[0].shape == (3, 256, 384)  # shorter side resized to 256
        with pytest.raises(ResourceUnavailableError, match="DIV2K_train_HR.zip"):
            load_image_set("div2k", "train", tmp_path / "datasets")

    def test_urban100_split(self, tmp_path, monkeypatch):
        rng = np.random.default_rng(1)
        archive = tmp_path / "Urban100_HR.tar.gz"
        with tarfile.open(archive, "w:gz") as tarred:
            for index in range(1, 101):
                data = random_png(rng, 20, 30)
                info = tarfile.TarInfo(f"Urban100_HR/img_{index:03d}.png")
                info.size = len(data)
                tarred.addfile(info, io.BytesIO(data))
        monkeypatch.setattr(sources, "URBAN100_FILE", remote(archive))
        train = load_image_set("urban100", "train", tmp_path / "datasets", download=True, resize=None)
        val = load_image_set("urban100", "val", tmp_path / "datasets", resize=None)
        assert (len(train), len(val)) == (90, 10)
        assert train.names[0] == "img_001" and train.names[-1] == "img_090" and val.names[0] == "img_091"

    def test_ct_hdf5(self, tmp_path, monkeypatch):
        import h5py

        path = tmp_path / "dinv_dataset0.h5"
        with h5py.File(path, "w") as file:
            file["x_train"] = np.random.default_rng(2).random((4, 1, 64, 64)).astype(np.float32)
            file["x_test"] = np.random.default_rng(3).random((2, 1, 64, 64)).astype(np.float32)
        monkeypatch.setattr(sources, "CT_FILE", remote(path, extract=False))
        train = load_image_set("ct", "train", tmp_path / "datasets", download=True)
        val = load_image_set("ct", "val", tmp_path / "datasets")
        assert (len(train), len(val)) == (4, 2)
        assert train.images[0].shape == (3, 256, 256)
        assert torch.equal(train.images[0][0], train.images[0][2])  # grayscale repeated to RGB

    def test_ct_file_without_the_split(self, tmp_path):
        import h5py

        with h5py.File(tmp_path / "bad.h5", "w") as file:
            file["y_train"] = np.zeros((1, 1, 8, 8))
        with pytest.raises(ImageError, match="x_train"):
            read_ct_slices(tmp_path / "bad.h5", "train")

    def test_sample_split_is_fixed_and_offline(self):
        train, val = load_image_set("sample", "train"), load_image_set("sample", "val")
        assert train.names == list(SAMPLE_SPLITS["train"]) and val.names == list(SAMPLE_SPLITS["val"])
        assert not set(train.names) & set(val.names)
        assert all(min(image.shape[-2:]) == 256 and image.shape[0] == 3 for image in train.images + val.images)

    def test_sample_photograph_without_its_package(self, monkeypatch):
        monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # as if scikit-learn were not installed
        with pytest.raises(ResourceUnavailableError, match="pip install scikit-learn"):
            sources.sample_image("china")

    def test_unknown_name(self, tmp_path):
        with pytest.raises(UnknownNameError, match="div2k"):
            load_image_set("imagenet", "train", tmp_path)
        with pytest.raises(ConfigError, match="split"):
            load_image_set("sample", "test")


class TestFolders:
    def test_mixed_folder(self, tmp_path):
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(tmp_path / "rgb.png")
        Image.fromarray(rng.integers(0, 256, (20, 30), dtype=np.uint8)).save(tmp_path / "gray.png")
        Image.fromarray(rng.integers(0, 256, (20, 30, 4), dtype=np.uint8), mode="RGBA").save(tmp_path / "rgba.png")
        (tmp_path / "broken.png").write_bytes(b"not an image")
        images = load_image_set(tmp_path)
        assert images.names == ["gray", "rgb", "rgba"]
        assert all(image.shape == (3, 20, 30) for image in images.images)  # folders keep their size
        assert [Path(p).name for p, _ in images.skipped] == ["broken.png"]
        assert load_image_set(tmp_path, resize=10).images[0].shape == (3, 10, 15)

    def test_measurement_folder(self, tmp_path):
        Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(tmp_path / "blurry.png")
        images = load_image_set(tmp_path, ground_truth=False)
        assert not images.ground_truth

    def test_folder_without_readable_images(self, tmp_path):
        (tmp_path / "a.png").write_bytes(b"junk")
        with pytest.raises(ImageError, match="no readable images"):
            load_image_set(tmp_path)


def tiny_set(sizes, ground_truth=True) -> ImageSet:
    generator = torch.Generator().manual_seed(0)
    images = [torch.rand(3, h, w, generator=generator) for h, w in sizes]
    return ImageSet("tiny", [f"im{i}" for i in range(len(sizes))], images, ground_truth)


class TestMeasurements:
    def test_noise_is_seeded_by_the_image_index(self):
        physics = make_physics("deblurring", kernel="Box_R2", noise_level=5)
        images = tiny_set([(24, 24), (24, 24)])
        images.images[1] = images.images[0].clone()
        first, second = MeasurementSet(images, physics), MeasurementSet(images, physics)
        assert torch.equal(first.measurements[0], second.measurements[0])
        assert not torch.equal(first.measurements[0], first.measurements[1])  # same image, other index
        noise = first.measurements[0] - physics.A(images.images[0][None])[0]
        assert noise.std().item() == pytest.approx(5 / 255, rel=0.1)

    def test_super_resolution_pairs_are_aligned(self):
        physics = make_physics("sr", sr_factor=2, noise_level=0)
        measurements = MeasurementSet(tiny_set([(41, 50)]), physics)
        assert measurements.targets[0].shape == (3, 40, 50)
        assert measurements.measurements[0].shape == (3, 20, 25)
        dataset = CropDataset(measurements, crop_size=8)
        item = dataset[(0, 0)]
        assert item["y"].shape == (3, 8, 8) and item["x"].shape == (3, 16, 16)
        # the crop's measurement matches the measurement of the crop away from the crop border
        assert torch.allclose(physics.A(item["x"][None])[0][:, 2:-2, 2:-2], item["y"][:, 2:-2, 2:-2], atol=1e-5)

    def test_crops_are_reproducible_and_differ_across_epochs(self):
        measurements = MeasurementSet(tiny_set([(40, 40), (40, 40)]), make_physics("deblurring", kernel="Box_R2"))
        dataset = CropDataset(measurements, 16, seed=3)
        assert torch.equal(dataset[(0, 1)]["y"], CropDataset(measurements, 16, seed=3)[(0, 1)]["y"])
        assert not torch.equal(dataset[(0, 1)]["y"], dataset[(1, 1)]["y"])
        assert not torch.equal(dataset[(0, 1)]["y"], CropDataset(measurements, 16, seed=4)[(0, 1)]["y"])

    def test_images_smaller_than_the_crop(self):
        measurements = MeasurementSet(tiny_set([(40, 40), (20, 60)]), make_physics("deblurring", kernel="Box_R2"))
        with pytest.warns(UserWarning, match="im1"):
            dataset = CropDataset(measurements, 32)
        assert dataset.usable == [0] and len(dataset) == 1
        with pytest.raises(ImageTooSmallError, match="--crop-size"):
            CropDataset(measurements, 64)

    def test_signal_sampling_favours_the_bright_structures(self):
        # a dark 96 x 96 field with one bright 24 x 24 square: uniform crops of 16 rarely touch it
        field = torch.zeros(1, 96, 96)
        field[:, 60:84, 12:36] = 1.0
        measurements = MeasurementSet(ImageSet("dark", ["field"], [field], False),
                                      make_physics("deblurring", kernel="Box_R2"))
        def on_signal(sampling):
            dataset = CropDataset(measurements, 16, samples_per_epoch=400, sampling=sampling)
            crops = [dataset[(0, k)]["y"] for k in range(400)]
            assert all(crop.shape == (1, 16, 16) for crop in crops)
            return sum(crop.sum().item() > 0 for crop in crops) / len(crops)
        uniform, signal = on_signal("uniform"), on_signal("signal")
        assert uniform < 0.25
        # half the crops follow the signal (all touching it) and the other half stay uniform
        assert signal > 0.5 + uniform / 2 - 0.1
        dataset = CropDataset(measurements, 16, seed=5, sampling="signal")
        assert torch.equal(dataset[(2, 0)]["y"], CropDataset(measurements, 16, seed=5, sampling="signal")[(2, 0)]["y"])

    def test_signal_sampling_of_a_flat_image_is_uniform(self):
        measurements = MeasurementSet(ImageSet("flat", ["f"], [torch.ones(1, 40, 40)], False),
                                      make_physics("sr", sr_factor=2))
        dataset = CropDataset(measurements, 16, sampling="signal")
        assert dataset.weights[0] is None  # no signal anywhere: its crops stay uniform
        assert dataset[(0, 0)]["y"].shape == (1, 16, 16)

    def test_unknown_crop_sampling(self):
        measurements = MeasurementSet(tiny_set([(30, 30)], ground_truth=False), make_physics("sr", sr_factor=2))
        with pytest.raises(UnknownNameError, match="crop sampling 'random'"):
            CropDataset(measurements, 16, sampling="random")

    def test_measurement_only_items_have_no_target(self):
        measurements = MeasurementSet(tiny_set([(30, 30)], ground_truth=False), make_physics("sr", sr_factor=2))
        assert not measurements.has_ground_truth
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert set(CropDataset(measurements, 16)[(0, 0)]) == {"y", "borders"}


class TestEpochSampler:
    def test_ranks_split_each_epoch(self):
        ranks = [list(EpochSampler(10, seed=1, rank=r, world_size=2)) for r in range(2)]
        samples = [[s for _, s in keys] for keys in ranks]
        assert len(samples[0]) == len(samples[1]) == 5
        assert sorted(samples[0] + samples[1]) == list(range(10))

    def test_uneven_split_wraps_around(self):
        keys = [list(EpochSampler(7, rank=r, world_size=3)) for r in range(3)]
        assert all(len(k) == 3 for k in keys)
        assert set(s for k in keys for _, s in k) == set(range(7))

    def test_epochs_reshuffle_reproducibly(self):
        sampler = EpochSampler(20, seed=5)
        first = list(sampler)
        sampler.set_epoch(1)
        second = list(sampler)
        assert all(epoch == 1 for epoch, _ in second)
        assert [s for _, s in first] != [s for _, s in second]
        again = EpochSampler(20, seed=5)
        again.set_epoch(1)
        assert list(again) == second
