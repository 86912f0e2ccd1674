"""Memory modes: the automatic choice, forced modes, the error when nothing fits, the record in config.yaml."""

from __future__ import annotations

import pytest
import torch
import yaml

from sei.config.resolve import resolve
from sei.config.schema import from_flat
from sei.core.errors import ConfigError, InsufficientMemoryError
from sei.physics import make_physics
from sei.training.memory_plan import (
    GIB, USABLE_FRACTION, PeakMeter, StepProbe, choose_memory_mode, estimate_mode, plan_memory,
)

MIB = 2**20


def affine_step(costs: dict[str, tuple[float, float]], calls: list | None = None):
    """A fake probe: ``mode -> (fixed GB, GB per sample)``, recording its calls."""

    def measure(mode: str, batch: int) -> int:
        if calls is not None:
            calls.append((mode, batch))
        fixed, per_sample = costs[mode]
        return int((fixed + per_sample * batch) * GIB)

    return measure


# The paper's SwinIR SEI step at batch 8, roughly: none ~25 GB, checkpointing ~6 GB, lean ~3 GB.
SWINIR = {"none": (0.5, 3.0), "checkpointing": (0.5, 0.7), "lean": (0.3, 0.35)}
MODES = ("none", "checkpointing", "lean")


class TestChoice:
    def test_plentiful_memory_gives_none_after_one_probe(self):
        calls = []
        plan = choose_memory_mode(affine_step(SWINIR, calls), MODES, batch=8, crop=48, available=100 * GIB)
        assert plan.mode == "none"
        assert calls == [("none", 1)]  # batch x the batch-1 peak fits: no second probe
        assert plan.estimates[0].bound

    def test_scarce_memory_gives_checkpointing_then_lean(self):
        plan = choose_memory_mode(affine_step(SWINIR), MODES, batch=8, crop=48, available=24 * GIB)
        assert plan.mode == "checkpointing"
        assert [e.mode for e in plan.estimates] == ["none", "checkpointing"]
        assert plan.estimates[0].needed == pytest.approx(24.5 * GIB, rel=1e-6)  # affine fit of batches 1 and 2
        plan = choose_memory_mode(affine_step(SWINIR), MODES, batch=8, crop=48, available=5 * GIB)
        assert plan.mode == "lean"
        assert "lean" in plan.describe() and "RAM available 5.0 GB" in plan.describe()

    def test_nothing_fits_says_what_would(self):
        with pytest.raises(InsufficientMemoryError) as caught:
            choose_memory_mode(affine_step(SWINIR), MODES, batch=8, crop=48, available=int(2.2 * GIB))
        message = str(caught.value)
        budget = 2.2 * USABLE_FRACTION
        assert f"--batch-size {int((budget - 0.3) / 0.35)}" in message  # 4
        assert "--crop-size 32" in message  # 48 * sqrt((1.87 - 0.3) / (0.35 * 8)) = 35.9 -> a multiple of 8
        assert "even lean needs about 3.1 GB" in message and "RAM available 2.2 GB" in message
        assert isinstance(caught.value, MemoryError)

    def test_a_backbone_without_checkpointing_is_only_checked(self):
        with pytest.raises(InsufficientMemoryError, match="even none"):
            choose_memory_mode(affine_step(SWINIR), ("none",), batch=8, crop=48, available=10 * GIB)

    def test_no_second_probe_that_could_not_fit_itself(self):
        calls = []
        estimate = estimate_mode(affine_step(SWINIR, calls), "none", batch=8, budget=int(6 * GIB))
        assert calls == [("none", 1)] and estimate.bound and estimate.needed == 8 * int(3.5 * GIB)


def small_run(tmp_path, **values):
    settings = {"data.dataset": "sample", "model.backbone": "swinir-small", "physics.kernel": "Box_R2",
                "data.crop_size": 16, "data.batch_size": 2, "data.samples_per_epoch": 2, "train.steps": 1,
                "train.progress": False, "out_dir": str(tmp_path / "run")}
    settings.update(values)
    return resolve(from_flat(settings))


