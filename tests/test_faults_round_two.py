"""Faults found by the second probe that the command-line table (``fault_cases.py``) cannot show on its own: a
kill in the middle of writing an image, a run folder claimed twice, checkpoints kept across a resume, a NaN
checkpoint among good ones, a loss running away, and the image readers' size policy and stack axes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tifffile
import torch
from fault_cases import png_header

from sei.config.run_folder import RunFolder
from sei.config.schema import from_flat
from sei.core.errors import ImageError, RunInUseError, SEIWarning
from sei.core.files import exclusive_lock
from sei.io.images import ImageFile, read_image_file, write_image_file
from sei.training import train
from sei.training.checkpointing import periodic_checkpoints, read_checkpoint

TINY = {"data.dataset": "sample", "physics.kernel": "Gaussian_R1", "model.backbone": "unet-tiny",
        "data.batch_size": 2, "data.crop_size": 24, "data.samples_per_epoch": 4, "train.progress": False,
        "train.checkpoint_every": 1, "train.steps": 4}


class TestAtomicImages:
    @pytest.mark.parametrize("suffix", [".png", ".tif"])
    def test_a_kill_while_writing_leaves_no_file_under_the_final_name(self, tmp_path, suffix):
        # the writer is killed (SIGKILL, no clean-up) after it wrote part of the file
        target = tmp_path / f"out{suffix}"
        script = textwrap.dedent(f"""
            import os, signal
            import numpy as np
            import sei.io.images as images
            real = images._write_tiff if {suffix!r} == ".tif" else images._write_pillow
            def dying(target, *args):
                real(target, *args)
                os.kill(os.getpid(), signal.SIGKILL)
            if {suffix!r} == ".tif":
                images._write_tiff = dying
            else:
                images._write_pillow = dying
            images.write_image_file({str(target)!r}, images.ImageFile([np.zeros((64, 64), np.uint8)]))
        """)
        process = subprocess.run([sys.executable, "-c", script], capture_output=True)
        assert process.returncode == -signal.SIGKILL
        assert not target.exists()  # only a temporary beside it, which nothing reads as the output

    def test_an_existing_output_survives_a_failed_write(self, tmp_path, monkeypatch):
        import sei.io.images as images

        target = tmp_path / "out.png"
        write_image_file(target, ImageFile([np.full((8, 8), 7, np.uint8)]))
        before = target.read_bytes()

        def failing(handle, array, suffix):
            handle.write(b"\x89PNG partial")
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(images, "_write_pillow", failing)
        with pytest.raises(OSError, match="out.png"):
            write_image_file(target, ImageFile([np.zeros((8, 8), np.uint8)]))
        assert target.read_bytes() == before and sorted(tmp_path.iterdir()) == [target]


class TestRunLock:
    def test_a_claimed_folder_is_refused_and_released_after(self, tmp_path):
        run = tmp_path / "run"
        with RunFolder(run).claim():
            with pytest.raises(RunInUseError, match=f"{os.getpid()}"):
                train(from_flat({**TINY, "out_dir": str(run)}))
            assert not (run / "config.yaml").exists()
        assert not (run / ".lock").exists()
        result = train(from_flat({**TINY, "out_dir": str(run)}))
        assert result.weights.is_file() and not (run / ".lock").exists()

    def test_a_lock_on_another_host_is_not_taken_over(self, tmp_path):
        lock = tmp_path / ".lock"
        lock.write_text(f"1 not-{socket.gethostname()}\n")
        with pytest.raises(RunInUseError, match="on not-"):
            with exclusive_lock(lock, "the folder"):
                pass
        assert lock.read_text().startswith("1 not-")

    def test_a_stale_lock_is_taken_over_and_removed(self, tmp_path):
        lock = tmp_path / ".lock"
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        lock.write_text(f"{dead.pid} {socket.gethostname()}\n")
        with exclusive_lock(lock, "the folder"):
            assert lock.read_text().split()[0] == str(os.getpid())
        assert not lock.exists()


class TestCheckpoints:
    def test_keep_applies_to_checkpoints_written_before_a_resume(self, tmp_path):
        run = tmp_path / "run"
        train(from_flat({**TINY, "train.steps": 6, "train.checkpoint_keep": 0, "out_dir": str(run)}))
        before = periodic_checkpoints(run / "checkpoints")
        assert len(before) >= 3  # keep 0: all of them
        train(from_flat({**TINY, "train.steps": 8, "train.checkpoint_keep": 1, "out_dir": str(run)}), resume=True)
        kept = periodic_checkpoints(run / "checkpoints")
        assert len(kept) == 1 and kept[0] not in before  # the newest, written after the resume

    def test_a_nan_checkpoint_is_not_called_the_last_good_one(self, tmp_path):
        from sei.training.guards import last_good_checkpoint

        run = tmp_path / "run"
        train(from_flat({**TINY, "train.steps": 8, "out_dir": str(run)}))
        last = run / "checkpoints" / "last.ckpt"
        state = read_checkpoint(last)
        next(iter(state["state_dict"].values())).fill_(float("nan"))
        torch.save(state, last)
        assert last_good_checkpoint(run / "checkpoints") == periodic_checkpoints(run / "checkpoints")[0]


class TestLossGrowth:
    def guard_fed(self, losses: list[float]) -> list[warnings.WarningMessage]:
        from sei.training.guards import DivergenceGuard

        guard = DivergenceGuard()
        trainer = SimpleNamespace(world_size=1, precision="32-true", global_step=0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for step, loss in enumerate(losses):
                trainer.global_step = step
                guard.on_before_backward(trainer, None, torch.tensor(loss))
        return [w for w in caught if issubclass(w.category, SEIWarning)]

    def test_a_loss_growing_a_thousandfold_is_warned_about_once(self):
        caught = self.guard_fed([0.02] * 10 + [0.5, 3.0, 2e11, 3e11])
        assert len(caught) == 1 and "2e+11 at step 12" in str(caught[0].message)

    def test_a_healthy_run_is_not(self):
        assert not self.guard_fed([0.05 * 0.97**step for step in range(200)])

    def test_a_negative_sure_loss_near_zero_is_not(self):
        assert not self.guard_fed([0.01, -0.002, 0.004] * 5 + [-0.01, 0.02])


class TestImageSizePolicy:
    @pytest.mark.parametrize("bit_depth", [8, 16])
    def test_a_declared_size_above_the_limit_is_refused_before_decoding(self, tmp_path, bit_depth):
        path = png_header(tmp_path / "bomb.png", 20000, 20000, bit_depth=bit_depth, data=True)
        with pytest.raises(ImageError, match="bomb.png: 400 megapixels, above the limit.*--max-pixels"):
            read_image_file(path)

    def test_the_limit_can_be_raised_and_lowered(self, tmp_path):
        from PIL import Image

        Image.fromarray(np.zeros((40, 50), np.uint8)).save(tmp_path / "a.png")
        assert read_image_file(tmp_path / "a.png", max_pixels=2000).pages[0].shape == (40, 50)
        with pytest.raises(ImageError, match="above the limit"):
            read_image_file(tmp_path / "a.png", max_pixels=1999)

    def test_a_stack_counts_all_its_pages(self, tmp_path):
        tifffile.imwrite(tmp_path / "s.tif", np.zeros((5, 20, 20), np.uint16))
        assert len(read_image_file(tmp_path / "s.tif", max_pixels=2000).pages) == 5
        with pytest.raises(ImageError, match="above the limit"):
            read_image_file(tmp_path / "s.tif", max_pixels=1999)

    def test_pillows_own_bound_is_left_as_it_was(self, tmp_path):
        from PIL import Image

        before = Image.MAX_IMAGE_PIXELS
        png_header(tmp_path / "bomb.png", 30000, 30000, data=True)
        with pytest.raises(ImageError):
            read_image_file(tmp_path / "bomb.png")
        assert Image.MAX_IMAGE_PIXELS == before

    def test_training_folder_applies_the_configured_limit(self, tmp_path):
        from sei.data.sources import load_image_set
        from PIL import Image

        for index in range(2):
            Image.fromarray(np.zeros((30 + 10 * index, 30), np.uint8)).save(tmp_path / f"{index}.png")
        images = load_image_set(tmp_path, max_pixels=1000)
        assert images.names == ["0"] and "above the limit" in images.skipped[0][1]


class TestStackAxes:
    @pytest.mark.parametrize("axes, shape", [("ZYX", (4, 8, 8)), ("TZYX", (2, 3, 8, 8)), ("CYX", (2, 8, 8))])
    def test_imagej_axes_round_trip(self, tmp_path, axes, shape):
        tifffile.imwrite(tmp_path / "in.tif", np.zeros(shape, np.uint16), imagej=True,
                         metadata={"axes": axes, "unit": "um"})
        file = read_image_file(tmp_path / "in.tif")
        write_image_file(tmp_path / "out.tif", file)
        with tifffile.TiffFile(tmp_path / "out.tif") as tiff:
            assert tiff.series[0].axes == axes and tiff.series[0].shape == shape

    def test_a_plain_page_sequence_stays_one(self, tmp_path):
        tifffile.imwrite(tmp_path / "in.tif", np.zeros((3, 8, 8), np.float32), photometric="minisblack")
        file = read_image_file(tmp_path / "in.tif")
        assert file.stack_axes == "" and len(file.pages) == 3
        write_image_file(tmp_path / "out.tif", file)
        assert tifffile.imread(tmp_path / "out.tif").shape == (3, 8, 8)

    def test_gray_palette_gif_is_read(self, tmp_path):
        from PIL import Image

        Image.fromarray(np.full((8, 8), 100, np.uint8)).save(tmp_path / "a.gif")
        assert read_image_file(Path(tmp_path / "a.gif")).pages[0].shape[:2] == (8, 8)
