"""Training engine: the CLI end to end, exact resume, data parallelism, and refusals that lose nothing."""

from __future__ import annotations

import csv
import json
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
from sei.core.errors import ConfigError, MissingGroundTruthError
from sei.models import load_backbone
from sei.training import train

TINY = {"data.dataset": "sample", "physics.kernel": "Gaussian_R1", "model.backbone": "unet-tiny",
        "data.batch_size": 2, "data.crop_size": 24, "data.samples_per_epoch": 8, "train.progress": False}
TINY_FLAGS = ["--dataset", "sample", "--kernel", "Gaussian_R1", "--model", "unet-tiny", "--batch-size", "2",
              "--crop-size", "24", "--samples-per-epoch", "8", "--quiet"]


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["params"]


class TestCommandLine:
    def test_train_then_test(self, tmp_path, capsys):
        run = tmp_path / "run"
        assert main(["train", *TINY_FLAGS, "--steps", "9", "--val-every", "1", "--out-dir", str(run)]) == 0
        assert {"config.yaml", "weights.pt", "train_summary.json", "checkpoints", "logs"} <= {p.name for p in run.iterdir()}
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["physics"]["kernel"] == "Gaussian_R1" and config["train"]["steps"] == 9
        model = load_backbone(run / "weights.pt")
        assert model.sei_architecture["backbone"] == "unet-tiny"
        with open(run / "logs" / "csv" / "metrics.csv") as file:
            rows = list(csv.DictReader(file))
        assert {"train/loss", "train/sure", "train/equivariance", "train/lr", "val/psnr"} <= set(rows[0])
        assert max(int(row["step"]) for row in rows) >= 8
        assert list((run / "logs" / "tensorboard").glob("events.out.tfevents.*"))
        assert (run / "checkpoints" / "last.ckpt").is_file()
        assert json.loads((run / "train_summary.json").read_text())["steps"] == 9

        assert main(["test", "--weights", str(run), "--max-images", "2", "--save-images", "--no-lpips",
                     "--quiet"]) == 0
        out = capsys.readouterr().out
        assert "PSNR (dB)" in out and "Gaussian_R1 deblurring" in out
        test_dir = run / "test_sample_val"
        with open(test_dir / "metrics.csv") as file:
            rows = list(csv.DictReader(file))
        assert [row["name"] for row in rows] == ["chelsea", "coffee"]
        assert all(20 < float(row["psnr"]) < 50 and 0 < float(row["ssim"]) <= 1 for row in rows)
        summary = json.loads((test_dir / "summary.json").read_text())
        assert summary["n"] == 2 and {"psnr", "ssim", "psnr_std", "settings"} <= set(summary)
        assert summary["settings"]["physics"]["kernel"] == "Gaussian_R1"
        assert summary["settings"]["precision"] == "32-true"
        assert (test_dir / "images" / "chelsea_estimate.png").is_file()

    def test_reference_flag_spellings(self, tmp_path):
        run = tmp_path / "run"
        flags = ["--method", "proposed", "--task", "sr", "--sr_factor", "2", "--noise_level", "3",
                 "--no-stop_gradient", "--out_dir", str(run)]
        assert main(["train", *TINY_FLAGS, "--steps", "2", *flags]) == 0
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["loss"]["method"] == "sei-no-stop-grad" and config["physics"]["sr_factor"] == 2
        # TINY_FLAGS name a kernel: with --task sr that is super-resolution with a PSF (blur, then decimate)
        assert config["physics"]["noise_level"] == 3.0 and config["physics"]["kernel"] == "Gaussian_R1"

    def test_config_file_with_overrides(self, tmp_path):
        path = tmp_path / "experiment.yaml"
        path.write_text(yaml.safe_dump({"physics": {"task": "deblurring", "kernel": "Box_R2"},
                                        "data": {"dataset": "sample", "crop_size": 24, "batch_size": 2,
                                                 "samples_per_epoch": 4},
                                        "model": {"backbone": "unet-tiny"}, "train": {"steps": 50}}))
        run = tmp_path / "run"
        assert main(["train", "--config", str(path), "--steps", "2", "--out-dir", str(run), "--quiet"]) == 0
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["train"]["steps"] == 2 and config["physics"]["kernel"] == "Box_R2"

    def test_existing_run_is_not_overwritten(self, tmp_path, capsys):
        run = tmp_path / "run"
        assert main(["train", *TINY_FLAGS, "--steps", "2", "--out-dir", str(run)]) == 0
        before = (run / "weights.pt").read_bytes()
        assert main(["train", *TINY_FLAGS, "--steps", "2", "--out-dir", str(run)]) == 2
        assert "--resume" in capsys.readouterr().err
        assert (run / "weights.pt").read_bytes() == before

    def test_bad_inputs_give_clear_errors(self, tmp_path, capsys):
        assert main(["train", "--dataset", "nowhere", "--out-dir", str(tmp_path / "a"), "--quiet"]) == 2
        assert "unknown dataset 'nowhere'" in capsys.readouterr().err
        assert main(["train", *TINY_FLAGS, "--kernel", "Gaussian_R9x", "--out-dir", str(tmp_path / "b")]) == 2
        assert "Gaussian_R2" in capsys.readouterr().err
        assert main(["train", *TINY_FLAGS, "--out-dir", str(tmp_path / "c"), "--resume"]) == 2
        assert "nothing to resume" in capsys.readouterr().err
        assert main(["test", "--weights", str(tmp_path / "missing.pt"), "--quiet"]) == 2
        assert "no such file" in capsys.readouterr().err