@pytest.mark.skipif(not PeakMeter.available_here(torch.device("cpu")), reason="needs /proc/self/clear_refs")
class TestMeasured:
    def test_the_probe_measures_the_step_and_checkpointing_needs_less(self, tmp_path):
        config = small_run(tmp_path, **{"data.crop_size": 48})
        plan = plan_memory(config, make_physics("deblurring", kernel="Box_R2", noise_level=5), available=1000 * GIB)
        assert plan.mode == "none" and plan.estimates[0].needed > 0
        from sei.training.module import SEIModule

        physics = make_physics("deblurring", kernel="Box_R2", noise_level=5)
        module = SEIModule(config.to_dict(), physics=physics)
        probe = StepProbe(module.backbone, module.method, physics, config, torch.device("cpu"))
        none, checkpointing = probe("none", 4), probe("checkpointing", 4)
        assert 0 < checkpointing < none
        assert all(p.grad is None for p in module.backbone.parameters())  # the run's network is untouched
        # a throwaway network (plan_memory's) is lent instead of copied
        assert StepProbe(module.backbone, module.method, physics, config, torch.device("cpu"),
                         copy_network=False).backbone is module.backbone

    def test_scarce_memory_picks_checkpointing(self, tmp_path):
        config = small_run(tmp_path, **{"data.crop_size": 48})
        physics = make_physics("deblurring", kernel="Box_R2", noise_level=5)
        first = plan_memory(config, physics, available=1000 * GIB).estimates[0]
        # between the checkpointed step's needs and the plain step's: measured, not assumed
        plan = plan_memory(config, physics, available=int(first.needed / USABLE_FRACTION * 0.5))
        assert plan.mode in ("checkpointing", "lean") and plan.estimates[0].mode == "none"

    def test_auto_records_the_mode_it_chose(self, tmp_path, capsys):
        from sei.cli import main

        run = tmp_path / "run"
        assert main(["train", "--dataset", "sample", "--model", "unet-tiny", "--kernel", "Box_R2", "--crop-size", "16",
                     "--batch-size", "2", "--samples-per-epoch", "2", "--steps", "1", "--quiet",
                     "--out-dir", str(run)]) == 0
        assert "memory: none (step at batch 2: none" in capsys.readouterr().out
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["train"]["memory"] == "none"
        assert not config["model"]["checkpointing"] and not config["train"]["release_memory"]


class TestForcedModes:
    @pytest.mark.parametrize(("values", "mode", "checkpointing", "release"), [
        ({"train.memory": "none"}, "none", False, False),
        ({"train.memory": "checkpointing"}, "checkpointing", True, False),
        ({"train.memory": "lean"}, "lean", True, True),
        ({"model.checkpointing": True}, "checkpointing", True, False),  # runs and files from before train.memory
        ({"model.checkpointing": True, "train.release_memory": True}, "lean", True, True),
        ({}, "auto", False, False),
    ])
    def test_resolution(self, tmp_path, values, mode, checkpointing, release):
        config = small_run(tmp_path, **values)
        assert (config.train.memory, config.model.checkpointing, config.train.release_memory) == \
            (mode, checkpointing, release)

    def test_lean_without_checkpointing_is_the_allocator_setting(self, tmp_path):
        config = small_run(tmp_path, **{"model.backbone": "unet-tiny", "train.memory": "lean"})
        assert not config.model.checkpointing and config.train.release_memory

    def test_unknown_mode(self, tmp_path):
        with pytest.raises(ConfigError, match="memory mode 'fast'"):
            small_run(tmp_path, **{"train.memory": "fast"})

    @pytest.mark.parametrize(("flag", "mode"), [("--lean-memory", "lean"), ("--checkpointing", "checkpointing"),
                                                ("--memory=checkpointing", "checkpointing")])
    def test_command_line_aliases_force_a_mode(self, tmp_path, flag, mode):
        from sei.cli import main

        run = tmp_path / "run"
        assert main(["train", "--dataset", "sample", "--model", "swinir-small", flag, "--kernel", "Box_R2",
                     "--crop-size", "16", "--batch-size", "1", "--samples-per-epoch", "2", "--steps", "1", "--quiet",
                     "--out-dir", str(run)]) == 0
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["train"]["memory"] == mode and config["model"]["checkpointing"]
        assert config["train"]["release_memory"] == (mode == "lean")


