"""Experiment configuration: YAML, overrides, resolved defaults, the paper's config files, the LR schedule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sei.config.resolve import resolve
from sei.config.schema import ExperimentConfig, from_dict, from_flat, load_config
from sei.core.errors import ConfigError, UnknownNameError
from sei.training.schedule import lr_factor

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


class TestLoading:
    def test_yaml_and_overrides(self, tmp_path):
        path = tmp_path / "x.yaml"
        path.write_text("physics: {task: sr, sr_factor: 4}\ntrain: {epochs: 3}\n")
        config = load_config(path, {"train.epochs": 7, "data.batch_size": 2})
        assert config.physics.task == "sr" and config.physics.sr_factor == 4
        assert config.train.epochs == 7 and config.data.batch_size == 2

    @pytest.mark.parametrize("text, message", [
        ("physic: {task: sr}", "unknown configuration section 'physic'"),
        ("train: {epoch: 3}", "unknown key train.epoch; valid keys of train: epochs"),
        ("train: 3", "must be a mapping"),
        ("- a\n- b", "must hold a mapping"),
        ("physics: {task: [unclosed", "not valid YAML"),
    ])
    def test_bad_files(self, tmp_path, text, message):
        path = tmp_path / "bad.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
            load_config(path)

    def test_missing_file_and_unknown_override(self, tmp_path):
        with pytest.raises(ConfigError, match="not found"):
            load_config(tmp_path / "none.yaml")
        with pytest.raises(ConfigError, match="unknown configuration key"):
            from_flat({"train.learning_rate": 1})

    def test_round_trip(self):
        config = resolve(from_flat({"data.dataset": "sample"}))
        assert from_dict(config.to_dict()) == config


class TestResolve:
    def test_paper_defaults_on_a_gpu(self, monkeypatch):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # device "auto" then means the GPU
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
        config = resolve(ExperimentConfig())
        assert config.physics.kernel == "Gaussian_R2" and config.model.backbone == "swinir"
        assert config.train.precision == "bf16-mixed"  # measured within 0.02 dB of fp32 on an H100
        assert config.train.epochs == 500 and config.train.lr == 1e-4 and config.data.val_dataset == "div2k"
        sr = resolve(from_flat({"physics.task": "sr", "physics.sr_factor": 2, "physics.kernel": "Box_R2"}))
        assert sr.train.lr == 2e-4 and sr.physics.kernel == "Box_R2"  # SR with a PSF: blur, then decimate
        # the rate follows the backbone: the U-Nets' laptop rate, unet-base's own (1e-3 diverged for it)
        assert resolve(from_flat({"model.backbone": "unet-small"})).train.lr == 1e-3
        assert resolve(from_flat({"model.backbone": "unet-base"})).train.lr == 5e-4
        assert "x2_Box_R2" in sr.name
        # the small embedded and downloadable photograph sets get the laptop recipe on a GPU too
        photos = resolve(from_flat({"data.dataset": "photos"}))
        assert photos.model.backbone == "unet-small" and photos.data.val_dataset == "photos"
        assert resolve(from_flat({"physics.kernel": "gaussian_r2"})).name == config.name  # canonical kernel names

    def test_gradient_clipping_follows_the_recipe(self, monkeypatch):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        assert resolve(from_flat({"data.dataset": "sample"})).train.grad_clip == 1.0  # the laptop recipe
        assert resolve(from_flat({"train.grad_clip": "none"})).train.grad_clip is None
        assert resolve(from_flat({"train.grad_clip": 0})).train.grad_clip is None
        assert resolve(from_flat({"train.grad_clip": "0.5"})).train.grad_clip == 0.5
        for bad in (-1, "big", float("nan")):
            with pytest.raises(ConfigError, match="grad_clip"):
                resolve(from_flat({"train.grad_clip": bad}))
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True, raising=False)
        assert resolve(from_flat({"data.dataset": "div2k"})).train.grad_clip is None  # the paper's does not clip

    def test_a_cpu_never_gets_the_papers_swinir_unless_asked(self, monkeypatch):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        for values in ({}, {"data.dataset": "/some/folder", "data.kind": "measurements", "physics.kernel": "Box_R2"}):
            config = resolve(from_flat(values))
            assert config.model.backbone == "unet-small" and config.train.steps == 2400 and config.train.lr == 1e-3
        asked = resolve(from_flat({"model.backbone": "swinir", "train.epochs": 500}))
        assert asked.model.backbone == "swinir" and asked.train.lr == 1e-4 and asked.train.epochs == 500

    def test_sample_defaults_to_the_demo_budget(self):
        config = resolve(from_flat({"data.dataset": "sample", "loss.method": "supervised"}))
        assert config.model.backbone == "unet-small" and config.train.steps is not None
        assert config.train.epochs is None

    @pytest.mark.parametrize("flags, recorded", [([], False), (["--compile"], "default"), (["--compile", "off"], False),
                                                 (["--compile", "reduce-overhead"], "reduce-overhead")])
    def test_compile_flag_names_a_torch_compile_mode(self, flags, recorded):
        # on a CPU, auto (the default) compiles nothing; on GPUs it is reduce-overhead (tests/test_attention.py)
        from sei.cli import build_parser
        from sei.cli.options import overrides

        args = build_parser().parse_args(["train", *flags, "--steps", "3", "--device", "cpu"])
        assert resolve(from_flat(overrides(args))).train.compile == recorded

    def test_older_configs_compile_true_is_the_default_mode(self):
        assert resolve(from_flat({"train.compile": True})).train.compile == "default"

    def test_the_recipe_line_says_how_the_network_is_compiled(self):
        from sei.config.resolve import describe_recipe

        compiled = resolve(from_flat({"train.compile": "reduce-overhead"}))
        assert "compiled (reduce-overhead mode)" in describe_recipe(compiled)
        assert "compiled" not in describe_recipe(resolve(from_flat({})))

    def test_the_divergence_flag_reaches_the_method(self):
        from sei.cli import build_parser
        from sei.cli.options import overrides
        from sei.losses.registry import build_method

        args = build_parser().parse_args(["train", "--divergence", "jvp", "--steps", "3", "--device", "cpu"])
        loss = resolve(from_flat(overrides(args))).loss
        assert loss.divergence == "jvp"
        assert build_method(loss.method, **loss.method_options()).divergence == "jvp"
        assert resolve(from_flat({})).loss.divergence == "finite-difference"
        fine_tuning = resolve(from_flat({"model.weights": "pretrained:photos-sr-x2", "physics.task": "sr",
                                         "physics.sr_factor": 2}))
        assert fine_tuning.loss.divergence == "jvp"

    def test_no_stop_gradient_is_the_ablation(self):
        assert resolve(from_flat({"loss.stop_gradient": False})).loss.method == "sei-no-stop-grad"

    @pytest.mark.parametrize("overrides, error", [
        ({"train.epochs": 2, "train.steps": 3}, ConfigError),
        ({"physics.task": "sr"}, ConfigError),
        ({"loss.method": "noise2self"}, UnknownNameError),
        ({"data.kind": "noisy"}, ConfigError),
        ({"train.lr_final_factor": 0}, ConfigError),
        ({"train.compile": "fastest"}, ConfigError),
        ({"data.crop_sampling": "random"}, UnknownNameError),
    ])
    def test_errors(self, overrides, error):
        with pytest.raises(error):
            resolve(from_flat(overrides))


class TestCompatibility:
    def test_a_run_recorded_before_the_renovation_is_read_and_may_resume(self, tmp_path):
        """``config.yaml`` as the pre-renovation code wrote it (tests/data): read, and the same options may resume
        it (no setting differs)."""
        import shutil

        from sei.config.run_folder import RunFolder

        run = tmp_path / "r_sei"
        run.mkdir()
        shutil.copy(Path(__file__).parent / "data" / "config_before_renovation.yaml", run / "config.yaml")
        folder = RunFolder(run)
        assert folder.is_sei_run() and folder.config.loss.scale_factors == (0.75, 0.5)
        same = resolve(from_flat({"data.dataset": "sample", "model.backbone": "unet-tiny", "train.steps": 6,
                                  "data.batch_size": 2, "data.crop_size": 32, "data.samples_per_epoch": 4,
                                  "train.progress": False, "train.precision": "bf16-mixed", "out_dir": str(run),
                                  "train.grad_clip_median": None}))  # a later default; --resume keeps the run's own
        assert folder.changed_settings(same) == []
        assert folder.changed_settings(from_flat({"loss.alpha": 2.0}, same)) == ["loss.alpha: 1.0 -> 2.0"]

    def test_an_intensity_map_left_open_matches_the_one_the_run_read_off_its_data(self):
        from sei.config.run_folder import changed_settings

        base = {"data.dataset": "blurry/", "data.kind": "measurements", "physics.kernel": "Gaussian_R2",
                "physics.noise_level": 5.0}
        recorded = from_flat({**base, "data.intensity": {"dtype": "uint8", "offset": 0.0, "scale": 255.0}})
        assert changed_settings(recorded, from_flat(base)) == []
        other = from_flat({**base, "data.intensity": {"dtype": "uint16", "offset": 0.0, "scale": 65535.0}})
        assert [c.split(":")[0] for c in changed_settings(recorded, other)] == ["data.intensity.dtype",
                                                                                "data.intensity.scale"]

    def test_frozen_sections_write_the_yaml_they_read(self, tmp_path):
        import yaml

        text = (Path(__file__).parent / "data" / "config_before_renovation.yaml").read_text()
        written = yaml.safe_load(from_dict(yaml.safe_load(text)).to_yaml())
        added_since = {"data": {"max_pixels": None, "crop_sampling": "uniform", "augment": None}, "train": {"time": None, "grad_clip_median": "auto"},
                       "physics": {"spatial_dims": None}, "loss": {"scale_axes": "all", "divergence": None}}  # added since, at defaults
        for section, values in added_since.items():
            assert {key: written[section].pop(key) for key in values} == values
        assert yaml.safe_dump(written, sort_keys=False) == text


class TestPaperConfigs:
    def test_every_file_resolves(self):
        files = sorted(CONFIGS.glob("*/*.yaml"))
        assert len(files) == 3 * 10 * 6  # the paper's 8 tasks and 2 of SR with a PSF
        for path in files:
            config = resolve(load_config(path))
            assert config.model.backbone == "swinir" and config.train.epochs == 500
            assert config.name == path.parent.name + "_" + path.stem

    def test_files_match_their_generator(self, tmp_path):
        copy = tmp_path / "configs"
        copy.mkdir()
        (copy / "generate.py").write_text((CONFIGS / "generate.py").read_text())
        subprocess.run([sys.executable, str(copy / "generate.py")], check=True)
        for path in sorted(copy.glob("*/*.yaml")):
            assert path.read_text() == (CONFIGS / path.relative_to(copy)).read_text(), path.name


class TestSchedule:
    def test_constant_then_linear_to_one_percent(self):
        total = 101
        assert lr_factor(0, total) == 1.0 and lr_factor(50, total) == 1.0
        assert lr_factor(75, total) == pytest.approx(1 - 0.99 * 0.5)
        assert lr_factor(100, total) == pytest.approx(0.01)
        values = [lr_factor(step, total) for step in range(total)]
        assert all(a >= b for a, b in zip(values, values[1:]))

    @pytest.mark.parametrize("total, decay_start, final", [(1000, 0.5, 0.01), (7, 0.5, 0.01), (10, 0.3, 0.1),
                                                            (3, 0.5, 0.01), (2, 0.5, 0.01), (1, 0.5, 0.01),
                                                            (100, 1.0, 0.01), (100, 0.0, 0.01)])
    def test_scheduler_reproduces_the_definition(self, total, decay_start, final):
        import warnings

        from sei.training.schedule import paper_scheduler

        parameter = torch.nn.Parameter(torch.zeros(1))
        optimizer = torch.optim.SGD([parameter], lr=1e-3)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no deprecation or ordering warnings from the schedulers either
            scheduler = paper_scheduler(optimizer, total, decay_start, final)
            for step in range(total):
                expected = 1e-3 * lr_factor(step, total, decay_start, final)
                assert optimizer.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-12, abs=0)
                optimizer.step()
                scheduler.step()

    def test_a_length_replanned_in_the_constant_phase_gives_the_new_plan_s_schedule(self):
        from sei.training.schedule import paper_scheduler

        parameter = torch.nn.Parameter(torch.zeros(1))
        optimizer = torch.optim.SGD([parameter], lr=1.0)
        plan = {"steps": 1000}
        scheduler = paper_scheduler(optimizer, lambda: plan["steps"], 0.5, 0.01)
        rates = []
        for step in range(300):
            if step == 100:
                plan["steps"] = 300  # its decay starts at 149.5: still ahead
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        assert rates == pytest.approx([lr_factor(step, 300, 0.5, 0.01) for step in range(300)], abs=1e-12)
        assert "lr_lambdas" in scheduler.state_dict() and scheduler.state_dict()["lr_lambdas"] == [None]


class TestTrainingProcesses:
    @pytest.mark.parametrize("devices, nodes, expected", [(1, 1, 1), ("auto", 1, 1), (-1, 1, 1), (4, 2, 8),
                                                          ([0, 1], 1, 2), ("0,1", 1, 2), ("3", 1, 3)])
    def test_counts_devices_per_node_times_nodes(self, devices, nodes, expected):
        from sei.core.devices import training_processes

        assert training_processes("cpu", devices, nodes) == expected

    def test_an_unreadable_device_count_is_refused(self):
        from sei.core.devices import training_processes

        with pytest.raises(ConfigError, match="devices must be"):
            training_processes("cpu", "many")

    def test_auto_compiles_a_single_gpu_run_but_not_a_data_parallel_one(self, monkeypatch):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a machine with 4 GPUs, as resolve sees it
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
        gpu = {"train.device": "cuda", "train.precision": "32-true"}
        assert resolve(from_flat(gpu)).train.compile == "reduce-overhead"
        assert resolve(from_flat({**gpu, "train.devices": "auto"})).train.compile is False
        assert resolve(from_flat({**gpu, "train.devices": 2})).train.compile is False
        assert resolve(from_flat({**gpu, "train.devices": 2, "train.compile": "reduce-overhead"})).train.compile == \
            "reduce-overhead"