class TestMeasurementsOnly:
    @pytest.fixture
    def blurry_folder(self, tmp_path):
        folder = tmp_path / "blurry"
        folder.mkdir()
        rng = np.random.default_rng(0)
        for index in range(3):
            Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(folder / f"{index}.png")
        return folder

    def test_self_supervised_training(self, blurry_folder, tmp_path):
        run = tmp_path / "run"
        assert main(["train", "--measurements", str(blurry_folder), "--kernel", "Box_R2", "--model", "unet-tiny",
                     "--crop-size", "24", "--batch-size", "2", "--steps", "3", "--out-dir", str(run), "--quiet"]) == 0
        assert (run / "weights.pt").is_file()

    def test_the_folder_is_read_once(self, blurry_folder, tmp_path, monkeypatch, caplog):
        # noise level, channels, intensity map and training all come from one reading, which names a bad file once
        import tifffile

        import sei.data.sources as sources

        deep = np.random.default_rng(1).integers(0, 65536, (40, 50, 3), np.uint16)
        tifffile.imwrite(blurry_folder / "deep.tif", deep)
        (blurry_folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
        reads, read = [], sources.read_image_file
        monkeypatch.setattr(sources, "read_image_file",
                            lambda path, *limit: reads.append(Path(path).name) or read(path, *limit))
        run = tmp_path / "run"
        assert main(["train", "--measurements", str(blurry_folder), "--kernel", "Box_R2", "--noise-level", "auto",
                     "--model", "unet-tiny", "--crop-size", "24", "--batch-size", "2", "--steps", "2", "--out-dir",
                     str(run), "--quiet"]) == 0
        assert sorted(reads) == ["0.png", "1.png", "2.png", "broken.png", "deep.tif"]
        assert sum("broken.png" in record.getMessage() for record in caplog.records) == 1
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["model"]["channels"] == 3 and config["physics"]["noise_level"] > 0
        assert config["data"]["intensity"] is None  # 8- and 16-bit files: each by its dtype's range

    def test_supervised_method_is_refused(self, blurry_folder, tmp_path, capsys):
        code = main(["train", "--measurements", str(blurry_folder), "--method", "sup", "--model", "unet-tiny",
                     "--crop-size", "24", "--steps", "3", "--out-dir", str(tmp_path / "run"), "--quiet"])
        assert code == 2
        assert "needs clean images" in capsys.readouterr().err

    def test_api_raises_the_typed_error(self, blurry_folder, tmp_path):
        config = from_flat({**TINY, "data.dataset": str(blurry_folder), "data.kind": "measurements",
                            "loss.method": "supervised", "train.steps": 1, "out_dir": str(tmp_path / "run")})
        with pytest.raises(MissingGroundTruthError):
            train(config)




class TestResume:
    @pytest.mark.parametrize("budget", [{"train.steps": 11}, {"train.epochs": 3}])
    def test_resumed_run_matches_an_uninterrupted_one(self, tmp_path, budget, interrupt):
        settings = {**TINY, **budget, "loss.method": "sei"}
        reference = train(from_flat({**settings, "out_dir": str(tmp_path / "a")}))
        with pytest.raises(RuntimeError, match="simulated kill"):
            train(from_flat({**settings, "out_dir": str(tmp_path / "b")}), callbacks=[interrupt(6)])
        assert not (tmp_path / "b" / "weights.pt").exists()
        resumed = train(from_flat({**settings, "out_dir": str(tmp_path / "b")}), resume=True)
        first, second = read_weights(reference.weights), read_weights(resumed.weights)
        assert all(torch.equal(first[key], second[key]) for key in first)

    def test_a_run_its_step_budget_stopped_mid_epoch_continues_exactly(self, tmp_path):
        """4 steps an epoch: a run of 6 steps ends inside its second epoch. Extended to 7 (a constant learning rate,
        so that the schedule does not depend on the budget) it matches a run of 7: the cut epoch is replayed from
        the last whole one, not skipped (which trained nothing at all)."""
        settings = {**TINY, "loss.method": "sei", "train.lr_final_factor": 1.0}
        reference = read_weights(train(from_flat({**settings, "train.steps": 7,
                                                  "out_dir": str(tmp_path / "a")})).weights)
        run = str(tmp_path / "b")
        six = read_weights(train(from_flat({**settings, "train.steps": 6, "out_dir": run})).weights)
        extended = train(from_flat({**settings, "train.steps": 7, "out_dir": run}), resume=True)
        assert json.loads((tmp_path / "b" / "train_summary.json").read_text())["steps"] == 7
        assert all(torch.equal(reference[key], read_weights(extended.weights)[key]) for key in reference)
        assert not all(torch.equal(six[key], reference[key]) for key in six)

    def test_resume_through_the_command_line(self, tmp_path, interrupt):
        run = tmp_path / "run"
        with pytest.raises(RuntimeError):
            train(from_flat({**TINY, "train.steps": 8, "out_dir": str(run)}), callbacks=[interrupt(5)])
        assert main(["train", "--out-dir", str(run), "--resume", "--quiet"]) == 0
        assert json.loads((run / "train_summary.json").read_text())["steps"] == 8

    def test_resume_refuses_changed_settings(self, tmp_path, interrupt):
        run = str(tmp_path / "run")
        with pytest.raises(RuntimeError):
            train(from_flat({**TINY, "train.steps": 8, "out_dir": run}), callbacks=[interrupt(5)])
        with pytest.raises(ConfigError, match="loss.method"):
            train(from_flat({**TINY, "train.steps": 8, "out_dir": run, "loss.method": "css"}), resume=True)


class RecordSamples(L.Callback):
    """Writes the measurement crops each rank trains on to ``<folder>/rank<r>.pt``."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.crops: list[torch.Tensor] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_index) -> None:
        self.crops.append(batch["y"].detach().cpu())

    def on_train_end(self, trainer, pl_module) -> None:
        torch.save(torch.cat(self.crops), Path(self.folder) / f"rank{trainer.global_rank}.pt")


def test_two_process_data_parallel_training_on_cpu(tmp_path):
    settings = {**TINY, "train.steps": 3, "train.devices": 2, "train.device": "cpu", "out_dir": str(tmp_path / "run")}
    result = train(from_flat(settings), callbacks=[RecordSamples(str(tmp_path))], strategy="ddp_spawn")
    assert result.weights.is_file()
    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert rank0.shape == rank1.shape == (6, 3, 24, 24)
    # each rank trains on its own crops
    assert all(not torch.equal(a, b) for a in rank0 for b in rank1)


class SlowSteps(L.Callback):
    """Sleeps after every step: a machine slower than the step-time probe found it (module-level: spawned ranks
    receive the callbacks pickled)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, *args) -> None:
        time.sleep(self.seconds)


