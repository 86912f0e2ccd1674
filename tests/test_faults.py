"""Fault injection: kills, a full disk, damaged checkpoints, divergence, NaN data and bad inputs.

Each case checks the exit status, the message, and that nothing was lost (the previous checkpoint intact, no
file sei did not write overwritten, the resumed run identical to an uninterrupted one).
"""

from __future__ import annotations

import errno
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from sei.cli import main
from sei.config.schema import from_flat
from sei.core.errors import (
    CheckpointError, ConfigError, DivergenceError, ImageError, ResourceUnavailableError, StorageError,
)
from sei.training import train
from sei.training.checkpointing import read_checkpoint

STEPS = 8  # 2 epochs of 4 steps (8 crops per epoch, batch 2); checkpoints at steps 4 and 8
TINY = {"data.dataset": "sample", "physics.kernel": "Gaussian_R1", "model.backbone": "unet-tiny",
        "data.batch_size": 2, "data.crop_size": 24, "data.samples_per_epoch": 8, "train.progress": False,
        "train.checkpoint_every": 1, "train.steps": STEPS}
TINY_FLAGS = ["--dataset", "sample", "--kernel", "Gaussian_R1", "--model", "unet-tiny", "--batch-size", "2",
              "--crop-size", "24", "--samples-per-epoch", "8", "--checkpoint-every", "1", "--steps", str(STEPS),
              "--quiet"]


