"""Volumes: the 3-D phantom, and the classical restorers (Richardson-Lucy with its stopping rule, Wiener) through a
3-D PSF."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sei.core.errors import ConfigError, ImageError, ImageTooSmallError, ShapeError
from sei.data.phantoms import BACKGROUND, fluorescence_phantom
from sei.inference.baselines.richardson_lucy import RichardsonLucy, tv_subgradient
from sei.physics import FFTBlur
from sei.physics.noise import PoissonGaussianNoise
from sei.physics.psf3d import widefield_psf_3d


def psnr(estimate: torch.Tensor, truth: torch.Tensor) -> float:
    return float(10 * torch.log10(truth.max() ** 2 / ((estimate - truth) ** 2).mean()))


@pytest.fixture(scope="module")
def psf() -> torch.Tensor:
    # 100 nm pixels, 300 nm planes: three times coarser along z, the usual widefield stack
    return widefield_psf_3d(wavelength=520, numerical_aperture=1.3, pixel_size=100, z_step=300, planes=9, size=11)


class TestPhantom:
    def test_beads_filaments_and_shells_over_a_dim_background(self):
        volume = fluorescence_phantom((16, 40, 48), seed=1)
        assert volume.shape == (16, 40, 48) and float(volume.max()) == pytest.approx(1.0)
        assert 0.5 * BACKGROUND < float(volume.flatten().quantile(0.25)) < 2 * BACKGROUND
        assert 0.02 < float((volume > 0.3).float().mean()) < 0.4  # sparse structures, not a filled volume

    def test_the_seed_fixes_the_layout(self):
        assert torch.equal(fluorescence_phantom((8, 24, 24), seed=3), fluorescence_phantom((8, 24, 24), seed=3))
        assert not torch.equal(fluorescence_phantom((8, 24, 24), seed=3), fluorescence_phantom((8, 24, 24), seed=4))

    def test_anisotropy_keeps_a_shell_round_in_physical_units(self):
        volume = fluorescence_phantom((12, 48, 48), seed=0, anisotropy=3.0, beads=0, filaments=0, shells=1)
        bright = (volume > 0.3).nonzero().float()
        spans = bright.max(0).values - bright.min(0).values
        assert spans[0] * 3.0 == pytest.approx(spans[1], abs=4)  # z span x z-step = lateral span

    @pytest.mark.parametrize("shape, anisotropy", [((4, 32, 32), 1.0), ((8, 32, 32), 0.0)])
    def test_bad_parameters(self, shape, anisotropy):
        with pytest.raises(ConfigError):
            fluorescence_phantom(shape, anisotropy=anisotropy)


class TestRichardsonLucyInThreeDimensions:
    def test_restores_a_widefield_stack_and_stops_by_itself(self, psf):
        truth = fluorescence_phantom((20, 40, 40), seed=2, anisotropy=3.0)[None, None]
        physics = FFTBlur(psf, boundary="reflect", noise_model=PoissonGaussianNoise(gain=1 / 100, noise_level=1.0))
        y = physics(truth, generator=torch.Generator().manual_seed(0))
        rl = RichardsonLucy(physics, iterations=300)
        estimate = rl(y)
        assert estimate.shape == truth.shape and bool((estimate > 0).all())
        assert psnr(estimate, truth) > psnr(y, truth) + 0.5  # +1.0 dB measured (the rule stops early)
        assert 1 <= int(rl.stopped_at[0]) < 300

    def test_a_volume_through_a_2d_psf_is_refused(self, psf):
        rl = RichardsonLucy(FFTBlur(psf, noise_model=PoissonGaussianNoise(gain=0.01)))
        with pytest.raises(ShapeError, match=r"3-D PSF must have shape \(B, C, D, H, W\) \(volumes\)"):
            rl(torch.rand(1, 1, 32, 32))
        with pytest.raises(ImageError, match="larger than the image"):
            rl(torch.rand(1, 1, 6, 32, 32))

    def test_tv_subgradient_in_3d_is_the_gradient_of_smoothed_tv(self):
        x = torch.rand(1, 1, 4, 5, 6, dtype=torch.float64, requires_grad=True)
        epsilon = 1e-3
        gradients = [torch.nn.functional.pad(x.diff(dim=axis), [0, 0] * (4 - axis) + [0, 1] + [0, 0] * (axis - 2))
                     for axis in (2, 3, 4)]
        tv = torch.sqrt(sum(g**2 for g in gradients) + epsilon**2).sum()
        (expected,) = torch.autograd.grad(tv, x)
        assert torch.allclose(tv_subgradient(x.detach(), epsilon), expected, atol=1e-10)


def test_tv_of_a_volume_smooths_along_z_too():
    """3-D TV: a step along z survives, noise along z is removed (a per-plane TV would leave it)."""
    from sei.inference.baselines.iterative import TVProximal

    generator = torch.Generator().manual_seed(0)
    clean = torch.zeros(1, 1, 12, 8, 8)
    clean[:, :, 6:] = 1.0
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=generator)
    denoised = TVProximal(iterations=300)(noisy, 0.1)
    assert (denoised - clean).norm() < 0.5 * (noisy - clean).norm()
    z_noise = (denoised[:, :, :5].mean((-1, -2)) - denoised[:, :, :5].mean()).abs().max()
    assert z_noise < 0.02


@pytest.fixture(scope="module")
def stack_folder(tmp_path_factory, psf):
    """A 16-bit z-stack (ImageJ hyperstack, 12 x 40 x 40) of the phantom through the widefield PSF with Poisson-Gaussian
    noise, its PSF file, and the clean volume in the same units."""
    import numpy as np
    import tifffile

    from sei.physics.kernels import write_kernel

    root = tmp_path_factory.mktemp("stacks")
    truth = fluorescence_phantom((12, 40, 40), seed=2, anisotropy=3.0)
    physics = FFTBlur(psf, noise_model=PoissonGaussianNoise(gain=0.01, noise_level=1.0))
    y = physics(truth[None, None], generator=torch.Generator().manual_seed(0))[0, 0]
    (root / "blurry").mkdir()
    tifffile.imwrite(root / "blurry" / "cells.tif", np.round(y.clamp(0, 1).numpy() * 65535).astype(np.uint16),
                     imagej=True, metadata={"axes": "ZYX", "spacing": 0.3, "unit": "micron"}, resolution=(10.0, 10.0))
    write_kernel(psf, root / "psf.npy")
    return root, truth


class TestVolumeWorkflow:
    """A z-stack through a 3-D PSF is one volume from reading to writing: training crops, the 3-D network, the restored
    stack; what cannot fit is refused in one line."""

    def test_a_stack_is_read_as_one_volume_and_cropped_in_3d(self, stack_folder):
        from sei.data.pairs import CropDataset, MeasurementSet
        from sei.data.sources import load_image_set

        root, _ = stack_folder
        images = load_image_set(root / "blurry", ground_truth=False, volumes=True)
        assert images.names == ["cells"] and images.images[0].shape == (1, 12, 40, 40)
        pages = load_image_set(root / "blurry", ground_truth=False)  # a 2-D PSF reads its planes as images
        assert len(pages) == 12 and pages.images[0].shape[-2:] == (40, 40)
        physics = FFTBlur(torch.ones(3, 3, 3))
        crops = CropDataset(MeasurementSet(images, physics), 16, seed=1, samples_per_epoch=4)
        thin = CropDataset(MeasurementSet(images, physics), 24, seed=1, samples_per_epoch=4)
        assert crops[(0, 0)]["y"].shape == (1, 12, 16, 16)  # 12 planes < 16: all of them
        assert thin[(0, 1)]["y"].shape == (1, 12, 24, 24)
        assert torch.equal(crops[(3, 2)]["y"], crops[(3, 2)]["y"])  # reproducible from (epoch, sample)

    def test_crops_are_drawn_through_the_operators_symmetries(self, stack_folder):
        from sei.core.errors import ConfigError
        from sei.data.pairs import CropDataset, MeasurementSet
        from sei.data.sources import load_image_set
        from sei.physics.symmetry import dihedral, dihedral_sides, operator_symmetries

        root, _ = stack_folder
        physics = FFTBlur(torch.ones(3, 3, 3) / 27)
        measurements = MeasurementSet(load_image_set(root / "blurry", ground_truth=False, volumes=True), physics)
        symmetries = operator_symmetries(physics)
        assert symmetries == tuple(range(16))
        plain = CropDataset(measurements, 16, seed=1, samples_per_epoch=40)
        turned = CropDataset(measurements, 16, seed=1, samples_per_epoch=40, symmetries=symmetries)
        drawn = set()
        for key in [(0, sample) for sample in range(40)]:
            crop, item = plain[key], turned[key]
            index = next(i for i in symmetries if torch.equal(dihedral(crop["y"], i), item["y"]))  # same crop
            assert torch.equal(dihedral_sides(crop["borders"], index), item["borders"])
            drawn.add(index)
        assert len(drawn) >= 8 and torch.equal(turned[(2, 5)]["y"], turned[(2, 5)]["y"])
        with pytest.raises(ConfigError, match="at least one transform"):
            CropDataset(measurements, 16, symmetries=())

    def test_train_then_restore_writes_a_better_stack_of_the_same_kind(self, stack_folder, tmp_path):
        import numpy as np
        import tifffile

        from sei.cli import main

        root, truth = stack_folder
        run = tmp_path / "run"
        assert main(["train", "--measurements", str(root / "blurry"), "--kernel", str(root / "psf.npy"),
                     "--noise", "poisson-gaussian", "--steps", "40", "--crop-size", "16", "--batch-size", "2",
                     "--out-dir", str(run), "--quiet"]) == 0
        config = (run / "config.yaml").read_text()
        assert "unet3d-small" in config and "spatial_dims: 3" in config
        out = tmp_path / "restored.tif"
        assert main(["restore", str(root / "blurry" / "cells.tif"), str(out), "--weights", str(run), "--quiet"]) == 0
        with tifffile.TiffFile(out) as tiff:
            restored = tiff.asarray()
            assert restored.dtype == np.uint16 and restored.shape == (12, 40, 40)
            assert tiff.imagej_metadata.get("spacing") == pytest.approx(0.3)
        blurry = torch.from_numpy(tifffile.imread(root / "blurry" / "cells.tif").astype(np.float32) / 65535)
        estimate = torch.from_numpy(restored.astype(np.float32) / 65535)
        assert psnr(estimate, truth) > psnr(blurry, truth) + 0.1  # 19.67 -> 19.90 dB measured after 40 steps

    @pytest.mark.parametrize("flags, message", [
        (["--model", "unet-small"], "backbone 'unet-small' restores images, and this run measures volumes"),
        (["--method", "ei-shift"], "method 'ei-shift' is written for images; on volumes use one of sei"),
        (["--crop-size", "6"], "crop of cells is smaller than the PSF"),
    ])
    def test_what_does_not_fit_a_volume_is_refused_in_one_line(self, stack_folder, tmp_path, capsys, flags, message):
        from sei.cli import main

        root, _ = stack_folder
        code = main(["train", "--measurements", str(root / "blurry"), "--kernel", str(root / "psf.npy"),
                     "--noise", "poisson-gaussian", "--steps", "2", "--out-dir", str(tmp_path / "r"), "--quiet",
                     *flags])
        error = capsys.readouterr().err
        assert code == 2 and message in error and "Traceback" not in error

    def test_a_psf_longer_than_the_stack_is_refused(self, stack_folder, tmp_path, capsys):
        from sei.cli import main
        from sei.physics.kernels import write_kernel

        root, _ = stack_folder
        write_kernel(torch.ones(15, 5, 5), tmp_path / "long.npy")
        code = main(["train", "--measurements", str(root / "blurry"), "--kernel", str(tmp_path / "long.npy"),
                     "--steps", "2", "--out-dir", str(tmp_path / "r"), "--quiet"])
        error = capsys.readouterr().err
        assert code == 2 and "PSF (15x5x5 voxels, z y x) is larger than the stack cells (12x40x40)" in error

    def test_a_psf_made_for_other_voxels_is_refused_in_training_and_restoring(self, stack_folder, tmp_path, capsys):
        from sei.cli import main
        from sei.io.voxels import VoxelSize, write_psf_voxel_size
        from sei.physics.kernels import write_kernel

        root, _ = stack_folder  # its stack states 0.3 um planes of 0.1 um pixels
        kernel = write_kernel(torch.ones(3, 5, 5), tmp_path / "psf.npy")
        write_psf_voxel_size(kernel, VoxelSize(0.5, 0.1, 0.1))
        common = ["--kernel", str(kernel), "--noise", "poisson-gaussian", "--quiet"]
        code = main(["train", "--measurements", str(root / "blurry"), "--steps", "2", "--out-dir",
                     str(tmp_path / "r"), *common])
        message = "the stack cells has voxels of 0.3 x 0.1 x 0.1 um (z y x) and its PSF was made for 0.5 x 0.1 x 0.1"
        assert code == 2 and message in capsys.readouterr().err
        code = main(["restore", str(root / "blurry" / "cells.tif"), str(tmp_path / "out.tif"), "--model-kind", "rl",
                     *common])
        assert code == 2 and "cells.tif has voxels of 0.3" in capsys.readouterr().err
        write_psf_voxel_size(kernel, VoxelSize(0.3, 0.1, 0.1))  # the stack's own sampling: restored
        assert main(["restore", str(root / "blurry" / "cells.tif"), str(tmp_path / "out.tif"), "--model-kind", "rl",
                     *common]) == 0

    def test_volumes_default_to_smaller_batches_of_crops_that_hold_the_psf(self, stack_folder, tmp_path):
        from sei.config.resolve import resolve
        from sei.config.schema import ExperimentConfig, from_flat
        from sei.core.defaults import VOLUME_BATCH_SIZE, VOLUME_CROP_SIZE
        from sei.physics.kernels import write_kernel

        root, _ = stack_folder
        write_kernel(torch.ones(9, 35, 35), tmp_path / "wide.npy")

        def resolved(kernel, **given):
            flat = {"data.dataset": str(root / "blurry"), "data.kind": "measurements", "physics.kernel": str(kernel),
                    "physics.noise": "poisson-gaussian", "train.steps": 2, **given}
            return resolve(from_flat(flat, ExperimentConfig())).data

        data = resolved(root / "psf.npy")
        assert (data.crop_size, data.batch_size) == (VOLUME_CROP_SIZE, VOLUME_BATCH_SIZE)
        from sei.config.recipe import GRAD_CLIP_MEDIAN  # and each step's norm bound by its recent median's

        flat = {"data.dataset": str(root / "blurry"), "data.kind": "measurements", "physics.kernel": str(root / "psf.npy")}
        assert resolve(from_flat(flat, ExperimentConfig())).train.grad_clip_median == GRAD_CLIP_MEDIAN
        wide = resolved(tmp_path / "wide.npy")  # four times its lateral margin of 17, in batches of one
        assert (wide.crop_size, wide.batch_size) == (68, 1)
        given = resolved(root / "psf.npy", **{"data.crop_size": 20, "data.batch_size": 3})
        assert (given.crop_size, given.batch_size) == (20, 3)

    def test_a_named_dataset_through_a_3d_psf_is_refused(self, stack_folder, tmp_path, capsys):
        from sei.cli import main

        root, _ = stack_folder
        code = main(["train", "--dataset", "sample", "--kernel", str(root / "psf.npy"), "--steps", "2",
                     "--out-dir", str(tmp_path / "r"), "--quiet"])
        assert code == 2 and "sample holds images, and a 3-D PSF blurs volumes" in capsys.readouterr().err


def test_sei_test_scores_z_stacks_through_a_3d_psf(tmp_path, psf, capsys):
    """Each clean stack measured once through the 3-D PSF, restored as one volume and scored: PSNR over its voxels,
    SSIM over its planes."""
    import csv

    import tifffile

    from sei.cli import main
    from sei.physics.kernels import write_kernel

    clean = tmp_path / "clean"
    clean.mkdir()
    for seed in (1, 2):
        volume = fluorescence_phantom((12, 40, 40), seed=seed, anisotropy=3.0)
        tifffile.imwrite(clean / f"cells{seed}.tif", np.round(volume.numpy() * 65535).astype(np.uint16), imagej=True,
                         metadata={"axes": "ZYX"})
    write_kernel(psf, tmp_path / "psf.npy")
    common = ["--kernel", str(tmp_path / "psf.npy"), "--noise", "poisson-gaussian", "--noise-level", "1", "--gain",
              "0.01", "--dataset", str(clean), "--quiet"]
    scores = {}
    for kind in ("identity", "richardson-lucy"):
        out = tmp_path / kind
        assert main(["test", "--model-kind", kind, *common, "--out-dir", str(out), "--save-images"]) == 0
        with open(out / "metrics.csv") as handle:
            rows = list(csv.DictReader(handle))
        assert [(r["name"], r["depth"], r["height"]) for r in rows] == [("cells1", "12", "40"), ("cells2", "12", "40")]
        scores[kind] = np.mean([float(r["psnr"]) for r in rows]), np.mean([float(r["ssim"]) for r in rows])
        assert tifffile.imread(out / "images" / "cells1_estimate.tif").shape == (12, 40, 40)
    assert scores["richardson-lucy"][0] > scores["identity"][0] + 0.5  # 20.8 against 19.6 dB measured on one
    assert scores["richardson-lucy"][1] > scores["identity"][1]
    assert "(2 images)" in capsys.readouterr().out
    assert main(["test", "--model-kind", "identity", *common, "--out-dir", str(tmp_path / "l"), "--lpips"]) == 2
    assert "LPIPS scores photographs, not z-stacks" in capsys.readouterr().err


def test_orthogonal_views_show_sections_and_projections_with_z_at_its_length():
    from sei.report import orthogonal_views

    volume = np.zeros((3, 5, 7))
    volume[1, 2, 3] = 1.0  # the centre voxel
    volume[0, 0, 0] = 2.0  # off every central section, on every projection
    section, projection = orthogonal_views(volume, "section", z_scale=2), orthogonal_views(volume, "max", z_scale=2)
    assert section.shape == projection.shape == (5 + 1 + 6, 7 + 1 + 6)
    assert section.max() == 1.0 and projection.max() == 2.0
    assert section[2, 3] == 1.0 and section[2, 8 + 2] == section[2, 8 + 3] == 1.0  # yz: planes 1 -> columns 2, 3
    assert projection[0, 0] == 2.0 and projection[6, 0] == projection[7, 0] == 2.0  # xz: plane 0 -> rows 6, 7


def test_the_report_shows_a_restored_stack_as_orthogonal_views(stack_folder, tmp_path):
    from sei.cli import main

    root, _ = stack_folder
    restored = tmp_path / "restored"
    assert main(["restore", str(root / "blurry"), str(restored), "--model-kind", "wiener", "--kernel",
                 str(root / "psf.npy"), "--quiet"]) == 0
    assert main(["report", str(restored), "--out", str(tmp_path / "report.html")]) == 0
    page = (tmp_path / "report.html").read_text()
    assert "cells.tif (sections)" in page and "cells.tif (max projections)" in page
    assert "z-stacks as orthogonal views" in page


class TestStacksTooLargeToHold:
    """A z-stack whose float32 copy would not fit is read, restored and written a chunk of planes at a time."""

    @staticmethod
    def restore_both(root, tmp_path, reconstruct, chunk=5, overlap=2):
        """The stack restored whole and by chunks: the two files' arrays, and the chunked file's path."""
        import tifffile

        from sei.inference.restoration import restore_file, restore_stack_by_chunks
        from sei.io.images import read_stack_header

        source = root / "blurry" / "cells.tif"
        whole, chunked = tmp_path / "whole.tif", tmp_path / "chunked.tif"
        restore_file(reconstruct, source, whole, volumes=True)
        restore_stack_by_chunks(reconstruct, read_stack_header(source), chunked, chunk=chunk, overlap=overlap)
        return tifffile.imread(whole), tifffile.imread(chunked), chunked

    def test_a_planewise_restorer_gives_the_same_file_as_restoring_whole(self, stack_folder, tmp_path):
        import tifffile

        root, _ = stack_folder
        whole, chunked, path = self.restore_both(root, tmp_path, lambda y: (0.8 * y + 0.05).clamp(0, 1))
        assert chunked.dtype == np.uint16 and np.array_equal(whole, chunked)
        with tifffile.TiffFile(path) as tiff, tifffile.TiffFile(tmp_path / "whole.tif") as reference:
            assert tiff.imagej_metadata["spacing"] == pytest.approx(0.3) and tiff.series[0].axes == "ZYX"
            assert tiff.pages[0].resolution == reference.pages[0].resolution

    def test_a_3d_restorer_blends_its_chunks_along_z(self, tmp_path, psf):
        import tifffile

        from sei.inference.baselines.richardson_lucy import RichardsonLucy

        truth = fluorescence_phantom((40, 24, 24), seed=3, anisotropy=3.0)
        physics = FFTBlur(psf, boundary="reflect", noise_model=PoissonGaussianNoise(gain=0.01, noise_level=1.0))
        y = physics(truth[None, None], generator=torch.Generator().manual_seed(0))[0, 0]
        (tmp_path / "blurry").mkdir()
        tifffile.imwrite(tmp_path / "blurry" / "cells.tif", np.round(y.clamp(0, 1).numpy() * 65535).astype(np.uint16),
                         imagej=True, metadata={"axes": "ZYX"})
        restorer = RichardsonLucy(physics, iterations=10, stop="iterations")
        whole, chunked, _ = self.restore_both(tmp_path, tmp_path, restorer, chunk=20, overlap=8)  # 3 chunks, PSF 9
        whole, chunked = (torch.from_numpy(a.astype(np.float32) / 65535) for a in (whole, chunked))
        assert psnr(chunked, whole) > 50  # 53.5 dB measured (butted chunks, overlap 0: 44.3)
        assert abs(psnr(chunked, truth) - psnr(whole, truth)) < 0.03  # 0.008 measured

    def test_restore_file_chunks_a_stack_larger_than_its_bound(self, stack_folder, tmp_path, monkeypatch):
        import sei.inference.restoration as restoration

        root, _ = stack_folder
        calls = []
        chunked = restoration.restore_stack_by_chunks
        monkeypatch.setattr(restoration, "restore_stack_by_chunks",
                            lambda *args, **kwargs: calls.append(args[1].shape) or chunked(*args, **kwargs))
        source = root / "blurry" / "cells.tif"
        restoration.restore_file(lambda y: y, source, tmp_path / "a.tif", volumes=True)
        assert calls == []  # 12 x 40 x 40 float32: 77 kB, held whole
        restoration.restore_file(lambda y: y, source, tmp_path / "b.tif", volumes=True, chunk_bytes=50_000)
        assert calls == [(12, 40, 40)]

    def test_only_planes_spread_over_a_large_stack_are_read_for_its_map_and_noise(self, stack_folder, monkeypatch):
        import sei.io.images as images

        root, _ = stack_folder
        source = root / "blurry" / "cells.tif"
        header = images.read_stack_header(source)
        assert header.shape == (12, 40, 40) and header.dtype == np.uint16
        assert not header.too_large_to_hold() and header.too_large_to_hold(50_000)
        assert len(images.read_image_sample(source).pages) == 12
        monkeypatch.setattr(images, "STACK_CHUNK_BYTES", 50_000)
        monkeypatch.setattr(images, "STACK_SAMPLE_PLANES", 4)
        sample = images.read_image_sample(source)
        full = images.read_image_file(source).pages
        assert len(sample.pages) == 4 and np.array_equal(sample.pages[-1], full[-1])
        assert np.array_equal(sample.pages[1], full[4])  # planes 0, 4, 7, 11

    def test_training_reads_a_stack_too_large_to_hold_as_blocks_spread_over_it(self, stack_folder, tmp_path,
                                                                               monkeypatch, caplog):
        import sei.io.images as images
        from sei.cli import main
        from sei.data.sources import load_image_set

        root, _ = stack_folder  # 12 x 40 x 40
        source = root / "blurry" / "cells.tif"
        stack = np.stack(images.read_image_file(source).pages)
        monkeypatch.setattr(images, "STACK_CHUNK_BYTES", 4 * 12 * 40 * 30)  # 3/4 of the stack
        monkeypatch.setattr(images, "STACK_MIN_BLOCKS", 2)  # blocks of 12 x 24 x 24 on a 2 x 2 grid: 2 of them
        blocks = images.read_stack_header(source).blocks()
        assert [corner for corner, _ in blocks] == [(0, 0, 0), (0, 16, 16)]  # the first and the last of the grid
        for (z, y, x), planes in blocks:
            assert np.array_equal(np.stack(planes), stack[z:z + 12, y:y + 24, x:x + 24])
        assert images.StackHeader.block_grid((200, 64, 64), 2 * 48 * 64 * 64, 48) == [
            (0, 0, 0, 48, 64, 64), (152, 0, 0, 48, 64, 64)]  # whole planes when they fit: slabs spread along z
        measured = load_image_set(root / "blurry", ground_truth=False, volumes=True)
        assert measured.names == ["cells_z0_y0_x0", "cells_z0_y16_x16"]
        assert [tuple(v.shape) for v in measured.images] == [(1, 12, 24, 24)] * 2
        assert "read as 2 blocks of 12x24x24 spread over it (72% of its voxels)" in caplog.text
        assert main(["train", "--measurements", str(root / "blurry"), "--kernel", str(root / "psf.npy"), "--noise",
                     "poisson-gaussian", "--gain", "0.01", "--noise-level", "1", "--steps", "2", "--crop-size", "16",
                     "--batch-size", "2", "--out-dir", str(tmp_path / "run"), "--quiet"]) == 0

    def test_a_file_that_is_not_one_z_stack_has_no_stack_header(self, tmp_path):
        import tifffile

        from sei.io.images import read_stack_header

        tifffile.imwrite(tmp_path / "plane.tif", np.zeros((8, 8), np.uint16))
        tifffile.imwrite(tmp_path / "series.tif", np.zeros((3, 2, 8, 8), np.uint16), imagej=True,
                         metadata={"axes": "TZYX"})
        tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((8, 8, 3), np.uint8), photometric="rgb")
        assert all(read_stack_header(tmp_path / name) is None for name in ("plane.tif", "series.tif", "rgb.tif"))
        assert read_stack_header(tmp_path / "photo.png") is None


@pytest.fixture(scope="module")
def axial_folder(tmp_path_factory):
    """An isotropic 16-bit stack (24 x 40 x 40 voxels of 150 nm), its PSF sampled likewise, and its measurement
    by ``sei degrade`` keeping every 2nd plane (a 300 nm z-step) with Poisson-Gaussian noise."""
    import tifffile

    from sei.cli import main
    from sei.io.voxels import VoxelSize, write_psf_voxel_size
    from sei.physics.kernels import write_kernel

    root = tmp_path_factory.mktemp("axial")
    psf = widefield_psf_3d(wavelength=520, numerical_aperture=1.3, pixel_size=150, z_step=150, planes=15, size=9)
    write_psf_voxel_size(write_kernel(psf, root / "psf.npy"), VoxelSize(0.15, 0.15, 0.15))
    truth = fluorescence_phantom((24, 40, 40), seed=2, anisotropy=1.0)
    (root / "clean").mkdir()
    tifffile.imwrite(root / "clean" / "cells.tif", np.round(truth.numpy() * 65535).astype(np.uint16), imagej=True,
                     metadata={"axes": "ZYX", "spacing": 0.15, "unit": "micron"}, resolution=(1 / 0.15, 1 / 0.15))
    assert main(["degrade", str(root / "clean"), str(root / "measured"), "--task", "sr", "--sr-factor", "2",
                 "--kernel", str(root / "psf.npy"), "--noise", "poisson-gaussian", "--gain", "0.01", "--noise-level",
                 "1", "--quiet"]) == 0
    return root, truth, psf


def stack_psnr(path, truth: torch.Tensor) -> float:
    import tifffile

    return psnr(torch.from_numpy(tifffile.imread(path).astype(np.float32) / 65535), truth)


class TestAxialSuperResolution:
    """A stack stepped ``r`` times more coarsely along z than its PSF is sampled: ``sei degrade`` keeps every r-th
    plane, a network trained on the measurement alone restores r times the planes, written with their spacing."""

    def test_degrade_keeps_every_rth_plane_and_records_the_coarser_step(self, axial_folder):
        import tifffile
        import yaml

        root, truth, psf = axial_folder
        with tifffile.TiffFile(root / "measured" / "cells.tif") as tiff:
            measured = torch.from_numpy(tiff.asarray().astype(np.float32) / 65535)
            assert measured.shape == (12, 40, 40) and tiff.imagej_metadata["spacing"] == pytest.approx(0.3)
        record = yaml.safe_load((root / "measured" / "degradation.yaml").read_text())
        assert (record["task"], record["sr_factor"], record["spatial_dims"]) == ("sr", 2, 3)
        kept = FFTBlur(psf).A(truth[None, None])[0, 0, 0::2]  # every 2nd plane from the first
        # what is left is the recorded noise: Poisson of gain 0.01 plus Gaussian of 1/255
        variance = 0.01 * kept.clamp(min=0) + (1 / 255) ** 2
        assert 0.9 < float(((measured - kept) ** 2 / variance).mean()) < 1.1

    def test_richardson_lucy_restores_the_planes_between_better_than_interpolation(self, axial_folder):
        from sei.core.scaling import interpolate_up
        from sei.physics import make_physics

        root, truth, psf = axial_folder
        physics = make_physics("sr", kernel=psf, sr_factor=2, noise="poisson-gaussian", noise_level=1, gain=0.01)
        y = physics(truth[None, None], generator=torch.Generator().manual_seed(0))
        estimate = RichardsonLucy(physics)(y)[0, 0]
        assert estimate.shape == truth.shape
        # 20.3 against 19.2 dB measured; the odd planes, which no measurement holds, improve too
        assert psnr(estimate, truth) > psnr(interpolate_up(y, 2)[0, 0], truth) + 0.5
        assert psnr(estimate[1::2], truth[1::2]) > psnr(interpolate_up(y, 2)[0, 0, 1::2], truth[1::2])

    def test_train_then_restore_writes_twice_the_planes_at_half_the_spacing(self, axial_folder, tmp_path):
        import tifffile

        from sei.cli import main

        root, truth, _ = axial_folder
        run = tmp_path / "run"
        assert main(["train", "--measurements", str(root / "measured"), "--steps", "120", "--crop-size", "16",
                     "--batch-size", "2", "--out-dir", str(run), "--quiet"]) == 0
        config = (run / "config.yaml").read_text()
        assert "unet3d-small" in config and "sr_factor: 2" in config and "spatial_dims: 3" in config
        scores = {}
        for kind, flags in (("network", ["--weights", str(run)]), ("bicubic", ["--model-kind", "bicubic"])):
            out = tmp_path / f"{kind}.tif"
            assert main(["restore", str(root / "measured" / "cells.tif"), str(out), *flags, "--quiet"]) == 0
            with tifffile.TiffFile(out) as tiff:
                assert tiff.asarray().shape == (24, 40, 40) and tiff.asarray().dtype == np.uint16
                assert tiff.imagej_metadata["spacing"] == pytest.approx(0.15)
            scores[kind] = stack_psnr(out, truth)
        assert scores["network"] > scores["bicubic"] + 0.2  # 18.73 against 18.37 dB measured after 120 steps

    def test_sei_test_scores_the_restored_planes_against_the_finer_stack(self, axial_folder, tmp_path):
        import csv

        from sei.cli import main

        root, _, _ = axial_folder
        common = ["--task", "sr", "--sr-factor", "2", "--kernel", str(root / "psf.npy"), "--noise", "poisson-gaussian",
                  "--noise-level", "1", "--gain", "0.01", "--dataset", str(root / "clean"), "--quiet"]
        scores = {}
        for kind in ("bicubic", "richardson-lucy"):
            assert main(["test", "--model-kind", kind, *common, "--out-dir", str(tmp_path / kind)]) == 0
            with open(tmp_path / kind / "metrics.csv") as handle:
                (row,) = list(csv.DictReader(handle))
            assert (row["depth"], row["height"]) == ("24", "40")  # the finer stack's planes
            scores[kind] = float(row["psnr"])
        assert scores["richardson-lucy"] > scores["bicubic"] + 0.5

    def test_the_ensemble_keeps_the_lateral_symmetries_and_drops_the_z_flips(self):
        """Keeping every 3rd plane from the first does not commute with reversing the planes' order; flips and
        quarter turns of each plane do, for a PSF that has them."""
        from sei.physics.symmetry import commutes
        from sei.physics import make_physics

        psf = widefield_psf_3d(wavelength=520, numerical_aperture=1.3, pixel_size=150, z_step=150, planes=5, size=9)
        assert [i for i in range(16) if commutes(make_physics("deblurring", kernel=psf), i)] == list(range(16))
        axial = make_physics("sr", kernel=psf, sr_factor=3)  # 5 planes: the test volume is 10 rounded up to 12
        assert [i for i in range(16) if commutes(axial, i)] == list(range(8))

    def test_a_crop_of_clean_stacks_is_checked_against_their_own_width(self, axial_folder):
        """Axial SR leaves a clean stack as wide as its measurement: a crop is checked against its width, not 1/r."""
        from sei.config.resolve import resolve
        from sei.config.schema import ExperimentConfig, from_flat
        from sei.data.sources import load_image_set
        from sei.training.datamodule import check_crop_fits

        root, _, _ = axial_folder
        images = load_image_set(root / "clean", ground_truth=True, volumes=True)

        def config(crop):
            flat = {"data.dataset": str(root / "clean"), "physics.task": "sr", "physics.sr_factor": 2,
                    "physics.kernel": str(root / "psf.npy"), "train.steps": 2, "data.crop_size": crop}
            return resolve(from_flat(flat, ExperimentConfig()))

        check_crop_fits(config(32), images)  # 40 px wide: fits (it was taken as 20 px before)
        with pytest.raises(ImageTooSmallError, match="shorter side of 40 px"):
            check_crop_fits(config(48), images)

    def test_a_stack_not_stepped_r_times_the_psf_is_refused(self, axial_folder, tmp_path, capsys):
        from sei.cli import main
        from sei.io.voxels import VoxelSize, write_psf_voxel_size
        from sei.physics.kernels import write_kernel

        root, _, psf = axial_folder  # the measurement states 0.3 um planes
        kernel = write_kernel(psf, tmp_path / "psf.npy")
        write_psf_voxel_size(kernel, VoxelSize(0.3, 0.15, 0.15))  # then its planes would be 0.6 um apart
        code = main(["restore", str(root / "measured" / "cells.tif"), str(tmp_path / "out.tif"), "--model-kind",
                     "rl", "--task", "sr", "--sr-factor", "2", "--kernel", str(kernel), "--quiet"])
        assert code == 2 and "PSF was made for" in capsys.readouterr().err

    def test_a_stack_too_large_to_hold_is_super_resolved_by_chunks_as_whole(self, axial_folder, tmp_path):
        import tifffile

        from sei.inference.baselines.classical import Identity
        from sei.inference.restoration import restore_file, restore_stack_by_chunks
        from sei.io.images import read_stack_header

        root, _, _ = axial_folder
        source = root / "measured" / "cells.tif"
        whole, chunked = tmp_path / "whole.tif", tmp_path / "chunked.tif"
        restore_file(Identity(2), source, whole, upscale=2, volumes=True)
        restore_stack_by_chunks(Identity(2), read_stack_header(source), chunked, upscale=2, chunk=5, overlap=2)
        for path in (whole, chunked):
            with tifffile.TiffFile(path) as tiff:
                assert tiff.asarray().shape == (24, 40, 40) and tiff.imagej_metadata["spacing"] == pytest.approx(0.15)
        assert np.array_equal(tifffile.imread(whole), tifffile.imread(chunked))
        assert np.array_equal(tifffile.imread(whole)[1::2], tifffile.imread(source))  # each plane, twice


@pytest.mark.parametrize("command", ["restore", "degrade"])
def test_one_image_through_a_3d_psf_is_refused_in_one_line(tmp_path, psf, capsys, command):
    import tifffile

    from sei.cli import main
    from sei.physics.kernels import write_kernel

    tifffile.imwrite(tmp_path / "one.tif", np.zeros((20, 20), np.uint16))
    write_kernel(psf, tmp_path / "psf.npy")
    words = (["restore", str(tmp_path / "one.tif"), str(tmp_path / "out.tif"), "--model-kind", "wiener"]
             if command == "restore" else ["degrade", str(tmp_path / "one.tif"), str(tmp_path / "out")])
    assert main([*words, "--kernel", str(tmp_path / "psf.npy"), "--noise-level", "2", "--quiet"]) == 2
    error = capsys.readouterr().err
    assert f"one image, and this operator's PSF is 3-D: {command} z-stacks" in error and "Traceback" not in error
