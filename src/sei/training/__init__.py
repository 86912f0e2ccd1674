"""The training engine: Lightning module and data module, checkpoints, the learning-rate schedule, runs."""

from sei.training.run import TrainResult, build_trainer, load_run_config, train

__all__ = ["TrainResult", "build_trainer", "load_run_config", "train"]
