"""The napari plugin driven through its widgets in a real viewer: sample data, PSF, a short training run (and its
cancel, which leaves a run that resumes), restores identical to ``sei restore``'s, and errors as one-line
notifications."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import yaml

from sei.physics.spec import PhysicsSpec

WAIT_MS = 120_000
# A tiny run: the test's images are 48 x 48, trained a handful of steps with the smallest U-Net.
TINY = {"backbone": "unet-tiny", "crop_size": 24, "batch_size": 2}


@pytest.fixture
def viewer_and_widget(make_napari_viewer):
    """A viewer with the plugin's dock widget, opened as napari opens it from the Plugins menu (the manifest)."""
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("sei", "Scale-Equivariant Imaging")
    return viewer, widget


def wait_for(qtbot, panel) -> None:
    """Wait until the panel's worker has ended (its result, or its error, delivered in the viewer's thread)."""
    qtbot.waitUntil(lambda: panel.worker is None, timeout=WAIT_MS)


def blurry_cells(seed: int = 0) -> np.ndarray:
    """A 48 x 48 16-bit measurement: smooth blobs through a Gaussian blur, with noise."""
    from sei.physics.kernels import kernel_from_name

    generator = torch.Generator().manual_seed(seed)
    clean = torch.nn.functional.avg_pool2d(torch.rand(1, 1, 48, 48, generator=generator), 5, 1, 2)
    kernel = kernel_from_name("Gaussian_R1")[None, None]
    blurred = torch.nn.functional.conv2d(clean, kernel, padding=kernel.shape[-1] // 2)
    noisy = blurred + 0.01 * torch.randn(blurred.shape, generator=generator)
    return np.round(noisy[0, 0].clamp(0, 1).numpy() * 40000 + 1000).astype(np.uint16)


def add_measurements(viewer, name: str = "cells") -> tuple:
    from sei.physics.kernels import kernel_from_name

    image = viewer.add_image(blurry_cells(), name=name)
    psf = viewer.add_image(kernel_from_name("Gaussian_R1").numpy(), name="PSF Gaussian_R1")
    return image, psf


def set_up_training(panel, image, psf, steps: int, run: Path) -> None:
    """The Train tab on ``image`` with ``psf``: ``steps`` steps of the tiny network into the folder ``run``."""
    panel.measurements.value, panel.psf.value = [image], psf
    panel.time.value, panel.steps.value = "", steps
    panel.backbone.value, panel.crop_size.value, panel.batch_size.value = TINY.values()
    panel.out_dir.value = str(run)


def restored_by_the_library(array: np.ndarray, folder: Path, **options) -> np.ndarray:
    """What ``sei restore`` writes for ``array`` saved as a TIFF (sei.inference.restoration.restore)."""
    from sei.inference.restoration import restore

    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "input.tif"
    tifffile.imwrite(source, array)
    target = folder / "out" / "input.tif"
    restore(str(source), str(target), progress=False, **options)
    return tifffile.imread(target)


class TestSampleData:
    def test_the_photo_opens_blurred_with_its_clean_original_and_psf(self, make_napari_viewer):
        viewer = make_napari_viewer()
        viewer.open_sample("sei", "blurred-photo")
        clean, blurred, psf = (layer.data for layer in viewer.layers)
        assert blurred.dtype == np.uint8 and blurred.shape == clean.shape == (256, 256)
        assert 5 < np.abs(blurred.astype(float) - clean).mean() < 40  # blurred and noisy, still the photograph
        assert psf.shape == (13, 13) and psf.sum() == pytest.approx(1.0, abs=1e-5)


class TestPsf:
    def test_a_widefield_psf_is_the_cli_model_on_its_voxel_size(self, viewer_and_widget, qtbot):
        from sei.physics.psf import psf_with_sampling

        viewer, widget = viewer_and_widget
        panel = widget.psf
        panel.source.value = "widefield"
        values = {"wavelength": "520", "na": "1.4", "pixel_size": "100", "z_step": "250", "planes": "5", "size": "9"}
        for name, text in values.items():
            panel.fields[name].value = text
        assert panel.start() is not None
        wait_for(qtbot, panel)
        layer = viewer.layers[-1]
        expected, sampling = psf_with_sampling("widefield", wavelength=520, na=1.4, pixel_size=100, z_step=250,
                                               planes=5, size=9)
        np.testing.assert_array_equal(layer.data, expected.numpy())
        assert tuple(layer.scale) == pytest.approx((0.25, 0.1, 0.1)) and str(layer.units[0]) == "micrometer"

    def test_a_diffraction_psf_is_shown_on_its_pixel_size(self, viewer_and_widget, qtbot):
        from sei.physics.psf import make_psf

        viewer, widget = viewer_and_widget
        panel = widget.psf
        panel.source.value = "diffraction"
        for name, text in {"wavelength": "520", "na": "1.4", "pixel_size": "65", "size": "15"}.items():
            panel.fields[name].value = text
        assert panel.start() is not None
        wait_for(qtbot, panel)
        layer = viewer.layers[-1]
        expected = make_psf("diffraction", size=15, wavelength=520, na=1.4, pixel_size=65)
        np.testing.assert_array_equal(layer.data, expected.numpy())
        assert tuple(layer.scale) == pytest.approx((0.065, 0.065)) and str(layer.units[0]) == "micrometer"

    def test_a_kernel_file_loads_with_the_voxel_size_recorded_beside_it(self, viewer_and_widget, qtbot, tmp_path):
        from sei.io.voxels import VoxelSize
        from sei.physics.kernels import save_kernel

        viewer, widget = viewer_and_widget
        kernel = torch.rand(3, 5, 5)
        path, _ = save_kernel(kernel, tmp_path / "measured.npy", voxel_size=VoxelSize(0.4, 0.1, 0.1))
        widget.psf.source.value = "file"
        widget.psf.file.value = path
        widget.psf.start()
        wait_for(qtbot, widget.psf)
        layer = viewer.layers["PSF measured"]
        np.testing.assert_allclose(layer.data, (kernel / kernel.sum()).numpy(), rtol=1e-6)
        assert tuple(layer.scale) == pytest.approx((0.4, 0.1, 0.1))

    def test_a_bead_stack_becomes_the_psf_sei_psf_bead_makes(self, viewer_and_widget, qtbot, tmp_path):
        from sei.physics.psf3d import bead_psf_file

        viewer, widget = viewer_and_widget
        bead = np.full((9, 21, 21), 100, np.uint16)
        bead[4, 10, 11], bead[3:6, 9:12, 10:13] = 5000, 900
        tifffile.imwrite(tmp_path / "bead.tif", bead, imagej=True, resolution=(10.0, 10.0),
                         metadata={"axes": "ZYX", "spacing": 0.3, "unit": "micron"})
        panel = widget.psf
        panel.source.value, panel.file.value = "bead", tmp_path / "bead.tif"
        panel.fields["planes"].value, panel.fields["size"].value = "5", "7"
        panel.start()
        wait_for(qtbot, panel)
        expected, sampling = bead_psf_file(tmp_path / "bead.tif", 5, 7)
        layer = viewer.layers["PSF bead"]
        np.testing.assert_array_equal(layer.data, expected.numpy())
        assert tuple(layer.scale) == pytest.approx((0.3, 0.1, 0.1)) == (sampling.z, sampling.y, sampling.x)

    @pytest.mark.parametrize("source, fields, message", [
        ("gaussian", {}, "sei psf: error: a gaussian PSF needs --sigma"),
        ("gaussian", {"sigma": "two"}, "sei psf: error: --sigma: expected a number, got 'two'"),
        ("widefield", {"wavelength": "520", "na": "1.4", "pixel_size": "100"}, "needs --z-step"),
    ])
    def test_bad_parameters_are_a_one_line_notification(self, viewer_and_widget, qtbot, notifications, source,
                                                         fields, message):
        viewer, widget = viewer_and_widget
        widget.psf.source.value = source
        for name, text in fields.items():
            widget.psf.fields[name].value = text
        if widget.psf.start() is not None:
            wait_for(qtbot, widget.psf)
        assert len(viewer.layers) == 0
        assert [severity for severity, _ in notifications] == ["error"]
        assert message in notifications[0][1] and "\n" not in notifications[0][1]


class TestTrainAndRestore:
    def test_a_short_run_restores_as_sei_restore_does(self, viewer_and_widget, qtbot, tmp_path, notifications):
        viewer, widget = viewer_and_widget
        image, psf = add_measurements(viewer)
        panel = widget.train
        set_up_training(panel, image, psf, 4, tmp_path / "run")
        assert panel.start() is not None
        wait_for(qtbot, panel)
        assert not [n for n in notifications if n[0] == "error"], notifications
        run = tmp_path / "run"
        assert (run / "weights.pt").is_file() and (run / "config.yaml").is_file()
        assert panel.progress.value == panel.progress.max == 4
        assert len(panel._losses) == 4 and all(np.isfinite(loss) for _, loss in panel._losses)

        restore = widget.restore  # the trained network is chosen at once, on the layer it trained on
        assert restore.weights.value == str(run) and restore.image.value is image
        restore.start()
        wait_for(qtbot, restore)
        output = viewer.layers[-1]
        assert output.name == "cells restored (run)"
        assert output.data.dtype == np.uint16 and output.data.shape == image.data.shape
        assert tuple(output.contrast_limits) == tuple(image.contrast_limits)
        assert not np.array_equal(output.data, image.data)
        expected = restored_by_the_library(image.data, tmp_path, weights=str(run))  # its default: an ensemble
        np.testing.assert_array_equal(output.data, expected)

        restore.ensemble.value = "off"  # --no-ensemble
        restore.start()
        wait_for(qtbot, restore)
        single = restored_by_the_library(image.data, tmp_path / "single", weights=str(run), ensemble=False)
        np.testing.assert_array_equal(viewer.layers[-1].data, single)
        assert not np.array_equal(single, output.data)
        output = viewer.layers[-1]

        from sei.cli import main  # a zoo package that sei export wrote restores as its run does

        assert main(["export", str(run), str(tmp_path / "cells.zip"), "--author", "Test"]) == 0
        restore.ensemble.value, restore.weights.value = "off", str(tmp_path / "cells.zip")
        restore.start()
        wait_for(qtbot, restore)
        assert viewer.layers[-1].name == "cells restored (cells.zip)"
        np.testing.assert_array_equal(viewer.layers[-1].data, output.data)

    def test_super_resolution_trains_and_restores_on_the_finer_grid(self, viewer_and_widget, qtbot, tmp_path,
                                                                     notifications):
        viewer, widget = viewer_and_widget
        image, psf = add_measurements(viewer)
        image.scale = (0.2, 0.2)
        panel = widget.train
        set_up_training(panel, image, psf, 2, tmp_path / "run")
        panel.sr_factor.value = 2
        assert panel.start() is not None
        wait_for(qtbot, panel)
        assert not [n for n in notifications if n[0] == "error"], notifications
        config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
        assert config["physics"]["task"] == "sr" and config["physics"]["sr_factor"] == 2
        restore = widget.restore
        restore.start()
        wait_for(qtbot, restore)
        output = viewer.layers[-1]
        assert output.data.shape == (96, 96) and tuple(output.scale) == pytest.approx((0.1, 0.1))
        expected = restored_by_the_library(image.data, tmp_path, weights=str(tmp_path / "run"))
        np.testing.assert_array_equal(output.data, expected)

    def test_cancel_leaves_a_run_that_resumes_exactly(self, viewer_and_widget, qtbot, tmp_path):
        import json

        from sei.cli import main

        viewer, widget = viewer_and_widget
        image, psf = add_measurements(viewer)
        panel = widget.train
        set_up_training(panel, image, psf, 100_000, tmp_path / "run")
        panel.start()
        qtbot.waitUntil(lambda: len(panel._losses) >= 2, timeout=WAIT_MS)
        panel.cancel.clicked()
        wait_for(qtbot, panel)
        run = tmp_path / "run"
        summary = json.loads((run / "train_summary.json").read_text())
        done, epoch = summary["steps"], summary["steps"] // summary["epochs"]
        assert 2 <= done < 100_000 and done == torch.load(run / "checkpoints" / "last.ckpt")["global_step"]
        assert done % epoch == 0  # stopped where an epoch ends, where checkpoints resume exactly
        assert "cancelled" in panel.status.value and widget.restore.weights.value == str(run)
        # the command line continues it where it stopped, and so does the Train tab
        assert main(["train", "--out-dir", str(run), "--resume", "--steps", str(done + epoch), "--quiet"]) == 0
        assert json.loads((run / "train_summary.json").read_text())["steps"] == done + epoch
        panel.resume.value, panel.steps.value = True, done + 2 * epoch
        panel.start()
        wait_for(qtbot, panel)
        assert json.loads((run / "train_summary.json").read_text())["steps"] == done + 2 * epoch

    def test_a_shipped_network_restores_the_sample_as_sei_restore_does(self, viewer_and_widget, qtbot, tmp_path):
        viewer, widget = viewer_and_widget
        viewer.open_sample("sei", "blurred-photo")
        blurred = viewer.layers[1]
        blurred.data = blurred.data[96:160, 96:160]  # a 64 x 64 crop: quicker, and no tile seams to think about
        panel = widget.restore
        panel.published.value = "pretrained:photos-gaussian-r2"
        assert panel.weights.value == "pretrained:photos-gaussian-r2" and panel.model_kind.value == "network"
        panel.image.value = blurred
        panel.start()
        wait_for(qtbot, panel)
        expected = restored_by_the_library(blurred.data, tmp_path, weights="pretrained:photos-gaussian-r2")
        np.testing.assert_array_equal(viewer.layers[-1].data, expected)
        clean = viewer.layers[0].data[96:160, 96:160].astype(float)
        assert np.abs(expected - clean).mean() < np.abs(blurred.data - clean).mean()  # sharper than its input

    @pytest.mark.parametrize("kind", ["richardson-lucy", "wiener"])
    def test_a_baseline_with_the_psf_layer_restores_as_sei_restore_does(self, viewer_and_widget, qtbot, tmp_path,
                                                                        kind):
        from sei.physics.kernels import write_kernel

        viewer, widget = viewer_and_widget
        image, psf = add_measurements(viewer)
        panel = widget.restore
        panel.image.value, panel.psf.value, panel.model_kind.value = image, psf, kind
        panel.noise_level.value = "3"
        panel.start()
        wait_for(qtbot, panel)
        output = viewer.layers[-1]
        kernel = write_kernel(torch.from_numpy(psf.data), tmp_path / "psf.npy")
        expected = restored_by_the_library(image.data, tmp_path, model_kind=kind,
                                           physics=PhysicsSpec(kernel=str(kernel), noise_level="3"))
        np.testing.assert_array_equal(output.data, expected)
        assert output.name == f"cells restored ({kind})"

    def test_a_volume_restores_on_its_scale(self, viewer_and_widget, qtbot):
        from sei.napari.sample_data import STACK_VOXEL_UM

        viewer, widget = viewer_and_widget
        viewer.open_sample("sei", "blurred-stack")
        _, stack, psf = viewer.layers
        stack.data = stack.data[6:18, :32, :32]  # a small volume: the test is about the layers, not the result
        panel = widget.restore
        panel.image.value, panel.psf.value, panel.model_kind.value = stack, psf, "wiener"
        panel.noise_level.value = "2"
        panel.start()
        wait_for(qtbot, panel)
        output = viewer.layers[-1]
        assert output.data.shape == (12, 32, 32) and output.data.dtype == np.uint16
        assert tuple(output.scale) == pytest.approx(STACK_VOXEL_UM) and output.units == stack.units


class TestErrors:
    """What the library refuses is one line in a notification, as on the command line; nothing is raised."""

    def test_a_network_without_weights(self, viewer_and_widget, qtbot, notifications):
        viewer, widget = viewer_and_widget
        image, _ = add_measurements(viewer)
        widget.restore.image.value = image
        widget.restore.start()
        wait_for(qtbot, widget.restore)
        assert [severity for severity, _ in notifications] == ["error"]
        assert notifications[0][1].startswith("sei restore: error: ") and "\n" not in notifications[0][1]
        assert len(viewer.layers) == 2

    def test_a_baseline_without_a_psf(self, viewer_and_widget, qtbot, notifications):
        viewer, widget = viewer_and_widget
        image, _ = add_measurements(viewer)
        widget.restore.image.value, widget.restore.model_kind.value = image, "tv"
        widget.restore.start()
        wait_for(qtbot, widget.restore)
        assert len(notifications) == 1 and notifications[0][1].startswith("sei restore: error: ")

    def test_training_without_a_psf_or_with_a_time_series(self, viewer_and_widget, qtbot, notifications, tmp_path):
        viewer, widget = viewer_and_widget
        image, psf = add_measurements(viewer)
        panel = widget.train
        panel.measurements.value = [image]
        panel.out_dir.value = str(tmp_path / "a")
        panel.start()
        wait_for(qtbot, panel)
        assert notifications[-1] == ("error", "sei train: error: choose the PSF layer of the measurements (make one "
                                              "in the PSF tab, or load one)")
        series = viewer.add_image(np.zeros((2, 3, 40, 40), np.uint8), name="series")
        panel.measurements.value, panel.psf.value, panel.out_dir.value = [series], psf, str(tmp_path / "b")
        panel.start()
        wait_for(qtbot, panel)
        assert notifications[-1][1] == ("sei train: error: layer 'series' has 4 dimensions ((2, 3, 40, 40)): sei "
                                        "restores images (2-D) and z-stacks (3-D); split other axes into layers of "
                                        "their own")
        assert not (tmp_path / "b").exists()

    def test_a_bad_time_budget(self, viewer_and_widget, notifications):
        viewer, widget = viewer_and_widget
        image, psf = add_measurements(viewer)
        widget.train.measurements.value, widget.train.psf.value = [image], psf
        widget.train.time.value = "soon"
        assert widget.train.start() is None
        assert len(notifications) == 1 and notifications[0][1].startswith("sei train: error: --time: ")


def test_python_m_sei_napari_opens_the_dock_after_loading_sei(make_napari_viewer):
    """The launcher of machines with software OpenGL: sei's libraries (Triton among them) load before the viewer."""
    import sys

    from sei.napari.__main__ import open_viewer

    def make_viewer():
        assert "triton" in sys.modules or "lightning" in sys.modules
        return make_napari_viewer()

    viewer = open_viewer(make_viewer=make_viewer)
    assert "Scale-Equivariant Imaging (sei)" in viewer.window.dock_widgets