def test_a_resumed_run_keeps_its_recorded_mode(tmp_path, interrupt):
    from sei.training import train
    from sei.config.run_folder import RunFolder

    epochs_of_two_steps = {"data.samples_per_epoch": 4, "train.steps": None, "train.epochs": 2}
    config = small_run(tmp_path, **{"train.memory": "checkpointing", **epochs_of_two_steps})
    with pytest.raises(RuntimeError, match="simulated kill"):
        train(config, callbacks=[interrupt(3)])
    resumed = small_run(tmp_path, **epochs_of_two_steps)  # auto
    assert resumed.train.memory == "auto"
    result = train(resumed, resume=True)
    assert result.config.train.memory == "checkpointing" and result.config.model.checkpointing
    assert RunFolder(result.out_dir).config.train.memory == "checkpointing"


glibc_only = pytest.mark.skipif(not __import__("sei.core.memory").core.memory.is_glibc(), reason="glibc's allocator only")
COALESCING = ("glibc.malloc.tcache_count=0:glibc.malloc.mxfast=0:glibc.malloc.trim_threshold=1099511627776:"
              "glibc.malloc.mmap_threshold=33554432")


class TestCoalescingAllocator:
    def test_parse_and_format_tunables(self):
        from sei.core.memory import format_tunables, parse_tunables

        assert parse_tunables("") == {}
        assert parse_tunables("a.b=1:c=2::junk") == {"a.b": "1", "c": "2"}
        assert format_tunables({"a.b": "1", "c": "2"}) == "a.b=1:c=2"
        assert parse_tunables(format_tunables({"x": "0", "y.z": "33554432"})) == {"x": "0", "y.z": "33554432"}

    @glibc_only
    def test_adds_all_tunables_to_an_environment_without_them(self):
        from sei.core.memory import coalescing_active, coalescing_environment

        environment = coalescing_environment({"PATH": "/bin"})
        assert environment == {"PATH": "/bin", "GLIBC_TUNABLES": COALESCING}
        assert coalescing_active(environment) and not coalescing_active({"PATH": "/bin"})

    @glibc_only
    def test_keeps_other_tunables_and_a_users_own_setting(self):
        from sei.core.memory import coalescing_active, coalescing_environment

        environment = coalescing_environment({"GLIBC_TUNABLES": "glibc.malloc.tcache_count=7:glibc.cpu.x86_ibt=on"})
        assert environment["GLIBC_TUNABLES"] == ("glibc.malloc.tcache_count=7:glibc.cpu.x86_ibt=on:"
                                                 + COALESCING.partition(":")[2])
        assert not coalescing_active(environment)
        assert coalescing_environment(environment) is None  # nothing left to add: no second restart

    def test_nothing_to_do_without_glibc(self, monkeypatch):
        import sei.core.memory

        monkeypatch.setattr(sei.core.memory, "is_glibc", lambda: False)
        assert sei.core.memory.coalescing_environment({}) is None
        assert not sei.core.memory.coalescing_active({"GLIBC_TUNABLES": COALESCING})

    @glibc_only
    def test_restart_replaces_the_process_once_and_survives_a_failed_exec(self, monkeypatch):
        import sei.core.memory

        calls = []

        def execve(path, argv, environment):
            calls.append((path, argv, environment["GLIBC_TUNABLES"]))
            raise PermissionError("exec refused")

        monkeypatch.setattr(sei.core.memory.os, "execve", execve)
        monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
        sei.core.memory.restart_with_coalescing(["/usr/bin/python3", "-m", "sei", "info"])  # returns: exec failed
        assert calls == [("/usr/bin/python3", ["/usr/bin/python3", "-m", "sei", "info"], COALESCING)]
        monkeypatch.setenv("GLIBC_TUNABLES", COALESCING)
        sei.core.memory.restart_with_coalescing(["/usr/bin/python3", "-m", "sei", "info"])
        assert len(calls) == 1  # already set: no restart

    @glibc_only
    @pytest.mark.parametrize("tunables, expected", [(None, "freed tensors merge"),
                                                    ("glibc.malloc.tcache_count=7", "with its own settings")])
    def test_the_command_line_runs_with_the_tunables_unless_the_user_set_them(self, tunables, expected):
        import os
        import subprocess
        import sys

        environment = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
        if tunables:
            environment["GLIBC_TUNABLES"] = tunables
        result = subprocess.run([sys.executable, "-m", "sei", "info"], env=environment, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert expected in result.stdout