def test_a_time_budget_replans_alike_on_every_rank(tmp_path, capsys):
    import re

    run = tmp_path / "run"
    # one step per epoch on each rank: every step ends an epoch, so last.ckpt holds the run's last step
    settings = {**TINY, "data.samples_per_epoch": 4, "train.time": "10s", "train.devices": 2, "train.device": "cpu",
                "out_dir": str(run)}
    train(from_flat(settings), callbacks=[SlowSteps(0.1)], strategy="ddp_spawn")  # a rank left out would hang
    probed = int(re.search(r"time budget .*? for (\d+) steps", capsys.readouterr().out).group(1))
    recorded = yaml.safe_load((run / "config.yaml").read_text())["train"]["steps"]
    trained = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]
    assert trained == recorded < probed  # the last plan, trained to its end within the budget


def test_checkpoints_of_the_earlier_sequential_schedule_resume_at_their_step():
    from torch.optim.lr_scheduler import ConstantLR, LinearLR, SequentialLR

    from sei.training.module import SEIModule
    from sei.training.schedule import lr_factor, paper_scheduler

    def optimizer() -> torch.optim.Optimizer:
        return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)

    earlier = optimizer()
    sequential = SequentialLR(earlier, [ConstantLR(earlier, 1.0, total_iters=6),
                                        LinearLR(earlier, 1.0, 0.01, total_iters=5)], milestones=[6])
    for _ in range(8):
        earlier.step()
        sequential.step()
    checkpoint = {"lr_schedulers": [sequential.state_dict()]}
    SEIModule.on_load_checkpoint(None, checkpoint)
    resumed = optimizer()
    scheduler = paper_scheduler(resumed, 12)
    scheduler.load_state_dict(checkpoint["lr_schedulers"][0])
    resumed.step()
    scheduler.step()
    assert scheduler.last_epoch == 9 and resumed.param_groups[0]["lr"] == pytest.approx(lr_factor(9, 12))


