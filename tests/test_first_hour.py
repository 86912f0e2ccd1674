"""A scientist's first hour (issue 28): the noise level of one's own measurements is measured by default, every
command that reads measurements accepts ``auto``, a wall-clock budget, and truthful wording."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tifffile

from sei.cli import main
from sei.config.resolve import describe_recipe, resolve
from sei.config.schema import from_flat
from sei.core.units import parse_duration, plural
from sei.io.intensity import integer_map, noise_level_text
from sei.physics.spec import PhysicsSpec, resolve_spec
from sei.training.time_budget import TimeBudget, steps_for_time

from test_training import TINY, TINY_FLAGS

TRUE_COUNTS = 500.0  # read noise of the 16-bit measurements below, in counts


@pytest.fixture(scope="module")
def measurements(tmp_path_factory) -> Path:
    """Four 16-bit 96x96 blurred images with Gaussian read noise of 500 counts, and no degradation.yaml."""
    import torch

    from sei.physics.spec import PhysicsSpec

    folder = tmp_path_factory.mktemp("first_hour") / "cells"
    folder.mkdir()
    blur = PhysicsSpec(kernel="Gaussian_R2", noise_level=0).build()
    rng = np.random.default_rng(0)
    for index in range(4):
        x = torch.from_numpy(rng.random((1, 1, 12, 12))).float()
        x = torch.nn.functional.interpolate(x, size=(96, 96), mode="bilinear", align_corners=False)
        y = blur.A(x)[0, 0].numpy() * 40000 + 3000 + rng.normal(0, TRUE_COUNTS, (96, 96))
        tifffile.imwrite(folder / f"cell{index}.tif", np.clip(y, 0, 65535).astype(np.uint16))
    return folder


class TestNoiseLevelDefault:
    def test_own_measurements_default_to_auto(self, measurements):
        config = resolve(from_flat({**TINY, "data.dataset": str(measurements), "data.kind": "measurements",
                                    "out_dir": "unused"}))
        assert config.physics.noise_level == "auto"

    def test_poisson_gaussian_measurements_default_gain_to_auto(self):
        spec = resolve_spec(PhysicsSpec(kernel="Gaussian_R2", noise="poisson-gaussian"), None, None, measured=True)
        assert (spec.noise_level, spec.gain) == ("auto", "auto")

    def test_a_given_level_or_a_recorded_one_is_kept(self, measurements, tmp_path):
        given = resolve_spec(PhysicsSpec(kernel="Gaussian_R2", noise_level=3), None, None, measured=True)
        assert given.noise_level == 3
        recorded = resolve_spec(PhysicsSpec(kernel="Gaussian_R2", noise_level=7))
        assert resolve_spec(PhysicsSpec(), None, recorded, measured=True).noise_level == 7

    def test_clean_images_keep_the_simulation_default(self):
        config = resolve(from_flat({**TINY, "out_dir": "unused"}))
        assert config.physics.noise_level == 5

    def test_training_measures_it_and_says_it_in_counts(self, measurements, tmp_path, capsys):
        run = tmp_path / "run"
        assert main(["train", "--measurements", str(measurements), *TINY_FLAGS[2:], "--steps", "1",
                     "--out-dir", str(run)]) == 0
        out = capsys.readouterr().out
        assert "noise estimated from 4 measurements" in out and "counts of the uint16 data" in out
        line = next(line for line in out.splitlines() if line.startswith("noise estimated"))
        counts = float(line.split("(")[1].split()[0])
        assert abs(counts - TRUE_COUNTS) / TRUE_COUNTS < 0.15, line
        recorded = (run / "config.yaml").read_text()
        assert "noise_source: estimated" in recorded

    def test_noise_level_text(self):
        assert noise_level_text(1.95, integer_map("uint16")) == "1.95/255 (501.1 counts of the uint16 data)"
        assert noise_level_text(5) == "5/255"


class TestRestoreAuto:
    @pytest.mark.parametrize("kind", ["tv", "wiener"])
    def test_baselines_accept_auto_and_estimate_from_the_inputs(self, measurements, tmp_path, capsys, kind):
        out = tmp_path / kind
        assert main(["restore", str(measurements), str(out), "--model-kind", kind, "--kernel", "Gaussian_R2",
                     "--noise-level", "auto", "--quiet"]) == 0
        printed = capsys.readouterr().out
        assert "noise estimated from 4 input image(s)" in printed and "counts of the uint16 data" in printed
        assert "the noise level from the inputs" in printed
        assert len(list(out.glob("*.tif"))) == 4

    def test_no_level_given_is_estimated_too(self, measurements, tmp_path, capsys):
        assert main(["restore", str(measurements), str(tmp_path / "w"), "--model-kind", "wiener", "--kernel",
                     "Gaussian_R2", "--quiet"]) == 0
        assert "noise estimated from 4 input image(s)" in capsys.readouterr().out

    def test_learn_is_refused_in_one_line(self, measurements, tmp_path, capsys):
        assert main(["restore", str(measurements), str(tmp_path / "w"), "--model-kind", "wiener", "--kernel",
                     "Gaussian_R2", "--noise-level", "learn", "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "learned while training" in err

    def test_simulating_commands_name_what_to_give_not_a_function(self, measurements, tmp_path, capsys):
        assert main(["degrade", str(measurements), str(tmp_path / "d"), "--kernel", "Gaussian_R2",
                     "--noise-level", "auto", "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert "--noise-level NUMBER" in err and "sei.physics" not in err and len(err.splitlines()) == 1

    def test_a_stack_is_counted_as_images(self, tmp_path, capsys):
        stack = np.random.default_rng(1).integers(1000, 5000, (3, 40, 40)).astype(np.uint16)
        tifffile.imwrite(tmp_path / "stack.tif", stack, imagej=True, metadata={"axes": "ZYX"})
        assert main(["restore", str(tmp_path / "stack.tif"), str(tmp_path / "out.tif"), "--model-kind", "wiener",
                     "--kernel", "Gaussian_R1", "--noise-level", "3", "--quiet"]) == 0
        assert "restored 1 of 1 file (3 images)" in capsys.readouterr().out


class TestTimeBudget:
    def test_durations_parse(self):
        assert parse_duration("10m") == 600 and parse_duration("1h30m") == 5400 and parse_duration("2.5s") == 2.5
        assert parse_duration(10) == 10.0  # a number is seconds (config files)
        for bad in ("10", "10x", "m", "-5m", "0s", ""):
            with pytest.raises(ValueError):
                parse_duration(bad)

    def test_bad_time_is_one_line(self, capsys):
        with pytest.raises(SystemExit) as exit_status:
            main(["train", *TINY_FLAGS, "--time", "ten minutes", "--out-dir", "unused"])
        assert exit_status.value.code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--time" in err and "10m" in err

    def test_steps_fit_the_budget(self):
        assert steps_for_time(600, 0.25) == 2142
        assert steps_for_time(1, 10.0) == 1  # at least one step
        assert steps_for_time(1200, 0.25) > 2 * steps_for_time(600, 0.25) - 50

    def test_stops_when_spent_and_counts_over_resumes(self, monkeypatch):
        import sei.training.time_budget as module

        clock = SimpleNamespace(now=100.0)
        monkeypatch.setattr(module.time, "perf_counter", lambda: clock.now)
        budget = TimeBudget(60)
        trainer = SimpleNamespace(should_stop=False)
        budget.on_train_start(trainer, None)
        clock.now += 59
        budget.on_train_batch_end(trainer, None, None, None, 0)
        assert not trainer.should_stop
        clock.now += 2
        budget.on_train_batch_end(trainer, None, None, None, 1)
        assert trainer.should_stop and budget.stopped_early
        resumed = TimeBudget(90)
        resumed.load_state_dict(budget.state_dict())
        resumed.on_train_start(trainer, None)
        assert resumed.elapsed() == pytest.approx(61)

    @staticmethod
    def fake_trainer(batches: int = 10) -> SimpleNamespace:
        return SimpleNamespace(global_step=0, should_stop=False, current_epoch=0, num_training_batches=batches,
                               fit_loop=SimpleNamespace(max_epochs=-1), is_global_zero=True,
                               strategy=SimpleNamespace(broadcast=lambda value, src=0: value))

    def test_replans_the_steps_from_the_pace_while_the_rate_is_constant(self, monkeypatch):
        """The probe said 10 times too few seconds per step: the plan follows the pace of the run instead, is
        recorded, and is final once the decay begins, even if the machine then slows down."""
        import sei.training.time_budget as module
        from sei.training.budget import StepBudget

        clock = SimpleNamespace(now=0.0)
        monkeypatch.setattr(module.time, "perf_counter", lambda: clock.now)
        plan, recorded = StepBudget(1900), []
        budget = TimeBudget(100, plan, decay_start=0.5, on_replan=recorded.append)
        trainer = self.fake_trainer()
        budget.on_train_start(trainer, None)
        history = []
        while not trainer.should_stop:
            clock.now += 0.5 if trainer.global_step < 120 else 0.6  # slower once the decay began
            trainer.current_epoch = trainer.global_step // trainer.num_training_batches
            trainer.global_step += 1
            assert trainer.fit_loop.max_epochs == -1 or trainer.fit_loop.max_epochs > trainer.current_epoch
            budget.on_train_batch_end(trainer, None, None, None, 0)
            plan.on_train_batch_end(trainer, None, None, None, 0)
            history.append(plan.steps)
        expected = steps_for_time(100, 0.5, module.REPLAN_SHARE)
        assert recorded and recorded[-1] == plan.steps and abs(plan.steps - expected) <= 2
        start = next(i for i, steps in enumerate(history) if steps == plan.steps)
        assert start < 0.5 * plan.steps  # final before the decay began
        assert trainer.global_step == plan.steps and not budget.stopped_early  # the whole schedule, in time
        assert trainer.fit_loop.max_epochs * trainer.num_training_batches >= plan.steps  # Lightning runs them all

    def test_a_replan_never_moves_the_decay_before_the_current_step(self, monkeypatch):
        import sei.training.time_budget as module
        from sei.training.budget import StepBudget

        clock = SimpleNamespace(now=0.0)
        monkeypatch.setattr(module.time, "perf_counter", lambda: clock.now)
        plan, replans = StepBudget(400), []
        trainer = self.fake_trainer()
        budget = TimeBudget(60, plan, decay_start=0.5, on_replan=lambda steps: replans.append((trainer.global_step,
                                                                                                 steps)))
        budget.on_train_start(trainer, None)
        while not trainer.should_stop:  # a machine far slower than the probe
            clock.now += 1.0 if trainer.global_step < 10 else 5.0
            trainer.global_step += 1
            budget.on_train_batch_end(trainer, None, None, None, 0)
        assert replans and all(0.5 * (steps - 1) >= step for step, steps in replans)
        assert budget.stopped_early  # the time ran out before the plan's end: said at the end of the run

    def test_a_given_step_count_is_not_replanned(self, monkeypatch):
        import sei.training.time_budget as module
        from sei.training.budget import StepBudget

        clock = SimpleNamespace(now=0.0)
        monkeypatch.setattr(module.time, "perf_counter", lambda: clock.now)
        plan = StepBudget(1000)
        budget, trainer = TimeBudget(100), self.fake_trainer()
        budget.on_train_start(trainer, None)
        for _ in range(70):
            clock.now += 0.5
            trainer.global_step += 1
            budget.on_train_batch_end(trainer, None, None, None, 0)
        assert plan.steps == 1000

    def test_a_run_slower_than_its_probe_still_finishes_its_schedule(self, tmp_path, capsys):
        """Steps made slower than the probe measured them: without re-planning the budget would stop the run at a
        fraction of its planned steps, its rate undecayed."""
        import time

        import lightning as L
        import yaml

        from sei.training.run import train

        class Slow(L.Callback):
            def on_train_batch_end(self, *args) -> None:
                time.sleep(0.1)

        run = tmp_path / "run"
        config = from_flat({**TINY, "train.time": "9s", "out_dir": str(run)})
        result = train(config, callbacks=[Slow()])
        out = capsys.readouterr().out
        probed = int(re.search(r"time budget .*? for (\d+) steps", out).group(1))
        summary = json.loads((run / "train_summary.json").read_text())
        recorded = yaml.safe_load((run / "config.yaml").read_text())["train"]["steps"]
        assert not summary["stopped_by_time"] and summary["steps"] == recorded < probed
        assert result.config.train.steps == recorded

    def test_a_time_budget_alone_decides_and_records_the_steps(self, tmp_path, capsys):
        run = tmp_path / "run"
        assert main(["train", *TINY_FLAGS[:-1], "--time", "3s", "--out-dir", str(run)]) == 0
        out = capsys.readouterr().out
        assert "time budget 3.0 s:" in out and "s per step at batch 2, measured" in out
        import yaml

        train = yaml.safe_load((run / "config.yaml").read_text())["train"]
        assert train["time"] == 3.0 and isinstance(train["steps"], int) and train["steps"] >= 1
        summary = json.loads((run / "train_summary.json").read_text())
        assert "training_seconds" in summary and "stopped_by_time" in summary

    def test_a_spent_budget_is_finished_until_raised(self, tmp_path, capsys):
        run = tmp_path / "run"
        assert main(["train", *TINY_FLAGS, "--steps", "100000", "--time", "2s", "--out-dir", str(run)]) == 0
        summary = json.loads((run / "train_summary.json").read_text())
        assert summary["stopped_by_time"] and summary["steps"] < 100000
        capsys.readouterr()
        assert main(["train", "--resume", "--out-dir", str(run)]) == 0  # finished: says so, exit 0
        said = capsys.readouterr()
        assert "already finished" in said.out + said.err
        assert main(["train", "--resume", "--time", "4s", "--out-dir", str(run)]) == 0
        assert json.loads((run / "train_summary.json").read_text())["steps"] > summary["steps"]


class TestWording:
    def test_plural(self):
        assert plural(1, "step") == "1 step" and plural(3, "step") == "3 steps"

    def test_recipe_line(self):
        config = resolve(from_flat({**TINY, "train.steps": 1, "out_dir": "unused"}))
        assert "1 step," in describe_recipe(config)
        timed = resolve(from_flat({**TINY, "train.time": "10m", "out_dir": "unused"}))
        assert "as many steps as fit in 10 min" in describe_recipe(timed)

    def test_lightning_banners_only_when_verbose(self, tmp_path):
        """As a terminal shows it: Lightning's device banner and model summary only with --verbose."""
        import subprocess
        import sys

        def run(*flags: str) -> str:
            done = subprocess.run([sys.executable, "-m", "sei", "train", *TINY_FLAGS, "--steps", "1", *flags],
                                  capture_output=True, text=True, check=True)
            return done.stdout + done.stderr

        quiet = run("--out-dir", str(tmp_path / "a"))
        assert "GPU available" not in quiet and "Trainable params" not in quiet
        verbose = run("--verbose", "--out-dir", str(tmp_path / "b"))
        assert "GPU available" in verbose and "Trainable params" in verbose

    def test_help_names_values_not_config_keys(self, capsys):
        with pytest.raises(SystemExit):
            main(["train", "--help"])
        text = capsys.readouterr().out
        assert "LOSS.METHOD" not in text and "PHYSICS." not in text and "TRAIN." not in text


