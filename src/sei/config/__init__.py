"""Experiment configuration: the typed, frozen schema (:mod:`~sei.config.schema`), the recipe of machine- and
budget-dependent defaults (:mod:`~sei.config.recipe`), resolution at the edge (:mod:`~sei.config.resolve`), where
networks come from (:mod:`~sei.config.sources`) and a run folder's layout (:mod:`~sei.config.run_folder`).

The names below load their module on first use, so that ``sei train --help`` can quote the recipe's defaults
without importing torch or deepinv.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

# public name -> module that defines it
_LAZY = {
    **dict.fromkeys(("describe_recipe", "requested_config", "resolve"), "sei.config.resolve"),
    "RunFolder": "sei.config.run_folder",
    **dict.fromkeys(("DataConfig", "ExperimentConfig", "LossConfig", "ModelConfig", "PhysicsConfig", "TrainConfig",
                     "from_dict", "from_flat", "load_config"), "sei.config.schema"),
    **dict.fromkeys(("NetworkSource", "choose_physics", "locate_network"), "sei.config.sources"),
}

__all__ = ["DataConfig", "ExperimentConfig", "LossConfig", "ModelConfig", "NetworkSource", "PhysicsConfig",
           "RunFolder", "TrainConfig", "choose_physics", "describe_recipe", "from_dict", "from_flat", "load_config",
           "locate_network", "requested_config", "resolve"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sei.config' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


class _Package(types.ModuleType):
    """This package, whose ``resolve`` is the function :func:`sei.config.resolve.resolve` whether or not its module
    was imported first (importing a submodule sets the package's attribute of its name to the module)."""

    @property
    def resolve(self) -> Any:
        return importlib.import_module("sei.config.resolve").resolve

    @resolve.setter
    def resolve(self, module: Any) -> None:  # the import system records the submodule; sys.modules keeps it
        pass


sys.modules[__name__].__class__ = _Package