def test_cpu_runs_keep_the_for_loop_adam():
    # the fused Adam is for GPUs (tests/test_cuda.py); CPU runs keep the implementation their numbers came from
    from sei.config.resolve import resolve
    from sei.training.module import SEIModule

    module = SEIModule(resolve(from_flat({**TINY, "train.steps": 3})).to_dict())
    assert not module.configure_optimizers()["optimizer"].defaults["fused"]


def test_validation_of_a_compiled_network_compiles_nothing(recwarn):
    # validation images come in any size: a compiled (and, on GPUs, CUDA-graphed) network validates eagerly
    from torch._dynamo.utils import counters

    from sei.config.resolve import resolve
    from sei.training.module import SEIModule

    module = SEIModule(resolve(from_flat({**TINY, "train.steps": 3, "train.compile": "default"})).to_dict())
    module.configure_model()
    torch._dynamo.reset()
    counters.clear()
    y, x = torch.rand(1, 3, 40, 36), torch.rand(1, 3, 40, 36)
    module.validation_step({"y": y, "x": x}, 0)
    assert counters["stats"]["unique_graphs"] == 0
    module(y)  # a training-time call compiles
    assert counters["stats"]["unique_graphs"] > 0


def test_fused_adam_under_bf16_clips_like_the_for_loop_adam(tmp_path, monkeypatch):
    # GPU runs use the fused Adam; Lightning's mixed-precision plugin refuses to clip for it, so the module clips
    # itself. Forced here on the CPU: the same clipped steps as the for-loop Adam, and the clipping did bite.
    weights = {}
    for name, fused, clip in (("loop", False, 1e-3), ("fused", True, 1e-3), ("unclipped", False, "none")):
        if fused:
            class FusedAdam(torch.optim.Adam):
                def __init__(self, *args, **kwargs):
                    super().__init__(*args, **{**kwargs, "fused": True})
            monkeypatch.setattr(torch.optim, "Adam", FusedAdam)
        result = train(from_flat({**TINY, "train.steps": 2, "train.precision": "bf16-mixed", "train.grad_clip": clip,
                                  "out_dir": str(tmp_path / name)}))
        monkeypatch.undo()
        weights[name] = read_weights(result.weights)
    for key, value in weights["loop"].items():
        torch.testing.assert_close(weights["fused"][key], value, rtol=1e-5, atol=1e-6)
    assert any(not torch.allclose(weights["unclipped"][key], value) for key, value in weights["loop"].items())


def test_compiled_training_with_cuda_graph_mode_gives_the_eager_weights(tmp_path):
    # on a CPU, reduce-overhead compiles without CUDA graphs: this checks the run's compile path and its step marks
    from torch._dynamo.utils import counters

    counters.clear()
    weights = {}
    for compile_ in (False, "reduce-overhead"):
        result = train(from_flat({**TINY, "train.steps": 2, "train.compile": compile_,
                                  "out_dir": str(tmp_path / str(compile_))}))
        weights[compile_] = read_weights(result.weights)
    assert yaml.safe_load((tmp_path / "reduce-overhead" / "config.yaml").read_text())["train"]["compile"] == \
        "reduce-overhead"
    assert counters["stats"]["unique_graphs"] > 0  # the network was compiled
    for key, value in weights[False].items():
        assert torch.allclose(weights["reduce-overhead"][key], value, atol=1e-5), key


def test_fine_tuning_starts_from_the_given_weights(tmp_path):
    from sei.config.resolve import resolve
    from sei.training.module import SEIModule

    first = train(from_flat({**TINY, "train.steps": 2, "out_dir": str(tmp_path / "a")}))
    config = resolve(from_flat({**TINY, "train.steps": 2, "model.weights": str(first.weights)}))
    module = SEIModule(config.to_dict())
    saved = read_weights(first.weights)
    assert all(torch.equal(module.backbone.state_dict()[key], value) for key, value in saved.items())
