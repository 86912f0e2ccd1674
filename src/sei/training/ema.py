"""An exponential moving average (EMA) of the backbone's weights, for validation and for the saved weights.

Averaging the iterates of a short, noisy training run gives weights that generalise better than the last
iterate, at the cost of one copy of the weights. The average is updated after every optimiser step:

    ema <- d_t * ema + (1 - d_t) * theta,    d_t = min(decay, (1 + t) / (10 + t))

(``t`` the number of updates so far: the warm-up keeps the random initial weights from dominating the average
of a short run). Validation runs with the averaged weights, and at the end of training they are copied into
the backbone, so ``weights.pt`` holds them. Checkpoints hold the average and its update count (the callback's
state), and training itself always continues from the raw weights: a resumed run ends with the same averaged
weights, bit for bit, as an uninterrupted one.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn

from sei.core.errors import ConfigError

__all__ = ["EMA", "averaged_tensors", "ema_decay", "swap_weights", "update_average"]


def ema_decay(decay: float, updates: int) -> float:
    """The decay used at update number ``updates`` (0-based): ``min(decay, (1 + t) / (10 + t))``."""
    return min(decay, (1.0 + updates) / (10.0 + updates))


def averaged_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The named tensors an average covers: every floating-point parameter and buffer of ``model``."""
    tensors = dict(model.named_parameters())
    tensors.update((name, buffer) for name, buffer in model.named_buffers() if buffer.is_floating_point())
    return tensors


@torch.no_grad()
def update_average(average: dict[str, torch.Tensor], model: nn.Module, decay: float) -> None:
    """``average <- decay * average + (1 - decay) * model`` in place, tensor by tensor."""
    for name, tensor in averaged_tensors(model).items():
        average[name].lerp_(tensor.detach().to(average[name].dtype), 1.0 - decay)


@torch.no_grad()
def swap_weights(average: dict[str, torch.Tensor], model: nn.Module) -> None:
    """Exchange ``model``'s tensors with those of ``average`` in place (calling it twice restores both)."""
    for name, tensor in averaged_tensors(model).items():
        held = average[name]
        copy = tensor.detach().clone()
        tensor.copy_(held)
        held.copy_(copy)


class EMA(L.Callback):
    """Keeps an exponential moving average of ``pl_module.backbone``'s weights (see the module docstring).

    :param decay: the long-run decay per optimiser step, in [0, 1): the average spans about
        ``1 / (1 - decay)`` steps (0.999: the last thousand steps).
    :param attribute: the LightningModule attribute holding the network to average.
    """

    def __init__(self, decay: float = 0.999, attribute: str = "backbone") -> None:
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"EMA decay must lie in [0, 1), got {decay}")
        self.decay = float(decay)
        self.attribute = attribute
        self.updates = 0
        self.average: dict[str, torch.Tensor] | None = None
        self._last_step: int | None = None
        self._swapped = False

    @property
    def state_key(self) -> str:
        return f"EMA[{self.attribute}]"

    def _network(self, pl_module: L.LightningModule) -> nn.Module:
        return getattr(pl_module, self.attribute)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        tensors = averaged_tensors(self._network(pl_module))
        if self.average is None:  # a fresh run (a resumed one got its average from the checkpoint)
            self.average = {name: tensor.detach().clone() for name, tensor in tensors.items()}
        else:
            missing = set(tensors) ^ set(self.average)
            if missing:
                raise ConfigError(f"the checkpoint's weight average does not fit the network: {sorted(missing)[:3]}")
            self.average = {name: self.average[name].to(device=tensor.device, dtype=tensor.dtype)
                            for name, tensor in tensors.items()}
        self._last_step = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_index: int) -> None:
        if self.average is None or trainer.global_step == self._last_step:  # no optimiser step (accumulation)
            return
        self._last_step = trainer.global_step
        update_average(self.average, self._network(pl_module), ema_decay(self.decay, self.updates))
        self.updates += 1

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.average is not None and not trainer.sanity_checking and not self._swapped:
            swap_weights(self.average, self._network(pl_module))
            self._swapped = True

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._swapped:
            swap_weights(self.average, self._network(pl_module))
            self._swapped = False

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The network keeps the averaged weights: what the run saves and what a caller evaluates."""
        if self.average is not None and not self._swapped:
            with torch.no_grad():
                for name, tensor in averaged_tensors(self._network(pl_module)).items():
                    tensor.copy_(self.average[name])

    def state_dict(self) -> dict[str, Any]:
        if self._swapped:  # a checkpoint taken during validation: the network holds the average, `average` the raw
            raise RuntimeError("EMA state requested while the averaged weights are swapped in")
        average = None if self.average is None else {k: v.detach().cpu().clone() for k, v in self.average.items()}
        return {"decay": self.decay, "updates": self.updates, "average": average}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if float(state_dict["decay"]) != self.decay:
            raise ConfigError(f"the checkpoint's EMA decay is {state_dict['decay']}, this run's {self.decay}")
        self.updates = int(state_dict["updates"])
        self.average = state_dict["average"]
