"""Checks made before a run starts: training settings, and the output folder (nothing sei did not write is
overwritten, and a finished run is not "resumed" into an empty summary).

This module imports neither torch nor Lightning: configuration resolution calls it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from sei.errors import ConfigError, RunFinishedError

# Lightning's precision names (``lightning.fabric.connector._PRECISION_INPUT_STR``), spelled out so that
# checking a configuration does not import Lightning.
PRECISIONS = ("32-true", "32", "16-mixed", "16", "bf16-mixed", "bf16", "16-true", "bf16-true", "64-true", "64",
              "transformer-engine", "transformer-engine-float16")
CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "train_summary.json"
WEIGHTS_FILE = "weights.pt"
# The sections of a configuration sei writes (see sei.config.ExperimentConfig).
_RUN_SECTIONS = {"physics", "data", "model", "loss", "train"}


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
    if str(train.precision) not in PRECISIONS:
        raise ConfigError(f"unknown precision {train.precision!r}; valid precisions: {', '.join(PRECISIONS)}")
    for name, minimum in (("log_every", 1), ("checkpoint_every", 0), ("val_every", 0), ("num_nodes", 1)):
        value = getattr(train, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ConfigError(f"train.{name} must be an integer >= {minimum}, got {value!r}")


def is_sei_run(folder: str | Path) -> bool:
    """Whether ``folder``'s ``config.yaml`` is one sei wrote: a mapping holding all of sei's configuration
    sections (a later version may add keys, so others are allowed)."""
    path = Path(folder) / CONFIG_FILE
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and _RUN_SECTIONS <= set(data)


def check_out_dir(out_dir: str | Path) -> None:
    """Refuse an output folder that holds a ``config.yaml`` sei did not write (it would be overwritten).

    :raises ConfigError: naming the file.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out-dir {out_dir} is a file, not a folder")
    config = out_dir / CONFIG_FILE
    if config.exists() and not is_sei_run(out_dir):
        raise ConfigError(f"{out_dir} holds a {CONFIG_FILE} that sei did not write; it would be overwritten. "
                          "Choose another --out-dir")


def check_not_finished(out_dir: str | Path, steps: int | None, epochs: int | None) -> None:
    """Refuse to resume a run that already reached its budget (``steps`` or ``epochs``).

    :raises RunFinishedError: (exit status 0 on the command line) naming the run's weights.
    """
    out_dir = Path(out_dir)
    summary_path, weights = out_dir / SUMMARY_FILE, out_dir / WEIGHTS_FILE
    if not (summary_path.is_file() and weights.is_file()):
        return
    try:
        summary = json.loads(summary_path.read_text())
        done_steps, done_epochs = int(summary.get("steps", -1)), int(summary.get("epochs", -1))
    except (OSError, ValueError, TypeError, AttributeError):
        return  # an unreadable summary says nothing about being finished: let the resume go on
    if (steps is not None and done_steps >= steps) or (epochs is not None and done_epochs >= epochs):
        raise RunFinishedError(f"{out_dir} already finished ({done_steps} steps); its weights are {weights}. "
                               "Nothing to resume (raise --steps or --epochs to train it further)")