class TestRestoreRecord:
    def test_restore_records_its_inputs_and_the_report_pairs_them(self, measurements, tmp_path):
        from sei.report import find

        out = tmp_path / "wiener"
        assert main(["restore", str(measurements), str(out), "--model-kind", "wiener", "--kernel", "Gaussian_R2",
                     "--noise-level", "2", "--quiet"]) == 0
        record = json.loads((out / "restore.json").read_text())
        assert record["kind"] == "sei restore" and record["model_kind"] == "wiener"
        assert record["files"]["cell0.tif"] == str((measurements / "cell0.tif").resolve())
        assert record["physics"]["noise_level"] == 2
        restorations = find([out]).restorations
        assert restorations and all(source is not None and source.is_file() for _, source in restorations[0].pairs)

    def test_a_foreign_restore_json_is_not_replaced(self, measurements, tmp_path, capsys):
        out = tmp_path / "out"
        out.mkdir()
        (out / "restore.json").write_text('{"mine": 1}')
        assert main(["restore", str(measurements), str(out), "--model-kind", "wiener", "--kernel", "Gaussian_R2",
                     "--noise-level", "2", "--quiet"]) == 2
        assert (out / "restore.json").read_text() == '{"mine": 1}' and not list(out.glob("*.tif"))
        assert "--overwrite" in capsys.readouterr().err
