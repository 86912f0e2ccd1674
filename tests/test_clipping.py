"""Gradient clipping against a fixed bound and against the recent median norm: the bound, its history, exact
resume and the recipe's choice."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch

from sei.config.schema import from_flat
from sei.core.errors import ConfigError
from sei.training import train
from sei.training.clipping import CLIP_WARMUP, GradientClip

TINY = {"data.dataset": "sample", "physics.kernel": "Gaussian_R1", "model.backbone": "unet-tiny",
        "data.batch_size": 2, "data.crop_size": 24, "data.samples_per_epoch": 8, "train.progress": False,
        "loss.method": "sei"}


def norm_after(clip: GradientClip, gradient: list[float], device="cpu", dtype=torch.float32) -> float:
    weight = torch.zeros(len(gradient), device=device, dtype=dtype, requires_grad=True)
    weight.grad = torch.tensor(gradient, device=device, dtype=dtype)
    clip([weight])
    return float(torch.linalg.vector_norm(weight.grad))


class TestGradientClip:
    def test_smoke_a_spike_is_bounded_by_the_recent_median_and_usual_steps_are_not(self, device, dtype):
        clip = GradientClip(relative=4.0, window=16)
        usual = [norm_after(clip, [0.0, value], device, dtype) for value in (1.0, 2.0, 3.0) * 4]
        assert usual == pytest.approx([1.0, 2.0, 3.0] * 4)  # below 4 x the median of 2
        assert norm_after(clip, [300.0, 400.0], device, dtype) == pytest.approx(8.0, rel=1e-5)
        assert norm_after(clip, [0.0, 7.0], device, dtype) == pytest.approx(7.0)  # the spike did not move the bar

    def test_the_first_steps_are_held_by_the_fixed_bound_only(self):
        clip = GradientClip(absolute=50.0, relative=1.0)
        norms = [norm_after(clip, [0.0, 10.0 ** (k % 3)]) for k in range(CLIP_WARMUP)]
        assert norms == pytest.approx([1.0, 10.0, 50.0, 1.0, 10.0, 50.0, 1.0, 10.0])

    def test_the_tighter_of_the_two_bounds_applies(self):
        clip = GradientClip(absolute=3.0, relative=4.0)
        for _ in range(CLIP_WARMUP):
            norm_after(clip, [0.0, 2.0])
        assert norm_after(clip, [0.0, 100.0]) == pytest.approx(3.0, rel=1e-5)  # 3 < 4 x 2
        clip.absolute = None
        assert norm_after(clip, [0.0, 100.0]) == pytest.approx(8.0, rel=1e-5)

    def test_the_median_follows_the_last_window_of_steps(self):
        clip = GradientClip(relative=2.0, window=CLIP_WARMUP)
        for _ in range(CLIP_WARMUP):
            norm_after(clip, [0.0, 100.0])
        for _ in range(CLIP_WARMUP):  # a settling run: the large first norms leave the window
            norm_after(clip, [0.0, 1.0])
        assert norm_after(clip, [0.0, 10.0]) == pytest.approx(2.0, rel=1e-5)

    def test_a_non_finite_norm_is_not_recorded(self):
        clip = GradientClip(relative=4.0)
        for _ in range(CLIP_WARMUP):
            norm_after(clip, [0.0, 1.0])
        weight = torch.zeros(1, requires_grad=True)
        weight.grad = torch.tensor([math.inf])
        assert math.isinf(float(clip([weight])))  # its norm is returned, for the scaler to skip the step
        assert int(torch.isfinite(clip.history).sum()) == CLIP_WARMUP
        assert norm_after(clip, [0.0, 40.0]) == pytest.approx(4.0, rel=1e-5)

    def test_no_bound_and_no_gradients_leave_everything_as_it_is(self):
        assert norm_after(GradientClip(), [0.0, 1e9]) == pytest.approx(1e9)
        assert float(GradientClip(relative=4.0)([torch.zeros(2, requires_grad=True)])) == 0.0

    def test_its_state_round_trips(self):
        clip = GradientClip(relative=3.0)
        for value in range(1, 12):
            norm_after(clip, [0.0, float(value)])
        copy = GradientClip(relative=3.0)
        copy.load_state_dict(clip.state_dict())
        assert norm_after(copy, [0.0, 1000.0]) == norm_after(clip, [0.0, 1000.0])

    @pytest.mark.parametrize("absolute,relative", [(0.0, None), (-1.0, None), (None, 0.0), (None, -2.0)])
    def test_exception_bounds_must_be_positive(self, absolute, relative):
        with pytest.raises(ValueError, match="must be positive"):
            GradientClip(absolute=absolute, relative=relative)


class TestClippingInTraining:
    def test_every_step_after_the_warm_up_is_held_to_its_recent_median(self, tmp_path):
        recorded = []

        class Norms(L.Callback):  # after the optimiser step the gradients are those it used
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_index) -> None:
                grads = [p.grad for p in pl_module.backbone.parameters() if p.grad is not None]
                clip = pl_module._clip
                recorded.append((float(torch.nn.utils.get_total_norm(grads)), clip.history.clone(), clip.recorded))

        train(from_flat({**TINY, "train.steps": 14, "train.grad_clip": "none", "train.grad_clip_median": 0.5,
                         "out_dir": str(tmp_path / "run")}), callbacks=[Norms()])
        for clipped, history, seen in recorded[CLIP_WARMUP:]:
            before = history.clone()
            before[(seen - 1) % history.numel()] = math.nan  # the median this step was held to left its own out
            assert clipped <= 0.5 * float(torch.nanmedian(before)) * (1 + 1e-4)

    def test_a_resumed_run_matches_an_uninterrupted_one(self, tmp_path, interrupt):
        settings = {**TINY, "train.steps": 14, "train.grad_clip_median": 0.8, "train.checkpoint_every": 1}
        reference = train(from_flat({**settings, "out_dir": str(tmp_path / "a")}))
        with pytest.raises(RuntimeError, match="simulated kill"):
            train(from_flat({**settings, "out_dir": str(tmp_path / "b")}), callbacks=[interrupt(10)])
        resumed = train(from_flat({**settings, "out_dir": str(tmp_path / "b")}), resume=True)
        first, second = (torch.load(run.weights, weights_only=True)["params"] for run in (reference, resumed))
        assert all(torch.equal(first[key], second[key]) for key in first)


class TestRecipe:
    def test_the_laptop_recipe_bounds_by_the_median_the_papers_does_not_and_the_setting_is_checked(self):
        from sei.config.recipe import GRAD_CLIP_MEDIAN, resolve_grad_clip_median
        from sei.config.resolve import resolve

        assert resolve(from_flat({})).train.grad_clip_median == GRAD_CLIP_MEDIAN  # on this CPU: the laptop recipe
        assert resolve_grad_clip_median("auto", 2, laptop=False) is None  # the paper's SwinIR recipe
        assert resolve(from_flat({"train.grad_clip_median": "8"})).train.grad_clip_median == 8.0
        for off in ("none", 0, None):
            assert resolve(from_flat({"train.grad_clip_median": off})).train.grad_clip_median is None
        for bad in (-1, "big", float("nan")):
            with pytest.raises(ConfigError, match="grad_clip_median"):
                resolve(from_flat({"train.grad_clip_median": bad}))

    def test_runs_recorded_before_it_resume_without_it(self, tmp_path):
        import yaml

        from sei.config.run_folder import RunFolder

        run = tmp_path / "run"
        train(from_flat({**TINY, "train.steps": 1, "train.grad_clip_median": 4, "out_dir": str(run)}))
        values = yaml.safe_load((run / "config.yaml").read_text())
        assert values["train"]["grad_clip_median"] == 4.0
        del values["train"]["grad_clip_median"]
        (run / "config.yaml").write_text(yaml.safe_dump(values))
        assert RunFolder(run).config.train.grad_clip_median is None
