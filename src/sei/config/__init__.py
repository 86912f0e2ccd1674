"""Experiment configuration: the typed, frozen schema (:mod:`~sei.config.schema`), the recipe of machine- and
budget-dependent defaults (:mod:`~sei.config.recipe`), resolution at the edge (:mod:`~sei.config.resolve`), where
networks come from (:mod:`~sei.config.sources`) and a run folder's layout (:mod:`~sei.config.run_folder`)."""

from sei.config.resolve import describe_recipe, requested_config, resolve
from sei.config.run_folder import RunFolder
from sei.config.schema import (
    DataConfig, ExperimentConfig, LossConfig, ModelConfig, PhysicsConfig, TrainConfig, from_dict, from_flat,
    load_config,
)
from sei.config.sources import NetworkSource, choose_physics, locate_network

__all__ = ["DataConfig", "ExperimentConfig", "LossConfig", "ModelConfig", "NetworkSource", "PhysicsConfig",
           "RunFolder", "TrainConfig", "choose_physics", "describe_recipe", "from_dict", "from_flat", "load_config",
           "locate_network", "requested_config", "resolve"]
