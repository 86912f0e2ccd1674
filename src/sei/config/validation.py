"""Checks of the training settings made when a configuration is resolved (the output folder's checks live with
:class:`sei.training.run_folder.RunFolder`).

This module imports neither torch nor Lightning: configuration resolution calls it.
"""

from __future__ import annotations

import math
from typing import Any

from sei.errors import ConfigError

# Lightning's precision names (``lightning.fabric.connector._PRECISION_INPUT_STR``), spelled out so that
# checking a configuration does not import Lightning.
PRECISIONS = ("32-true", "32", "16-mixed", "16", "bf16-mixed", "bf16", "16-true", "bf16-true", "64-true", "64",
              "transformer-engine", "transformer-engine-float16")


def _positive_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def check_train_settings(train: Any) -> None:
    """Check a :class:`sei.config.TrainConfig`'s values (learning rate, betas, precision, intervals).

    :raises ConfigError: naming the setting, the value and what is valid.
    """
    if train.lr is not None and not _positive_number(train.lr):
        raise ConfigError(f"the learning rate must be a positive number, got {train.lr!r}")
    betas = list(train.betas) if isinstance(train.betas, (list, tuple)) else None
    if betas is None or len(betas) != 2 or not all(isinstance(b, (int, float)) and 0.0 <= b < 1.0 for b in betas):
        raise ConfigError(f"train.betas must be two numbers in [0, 1), got {train.betas!r}")
    from sei.training.memory_plan import check_memory_mode

    check_memory_mode(train.memory)
    if str(train.precision) not in PRECISIONS:
        raise ConfigError(f"unknown precision {train.precision!r}; valid precisions: {', '.join(PRECISIONS)}")
    for name, minimum in (("log_every", 1), ("checkpoint_every", 0), ("checkpoint_keep", 0), ("val_every", 0),
                          ("num_nodes", 1)):
        value = getattr(train, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ConfigError(f"train.{name} must be an integer >= {minimum}, got {value!r}")
