"""Exponential moving average of the weights: the update, validation and saved weights, exact resume."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch import nn

from sei.config.schema import from_flat
from sei.core.errors import ConfigError
from sei.training import train
from sei.training.ema import EMA, ema_decay, swap_weights, update_average

TINY = {"data.dataset": "sample", "physics.kernel": "Gaussian_R1", "model.backbone": "unet-tiny",
        "data.batch_size": 2, "data.crop_size": 24, "data.samples_per_epoch": 8, "train.progress": False,
        "loss.method": "sei"}


def params(path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["params"]


def test_decay_warms_up_then_stays_at_the_given_value():
    assert ema_decay(0.999, 0) == pytest.approx(0.1)
    assert ema_decay(0.999, 10) == pytest.approx(11 / 20)
    assert ema_decay(0.9, 10_000) == 0.9


def test_update_and_swap():
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.fill_(1.0)
    average = {name: torch.zeros_like(tensor) for name, tensor in model.state_dict().items()}
    update_average(average, model, 0.75)
    torch.testing.assert_close(average["weight"], torch.full((2, 2), 0.25))
    swap_weights(average, model)
    torch.testing.assert_close(model.weight.detach(), torch.full((2, 2), 0.25))
    torch.testing.assert_close(average["weight"], torch.ones(2, 2))
    swap_weights(average, model)
    torch.testing.assert_close(model.weight.detach(), torch.ones(2, 2))


def test_invalid_decay_is_refused():
    with pytest.raises(ConfigError):
        EMA(decay=1.0)




class RecordRaw(L.Callback):
    """Keeps the raw (not averaged) weights the optimiser ended with."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_index) -> None:
        self.raw = {k: v.detach().clone() for k, v in pl_module.backbone.state_dict().items()}


def test_saved_weights_are_the_average_of_the_iterates(tmp_path):
    raw, ema = RecordRaw(), EMA(decay=0.9)
    # two whole epochs of 4 steps: last.ckpt is written at the end of the last one (tests/test_training.py)
    result = train(from_flat({**TINY, "train.steps": 8, "out_dir": str(tmp_path / "a")}), callbacks=[raw, ema])
    saved = params(result.weights)
    assert ema.updates == 8
    assert all(torch.equal(saved[k], ema.average[k].cpu()) for k in ema.average)
    assert any(not torch.equal(saved[k], raw.raw[k]) for k in saved)  # not the last iterate
    checkpoint = torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", weights_only=False)
    state = checkpoint["callbacks"][ema.state_key]
    assert state["updates"] == 8 and all(torch.equal(state["average"][k], saved[k]) for k in saved)


def test_validation_uses_the_average_and_training_continues_from_the_raw_weights(tmp_path):
    """With EMA on, the raw weights after training equal those of a run without EMA (same seed)."""
    plain, averaged = RecordRaw(), RecordRaw()
    settings = {**TINY, "train.steps": 5, "train.val_every": 1, "data.val_dataset": "sample", "data.val_max_images": 1}
    train(from_flat({**settings, "out_dir": str(tmp_path / "a")}), callbacks=[plain])
    train(from_flat({**settings, "out_dir": str(tmp_path / "b")}), callbacks=[averaged, EMA(decay=0.5)])
    assert all(torch.equal(plain.raw[k], averaged.raw[k]) for k in plain.raw)


@pytest.mark.parametrize("budget", [{"train.steps": 11}, {"train.epochs": 3}])
def test_resumed_run_with_ema_matches_an_uninterrupted_one(tmp_path, budget, interrupt):
    settings = {**TINY, **budget}
    reference = train(from_flat({**settings, "out_dir": str(tmp_path / "a")}), callbacks=[EMA(decay=0.8)])
    with pytest.raises(RuntimeError, match="simulated kill"):
        train(from_flat({**settings, "out_dir": str(tmp_path / "b")}), callbacks=[interrupt(6), EMA(decay=0.8)])
    resumed = train(from_flat({**settings, "out_dir": str(tmp_path / "b")}), resume=True, callbacks=[EMA(decay=0.8)])
    first, second = params(reference.weights), params(resumed.weights)
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_resuming_with_another_decay_is_refused(tmp_path, interrupt):
    settings = {**TINY, "train.steps": 8, "out_dir": str(tmp_path / "run")}
    with pytest.raises(RuntimeError):
        train(from_flat(settings), callbacks=[interrupt(5), EMA(decay=0.8)])
    with pytest.raises(ConfigError, match="EMA decay"):
        train(from_flat(settings), resume=True, callbacks=[EMA(decay=0.9)])


def test_the_ema_setting_adds_the_callback(tmp_path):
    from sei.config.resolve import resolve
    from sei.config.schema import from_flat
    from sei.training import build_trainer
    from sei.training.ema import EMA

    config = resolve(from_flat({"data.dataset": "sample", "train.ema_decay": 0.99, "out_dir": str(tmp_path / "r")}))
    assert [c.decay for c in build_trainer(config).callbacks if isinstance(c, EMA)] == [0.99]
    config = resolve(from_flat({"train.ema_decay": None}, config))
    assert not any(isinstance(c, EMA) for c in build_trainer(config).callbacks)