def weights_of(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["params"]


def same_weights(first: Path, second: Path) -> bool:
    a, b = weights_of(first), weights_of(second)
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def all_finite(checkpoint: Path) -> bool:
    state = read_checkpoint(checkpoint)["state_dict"]
    return all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point())


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run: what every killed and resumed run must reproduce bit for bit."""
    run = tmp_path_factory.mktemp("reference") / "run"
    train(from_flat({**TINY, "out_dir": str(run)}))
    return run




@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, interrupt) -> Path:
    """A run stopped after 6 steps: its checkpoints (``last.ckpt``, ``epoch=0000.ckpt``) hold step 4."""
    run = tmp_path_factory.mktemp("interrupted") / "run"
    with pytest.raises(RuntimeError, match="simulated kill"):
        train(from_flat({**TINY, "out_dir": str(run)}), callbacks=[interrupt(6)])
    return run


def copy_of(run: Path, folder: Path) -> Path:
    import shutil

    return Path(shutil.copytree(run, folder / "run"))


class TestKillAndResume:
    def test_sigkill_at_a_random_moment_then_resume_is_exact(self, tmp_path, reference):
        run = tmp_path / "run"
        code = f"import sys; from sei.cli import main; sys.exit(main({['train', *TINY_FLAGS, '--out-dir', str(run)]!r}))"
        process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        last = run / "checkpoints" / "last.ckpt"
        deadline = time.monotonic() + 60
        while not last.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(random.Random(os.getpid()).uniform(0.0, 0.3))  # somewhere in the second epoch, or after the end
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert main(["train", "--out-dir", str(run), "--resume", "--quiet"]) == 0
        assert same_weights(run / "weights.pt", reference / "weights.pt")
        assert not list(run.rglob("*.tmp"))

    def test_resuming_a_finished_run_changes_nothing(self, tmp_path, reference, capsys):
        run = copy_of(reference, tmp_path)
        before = (run / "train_summary.json").read_bytes()
        assert main(["train", "--out-dir", str(run), "--resume", "--quiet"]) == 0
        assert "already finished" in capsys.readouterr().out
        assert (run / "train_summary.json").read_bytes() == before


class TestDiskFull:
    def test_checkpoint_write_fails_cleanly_and_resume_is_exact(self, tmp_path, reference, monkeypatch, capsys):
        import sei.core.files

        real_save, saves = torch.save, []

        def save_until_full(obj, file, *args, **kwargs):
            saves.append(1)
            if len(saves) >= 3:  # the third checkpoint (epoch 2's last.ckpt) hits a full disk half way
                file.write(b"PK\x03\x04 partial")
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_save(obj, file, *args, **kwargs)

        monkeypatch.setattr(sei.core.files.torch, "save", save_until_full)
        run = tmp_path / "run"
        assert main(["train", *TINY_FLAGS, "--out-dir", str(run)]) == 2
        message = capsys.readouterr().err
        assert "No space left on device" in message and "previous version is intact" in message
        assert str(run / "checkpoints") in message
        assert "Traceback" not in message
        assert not list(run.rglob("*.tmp")) and not (run / "weights.pt").exists()
        assert read_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 4  # the first epoch's, intact
        monkeypatch.setattr(sei.core.files.torch, "save", real_save)
        assert main(["train", "--out-dir", str(run), "--resume", "--quiet"]) == 0
        assert same_weights(run / "weights.pt", reference / "weights.pt")

    def test_storage_error_names_the_file(self, tmp_path, monkeypatch):
        import sei.core.files

        def full(obj, file, *args, **kwargs):
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

        (tmp_path / "w.pt").write_bytes(b"old")
        monkeypatch.setattr(sei.core.files.torch, "save", full)
        with pytest.raises(StorageError, match="w.pt.*previous version is intact"):
            sei.core.files.atomic_torch_save({}, tmp_path / "w.pt")
        assert (tmp_path / "w.pt").read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1


class TestDamagedCheckpoints:
    @pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
    def test_damaged_last_checkpoint_names_the_intact_one(self, tmp_path, reference, interrupted, damage, capsys):
        run = copy_of(interrupted, tmp_path)
        last = run / "checkpoints" / "last.ckpt"
        content = last.read_bytes()
        last.write_bytes({"truncated": content[: len(content) // 2], "garbage": b"not a checkpoint" * 64,
                          "empty": b""}[damage])
        orphan = run / "checkpoints" / ".last.ckpt.x1y2z3.tmp"  # what a killed save leaves behind
        orphan.write_bytes(b"partial")
        assert main(["train", "--out-dir", str(run), "--resume", "--quiet"]) == 2
        message = capsys.readouterr().err
        intact = run / "checkpoints" / "epoch=0000.ckpt"
        assert f"--resume {intact}" in message and "weights_only" not in message and "Traceback" not in message
        assert {"truncated": "truncated", "garbage": "not a PyTorch file", "empty": "empty file"}[damage] in message
        assert not orphan.exists()
        if damage == "truncated":  # the named checkpoint does continue the run, to the same weights
            assert main(["train", "--out-dir", str(run), "--resume", str(intact), "--quiet"]) == 0
            assert same_weights(run / "weights.pt", reference / "weights.pt")

    def test_a_pickled_payload_is_never_run(self, tmp_path, interrupted, capsys):
        run = copy_of(interrupted, tmp_path)
        marker = tmp_path / "payload_ran"
        evil = tmp_path / "evil.ckpt"
        checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
        checkpoint["callbacks"]["x"] = Payload(marker)
        torch.save(checkpoint, evil)
        os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"  # sei must pass weights_only=True itself
        try:
            assert main(["train", "--out-dir", str(run), "--resume", str(evil), "--quiet"]) == 2
        finally:
            del os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"]
        assert "Python objects" in capsys.readouterr().err
        assert not marker.exists()

    def test_checkpoint_io_ignores_a_request_for_unsafe_loading(self, tmp_path):
        from sei.training.checkpointing import AtomicCheckpointIO

        marker = tmp_path / "payload_ran"
        torch.save({"x": Payload(marker)}, tmp_path / "evil.ckpt")
        with pytest.raises(CheckpointError, match="Python objects"):
            AtomicCheckpointIO().load_checkpoint(tmp_path / "evil.ckpt", weights_only=False)
        assert not marker.exists()

    def test_pnp_weights_are_loaded_safely(self, tmp_path):
        from sei.inference.baselines.iterative import read_drunet_weights
        from sei.core.errors import WeightsError

        marker = tmp_path / "payload_ran"
        torch.save({"x": Payload(marker)}, tmp_path / "drunet.pth")
        with pytest.raises(WeightsError, match="Python objects"):
            read_drunet_weights(tmp_path / "drunet.pth")
        assert not marker.exists()

    def test_lightning_checkpoints_load_safely(self, reference):
        checkpoint = read_checkpoint(reference / "checkpoints" / "last.ckpt")
        assert checkpoint["global_step"] == STEPS and "hyper_parameters" in checkpoint


class Payload:
    """A pickled object that creates ``marker`` when unpickled: code execution made visible."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class PoisonAt(L.Callback):
    """Makes one weight NaN before step ``step``, as a diverging optimiser would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_index) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                weight = next(pl_module.backbone.parameters())
                weight[(0,) * weight.dim()] = float("nan")


class TestDivergence:
    def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(self, tmp_path):
        run = tmp_path / "run"
        with pytest.raises(DivergenceError) as caught:
            train(from_flat({**TINY, "out_dir": str(run)}), callbacks=[PoisonAt(6)])
        message = str(caught.value)
        assert "step 6" in message and str(run / "checkpoints" / "last.ckpt") in message
        assert not (run / "weights.pt").exists()
        for checkpoint in (run / "checkpoints").glob("*.ckpt"):
            assert all_finite(checkpoint)
        assert read_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 4

    def test_huge_learning_rate(self, tmp_path, capsys):
        run = tmp_path / "run"
        assert main(["train", *TINY_FLAGS, "--lr", "1e6", "--out-dir", str(run)]) == 2
        message = capsys.readouterr().err
        assert "training diverged at step" in message and "Traceback" not in message
        assert not (run / "weights.pt").exists()
        for checkpoint in (run / "checkpoints").glob("*.ckpt") if (run / "checkpoints").exists() else []:
            assert all_finite(checkpoint)

    @pytest.mark.parametrize("bound", [1e-5, None])
    def test_gradient_clipping_bounds_every_step(self, tmp_path, bound):
        norms = []

        class ClippedNorms(L.Callback):  # after the optimiser step the gradients are those it used
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_index) -> None:
                grads = [p.grad for p in pl_module.backbone.parameters() if p.grad is not None]
                norms.append(float(torch.nn.utils.get_total_norm(grads)))

        config = from_flat({**TINY, "train.steps": 4, "train.grad_clip": "none" if bound is None else bound,
                            "out_dir": str(tmp_path / "run")})
        train(config, callbacks=[ClippedNorms()])
        assert len(norms) == 4
        if bound is None:
            assert max(norms) > 1e-4  # the raw gradients are larger than the bound: the bound is what holds them
        else:
            assert max(norms) <= bound * (1 + 1e-4)

    def test_runs_recorded_before_gradient_clipping_resume_without_it(self, tmp_path):
        from sei.config.run_folder import RunFolder

        run = tmp_path / "run"
        train(from_flat({**TINY, "train.steps": 1, "out_dir": str(run)}))
        config_file = run / "config.yaml"
        values = yaml.safe_load(config_file.read_text())
        assert values["train"]["grad_clip"] == 1.0  # the laptop recipe's, recorded
        del values["train"]["grad_clip"]
        config_file.write_text(yaml.safe_dump(values))
        assert RunFolder(run).config.train.grad_clip is None

    def test_nan_weights_are_never_written(self, tmp_path):
        from sei.training.checkpointing import AtomicCheckpointIO

        state = {"state_dict": {"w": torch.tensor([1.0, float("inf")])}}
        with pytest.raises(DivergenceError):
            AtomicCheckpointIO().save_checkpoint(state, tmp_path / "x.ckpt")
        assert not list(tmp_path.iterdir())


def write_float_tiff(path: Path, poison: float | None) -> Path:
    import tifffile

    array = np.random.default_rng(0).random((32, 32, 3)).astype(np.float32)
    if poison is not None:
        array[3, 4, 1] = poison
    tifffile.imwrite(path, array, photometric="rgb")
    return path


class TestNaNData:
    @pytest.mark.parametrize("poison", [float("nan"), float("inf")])
    def test_refused_when_read(self, tmp_path, poison):
        from sei.io.images import read_image

        path = write_float_tiff(tmp_path / "bad.tif", poison)
        with pytest.raises(ImageError, match="bad.tif.*NaN or infinite"):
            read_image(path)

    def test_folder_says_what_was_skipped_and_strict_fails(self, tmp_path, capsys, caplog):
        folder = tmp_path / "clean"
        folder.mkdir()
        write_float_tiff(folder / "bad.tif", float("nan"))
        write_float_tiff(folder / "good.tif", None)
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / "zero.png")
        flags = ["test", "--model-kind", "identity", "--kernel", "Box_R2", "--dataset", str(folder), "--no-lpips",
                 "--quiet", "--out-dir", str(tmp_path / "eval")]
        assert main(flags) == 0
        assert "skipped 1 unreadable image(s)" in caplog.text and "bad.tif" in caplog.text
        assert main([*flags, "--strict"]) == 2
        assert "bad.tif" in capsys.readouterr().err


class TestBadInputs:
    @pytest.mark.parametrize("flags, expected", [
        (["--lr=-1e-3"], "learning rate must be a positive number"),
        (["--precision", "fp17"], "unknown precision 'fp17'"),
    ])
    def test_training_settings(self, tmp_path, flags, expected, capsys):
        assert main(["train", *TINY_FLAGS, *flags, "--out-dir", str(tmp_path / "run")]) == 2
        err = capsys.readouterr().err
        assert expected in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "run").exists()

    @pytest.mark.parametrize("value", ["-1", "nan", "inf"])
    def test_noise_level_is_refused_before_anything_runs(self, tmp_path, value, capsys):
        assert main(["train", *TINY_FLAGS, f"--noise-level={value}", "--out-dir", str(tmp_path / "run")]) == 2
        assert "--noise-level" in capsys.readouterr().err
        assert not (tmp_path / "run").exists()

    def test_out_dir_holding_a_foreign_config(self, tmp_path, capsys):
        folder = tmp_path / "mine"
        folder.mkdir()
        (folder / "config.yaml").write_text("database: {host: localhost}\n")
        assert main(["train", *TINY_FLAGS, "--out-dir", str(folder)]) == 2
        assert "sei did not write" in capsys.readouterr().err
        assert (folder / "config.yaml").read_text() == "database: {host: localhost}\n"

    @pytest.mark.parametrize("content, reason", [(b"", "empty file"), (b"hello, not torch", "not a PyTorch file")])
    def test_unreadable_weights(self, tmp_path, content, reason, capsys):
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "a.png")
        (tmp_path / "w.pt").write_bytes(content)
        assert main(["restore", str(tmp_path / "a.png"), str(tmp_path / "out"), "--weights", str(tmp_path / "w.pt"),
                     "--quiet"]) == 2
        assert reason in capsys.readouterr().err

    def test_names_that_clash(self, tmp_path, capsys):
        source = tmp_path / "in"
        source.mkdir()
        for name in ("b.jpg", "b.jpeg", "c.png"):
            Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(source / name)
        assert main(["degrade", str(source), str(tmp_path / "out"), "--kernel", "Box_R2", "--quiet"]) == 2
        assert "same file b.png" in capsys.readouterr().err
        assert not (tmp_path / "out").exists()

    def test_negative_tile_is_refused_when_parsed(self, tmp_path, capsys):
        with pytest.raises(SystemExit) as caught:
            main(["restore", str(tmp_path), str(tmp_path / "o"), "--model-kind", "identity", "--tile", "-5"])
        assert caught.value.code == 2 and "--tile" in capsys.readouterr().err

    def test_debug_shows_the_traceback(self, tmp_path):
        assert main(["report", str(tmp_path / "missing")]) == 2
        with pytest.raises(ConfigError):
            main(["--debug", "report", str(tmp_path / "missing")])


class TestReportFaults:
    @pytest.fixture
    def evaluation(self, tmp_path) -> Path:
        folder = tmp_path / "eval"
        folder.mkdir()
        (folder / "metrics.csv").write_text("name,psnr\na,30\n")
        (folder / "summary.json").write_text(json.dumps({"psnr": 30.0, "n": 1, "settings": {"label": "x"}}))
        return folder

    def test_malformed_summary(self, evaluation, tmp_path, capsys):
        (evaluation / "summary.json").write_text("{not json")
        assert main(["report", str(evaluation), "--out", str(tmp_path / "r.html")]) == 2
        assert "summary.json is malformed" in capsys.readouterr().err

    def test_malformed_run_config(self, reference, tmp_path, capsys):
        import shutil

        run = tmp_path / "run"
        shutil.copytree(reference, run)
        (run / "config.yaml").write_text("physics: [unclosed\n")
        assert main(["report", str(run), "--out", str(tmp_path / "r.html")]) == 2
        assert "config.yaml is malformed" in capsys.readouterr().err

    def test_out_never_overwrites_what_sei_did_not_write(self, evaluation, reference, tmp_path, capsys):
        import shutil

        run = tmp_path / "run"
        shutil.copytree(reference, run)
        config = (run / "config.yaml").read_bytes()
        assert main(["report", str(evaluation), "--out", str(run / "config.yaml")]) == 2
        assert (run / "config.yaml").read_bytes() == config
        assert main(["report", str(evaluation), "--out", str(tmp_path)]) == 2
        assert "is a folder" in capsys.readouterr().err
        out = tmp_path / "r.html"
        assert main(["report", str(evaluation), "--out", str(out)]) == 0
        assert main(["report", str(evaluation), "--out", str(out)]) == 0  # its own report: replaced


class TestOffline:
    @pytest.fixture
    def no_network(self, monkeypatch):
        """Name lookups hang, as on a machine whose resolver cannot be reached."""
        def hang(*args, **kwargs):
            time.sleep(20)
            raise socket.gaierror("unreachable")

        monkeypatch.setattr(socket, "getaddrinfo", hang)

    def test_published_weights_fail_fast(self, tmp_path, no_network):
        from sei.models.hub import fetch_weights

        started = time.monotonic()
        with pytest.raises(ResourceUnavailableError, match="download failed"):
            fetch_weights("Div2K-Train_Deblurring_Gaussian_R2_Noise5_SEI", download=True, cache_dir=tmp_path)
        assert time.monotonic() - started < 3

    def test_hf_hub_offline_is_honoured(self, tmp_path, monkeypatch, capsys):
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        started = time.monotonic()
        assert main(["weights", "fetch", "Div2K-Train_Deblurring_Gaussian_R2_Noise5_SEI"]) == 2
        assert "HF_HUB_OFFLINE" in capsys.readouterr().err and time.monotonic() - started < 3

    def test_dataset_download_fails_fast_without_bad_advice(self, tmp_path, no_network):
        from sei.data.sources import load_image_set

        started = time.monotonic()
        with pytest.raises(ResourceUnavailableError) as caught:
            load_image_set("div2k", "val", tmp_path, download=True)
        assert time.monotonic() - started < 3
        assert "could not be downloaded" in str(caught.value) and "--download" not in str(caught.value)

    def test_unverified_checksum_is_said(self, tmp_path):
        from sei.data.sources import load_image_set

        with pytest.raises(ResourceUnavailableError, match="unverified"):
            load_image_set("ct", "train", tmp_path)


def archive_with(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.tar"
    with tarfile.open(path, "w") as archive:
        member = tarfile.TarInfo({"absolute": "/tmp/sei_evil_file", "dotdot": "../escape.txt",
                                  "setuid": "tool", "device": "dev"}[kind])
        payload = b"x"
        if kind == "setuid":
            member.mode = 0o4755
        if kind == "device":
            member.type, member.devmajor, member.devminor = tarfile.CHRTYPE, 1, 3
            payload = b""
        member.size = len(payload)
        archive.addfile(member, io.BytesIO(payload))
    return path


class TestArchives:
    @pytest.mark.parametrize("kind", ["absolute", "dotdot", "device"])
    def test_unsafe_members_are_refused(self, tmp_path, kind):
        from sei.io.download import _extract

        destination = tmp_path / "out"
        destination.mkdir()
        with pytest.raises(ResourceUnavailableError, match="unsafe member"):
            _extract(archive_with(tmp_path, kind), destination)
        assert not list(destination.iterdir()) and not (tmp_path / "escape.txt").exists()

    def test_setuid_bits_are_dropped(self, tmp_path):
        from sei.io.download import _extract

        destination = tmp_path / "out"
        destination.mkdir()
        _extract(archive_with(tmp_path, "setuid"), destination)
        assert not (destination / "tool").stat().st_mode & 0o7000
