"""Training methods by name: the method registry.

======================  ==========================================================  ==============
name (aliases)          loss                                                        ground truth
======================  ==========================================================  ==============
``sei`` (proposed)      SURE + alpha * scale equivariance, stop-gradient            no
``supervised`` (sup)    MSE to the clean image                                      yes
``css``                 MSE of f(A y + e'') to y (re-degraded measurement pairs)    no
``ei-shift``            SURE + alpha * circular-shift equivariance, stop-gradient   no
``ei-rotate``           SURE + alpha * rotation equivariance, stop-gradient         no
``sure``                SURE only                                                   no
``sei-no-stop-grad``    SEI with gradients through the transformed target           no
======================  ==========================================================  ==============

Adding a method is one :class:`MethodEntry` in :data:`METHOD_REGISTRY` (and its tests in
``tests/test_method_contracts.py``, which run on every entry).

>>> canonical_method("Proposed")
'sei'
>>> build_method("ei-rotate").name
'ei-rotate'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sei.core.errors import ConfigError, UnknownNameError

if TYPE_CHECKING:  # the registry is declarative: listing it imports neither torch nor deepinv (the factories do)
    from sei.losses.base import Method

__all__ = ["LOSS_OPTIONS", "METHOD_REGISTRY", "SURE_OPTIONS", "build_method", "canonical_method", "method_entry",
           "MethodEntry", "MethodFactory", "methods_help"]

# The options a method is built with (the loss section of a configuration); each factory takes those it uses.
SURE_OPTIONS = ("alpha", "tau", "sure_constant", "batched_probe", "divergence")
LOSS_OPTIONS = (*SURE_OPTIONS, "scale_factors", "scale_axes", "rotation_multiples")

MethodFactory = Callable[..., "Method"]


def _sure_options(options: dict[str, Any]) -> dict[str, Any]:
    return {key: options[key] for key in SURE_OPTIONS if key in options}


@dataclass(frozen=True)
class MethodEntry:
    """One training method: its name, the other names it answers to, what it is, and how to build it.

    :ivar factory: ``factory(stop_gradient=..., **options) -> Method`` with options among :data:`LOSS_OPTIONS`.
    :ivar volumes: the method trains on volumes (z-stacks) as on images; the EI variants' shifts and rotations are
        written for images only.
    """

    name: str
    aliases: tuple[str, ...]
    description: str
    needs_ground_truth: bool
    factory: MethodFactory
    volumes: bool = True


def _sei(stop_gradient: bool = True, **options: Any) -> Method:
    from sei.losses.sei import SEILoss

    scaling = {key: options[key] for key in ("scale_factors", "scale_axes") if key in options}
    return SEILoss(stop_gradient=stop_gradient, **scaling, **_sure_options(options))


def _supervised(**options: Any) -> Method:
    from sei.losses.supervised import Supervised

    return Supervised()


def _css(**options: Any) -> Method:
    from sei.losses.supervised import CSS

    return CSS()


def _ei_shift(stop_gradient: bool = True, **options: Any) -> Method:
    from sei.losses.sei import SEILoss
    from sei.transforms import RandomShift

    return SEILoss(RandomShift(), stop_gradient=stop_gradient, name="ei-shift", **_sure_options(options))


def _ei_rotate(stop_gradient: bool = True, **options: Any) -> Method:
    from sei.losses.sei import SEILoss
    from sei.transforms import RandomRotate

    return SEILoss(RandomRotate(options.get("rotation_multiples", 1.0)), stop_gradient=stop_gradient,
                   name="ei-rotate", **_sure_options(options))


def _sure(stop_gradient: bool = True, **options: Any) -> Method:
    from sei.losses.sei import SEILoss

    return SEILoss(None, name="sure", **_sure_options(options))


METHOD_REGISTRY: tuple[MethodEntry, ...] = (
    MethodEntry("sei", ("proposed",), "SURE + scale equivariance with stop-gradient (the paper's method)", False,
                _sei),
    MethodEntry("supervised", ("sup",), "MSE to clean images", True, _supervised),
    MethodEntry("css", (), "supervised on re-degraded measurement pairs (A y + e'', y)", False, _css),
    MethodEntry("ei-shift", ("eishift",), "SURE + circular-shift equivariance", False, _ei_shift, volumes=False),
    MethodEntry("ei-rotate", ("eirotate",), "SURE + rotation equivariance", False, _ei_rotate, volumes=False),
    MethodEntry("sure", ("sure-only",), "SURE only (measurement consistency)", False, _sure),
    MethodEntry("sei-no-stop-grad", ("sei-no-stop-gradient",), "SEI without stop-gradient (ablation)", False,
                lambda stop_gradient=False, **o: _sei(stop_gradient=False, **o)),
)


def method_entry(name: str) -> MethodEntry:
    """The registry entry for ``name`` or one of its aliases (case-insensitive, ``_`` read as ``-``).

    :raises UnknownNameError: listing every valid name and alias.
    """
    key = str(name).strip().lower().replace("_", "-")
    for entry in METHOD_REGISTRY:
        if key == entry.name or key in entry.aliases:
            return entry
    raise UnknownNameError("method", name, [n for e in METHOD_REGISTRY for n in (e.name, *e.aliases)])


def canonical_method(name: str, stop_gradient: bool = True) -> str:
    """The registry name of a method; ``sei`` without stop-gradient is the ``sei-no-stop-grad`` ablation."""
    key = method_entry(name).name
    return "sei-no-stop-grad" if key == "sei" and not stop_gradient else key


def methods_help() -> str:
    """``sei (alias proposed), supervised (sup), ...`` for help texts."""
    return ", ".join(e.name + (f" ({', '.join(e.aliases)})" if e.aliases else "") for e in METHOD_REGISTRY)


def build_method(name: str, stop_gradient: bool = True, **options: Any) -> Method:
    """A training method by name (see the module table), with its defaults for options not given.

    :param stop_gradient: ``False`` turns ``sei``, ``ei-shift`` and ``ei-rotate`` into their
        no-stop-gradient ablations (``sei-no-stop-grad`` is ``sei`` with this set).
    :param options: any of :data:`LOSS_OPTIONS` (``alpha``, ``tau``, ``sure_constant``, ``batched_probe``,
        ``divergence``, ``scale_factors``, ``rotation_multiples``); each method takes those it uses.
    :raises ConfigError: for an option no method takes.
    """
    unknown = sorted(set(options) - set(LOSS_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown loss option(s) {', '.join(unknown)}; valid: {', '.join(LOSS_OPTIONS)}")
    entry = method_entry(canonical_method(name, stop_gradient))
    return entry.factory(stop_gradient=stop_gradient, **options)
