"""Saving and loading backbone weights, with errors that say what does not fit.

Our weights files are ``{"params": state_dict, "sei_architecture": {...}}``: the ``params`` key is what the
original SwinIR code and ``deepinv.models.SwinIR(pretrained=path)`` read, and the architecture record lets
``sei`` rebuild any of its backbones from the file alone. Loading also accepts a bare ``state_dict``, the
authors' published files (a ``state_dict`` or ``{"params": ...}``), ``params_ema``, Lightning
checkpoints (``{"state_dict": {"backbone.<key>": ...}}``), and BioImage Model Zoo packages that ``sei export``
wrote (:mod:`sei.models.zoo`, which also give the intensity map of the network's run: :func:`read_intensity`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sei.core.checks import nonfinite_tensors
from sei.core.errors import ConfigError, SEIError, WeightsError
from sei.core.files import atomic_torch_save, describe_load_failure
from sei.physics.spec import PhysicsSpec, resolve_spec
from sei.models.registry import backbone_from_architecture, build_backbone, check_architecture
from sei.models.zoo import is_package, read_package

__all__ = ["load_backbone", "load_state", "read_intensity", "read_physics", "read_weights", "save_weights"]

# Prefixes added by our LightningModule, DistributedDataParallel and torch.compile.
_PREFIXES = ("backbone.", "module.", "_orig_mod.")
# SwinIR buffers recomputed from the configuration: a size mismatch there (another training img_size)
# does not make the learned weights unusable.
_DERIVED_BUFFERS = ("attn_mask", "relative_position_index")


def save_weights(model: nn.Module, path: str | Path, physics: PhysicsSpec | None = None) -> Path:
    """Write ``model``'s weights atomically to ``path``, with its architecture record (if it has one) and the
    physics spec it was trained for (a kernel file's content embedded), so the file alone can restore images."""
    payload: dict[str, Any] = {"params": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    architecture = getattr(model, "sei_architecture", None)
    if architecture is not None:
        payload["sei_architecture"] = architecture
    if physics is not None and not physics.operator:
        payload["sei_physics"] = physics.record()
    return atomic_torch_save(payload, path)


def _strip_prefixes(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    result = dict(state)
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if result and all(key.startswith(prefix) for key in result):
                result = {key[len(prefix):]: value for key, value in result.items()}
                changed = True
    return result


def read_physics(source: str | Path | Mapping[str, Any]) -> PhysicsSpec | None:
    """The physics spec a weights file records (``None`` for files without one, e.g. the authors' published ones).

    :raises WeightsError: if the file cannot be read or its record is malformed.
    """
    data, where = _load_payload(source)
    record = data.get("sei_physics") if isinstance(data, Mapping) else None
    if record is None:
        return None
    try:
        return resolve_spec(PhysicsSpec.from_dict(dict(record)))
    except SEIError as error:
        raise WeightsError(f"{where} hold a malformed physics record: {error}") from error


def read_intensity(source: str | Path | Mapping[str, Any]) -> dict[str, Any] | None:
    """The intensity map record (:class:`sei.io.intensity.IntensityMap`'s dict) that a zoo package carries from its
    network's run; ``None`` for weights files, which do not record one (a run folder's ``config.yaml`` does).

    :raises WeightsError: if the file cannot be read.
    """
    if isinstance(source, (str, Path)) and not is_package(source):
        return None  # not loaded twice: a weights file holds no map
    data, _ = _load_payload(source)
    record = data.get("sei_intensity") if isinstance(data, Mapping) else None
    return dict(record) if isinstance(record, Mapping) else None


def _load_payload(source: str | Path | Mapping[str, Any]) -> tuple[Any, str]:
    """What a weights file or zoo package holds (or the in-memory dict itself), and how to name it in messages."""
    where = "weights"
    if isinstance(source, (str, Path)):
        where = f"weights file {source}"
        path = Path(source)
        if not path.is_file():
            raise WeightsError(f"{where} not found")
        if is_package(path):
            return read_package(path), f"package {source}"
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # corrupted zip, pickle with forbidden globals, ...
            raise WeightsError(f"{where} cannot be read: {describe_load_failure(path, error)}") from error
    else:
        data = source
    return data, where


def _entry_problem(name: Any, value: Any) -> str | None:
    """Why an entry of a state dict is not a tensor named by a string, or None."""
    if not isinstance(name, str):
        return "is not named by a string"
    if not isinstance(value, torch.Tensor):
        return f"is a {type(value).__name__}, not a tensor"
    return None


def _state_of(data: Mapping[str, Any], where: str) -> dict[str, torch.Tensor]:
    """The state dict a weights payload holds: under ``params`` or ``params_ema`` (ours and the authors' files,
    where every entry must be a named tensor), under ``state_dict`` (Lightning checkpoints: the backbone's entries),
    else the payload itself (a bare ``state_dict``); of the last two, the named tensors.

    :raises WeightsError: for an entry of ``params`` that is not a named tensor, or no tensors at all.
    """
    for key in ("params", "params_ema", "state_dict"):
        if key in data and isinstance(data[key], Mapping):
            state = data[key]
            if key == "state_dict":
                state = {k: v for k, v in state.items() if isinstance(k, str) and k.startswith("backbone.")} or state
                break
            for name, value in state.items():
                problem = _entry_problem(name, value)
                if problem is not None:
                    raise WeightsError(f"{where}: entry {name!r} of {key!r} {problem}; the file is damaged or not a "
                                       "weights file")
            break
    else:  # a bare state dict, perhaps beside other values (an epoch count ...)
        state = data
    state = {k: v for k, v in state.items() if _entry_problem(k, v) is None}
    if not state:
        raise WeightsError(f"{where} holds no tensors")
    return state


def read_weights(source: str | Path | Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict | None]:
    """The state dict and architecture record (or None) held by a weights file or an in-memory dict, checked: the
    record against its backbone's declared rules (:func:`sei.models.registry.check_architecture`), and every
    tensor finite (weights of a diverged run would restore black images).

    :raises WeightsError: if the file is missing or unreadable, holds no state dict, a malformed architecture
        record (unknown backbone or option, a value outside its rule), an entry that is not a tensor, or NaN or
        infinite values.
    """
    data, where = _load_payload(source)
    if not isinstance(data, Mapping):
        raise WeightsError(f"{where} holds a {type(data).__name__}, not a state dict")
    architecture = data.get("sei_architecture")
    if architecture is not None:
        try:
            check_architecture(architecture)
        except ConfigError as error:
            raise WeightsError(f"{where}: {error}") from error
    state = _state_of(data, where)
    bad = nonfinite_tensors(state)
    if bad:
        more = f" and {len(bad) - 1} more tensors" if len(bad) > 1 else ""
        raise WeightsError(f"{where} holds NaN or infinite values (in {bad[0]!r}{more}); it is not usable: use an "
                           "earlier checkpoint")
    return _strip_prefixes(state), architecture


def _describe(model: nn.Module) -> str:
    architecture = getattr(model, "sei_architecture", None)
    if architecture:
        return f"{architecture['backbone']} (upscale {architecture['upscale']})"
    return type(model).__name__


def load_state(model: nn.Module, state: Mapping[str, torch.Tensor], where: str = "weights") -> nn.Module:
    """Load ``state`` into ``model`` strictly, raising :class:`WeightsError` with a summary on any mismatch."""
    own = model.state_dict()
    state = dict(state)
    for key in list(state):
        if key.endswith(_DERIVED_BUFFERS) and key in own and own[key].shape != state[key].shape:
            state[key] = own[key]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
                  for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        problems = []
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                             ("shape mismatches (file vs network)", mismatched)):
            if items:
                problems.append(f"{len(items)} {label}, e.g. {', '.join(items[:3])}")
        raise WeightsError(
            f"{where} do not fit the {_describe(model)} network: " + "; ".join(problems)
            + ". Check the backbone, the task and the super-resolution factor the weights were trained for."
        )
    model.load_state_dict(state, strict=True)
    return model


def load_backbone(source: str | Path | Mapping[str, Any], backbone: str | None = None, upscale: int | None = None,
                  in_chans: int = 3, physics: Any = None) -> nn.Module:
    """A network with weights loaded from ``source``.

    The architecture comes from the file's record when it has one; otherwise (e.g. the authors' published
    files) from ``backbone`` and ``upscale``. When both are present they must agree. ``physics`` is the
    measurement operator, which physics-aware backbones (``unrolled-*``) need and others ignore.

    :raises WeightsError: if the file cannot be used (:func:`read_weights`), or the weights do not fit.
    :raises ConfigError: for a physics-aware backbone without an operator.
    """
    state, architecture = read_weights(source)
    where = f"weights file {source}" if isinstance(source, (str, Path)) else "weights"
    if architecture is not None:
        if backbone is not None and backbone != architecture.get("backbone"):
            raise WeightsError(f"{where} were trained for backbone {architecture.get('backbone')!r}, not {backbone!r}")
        if upscale is not None and int(upscale) != int(architecture.get("upscale", 1)):
            raise WeightsError(f"{where} were trained for upscale {architecture.get('upscale')}, not {upscale} "
                               "(check the task and the super-resolution factor)")
        model = backbone_from_architecture(architecture, physics=physics)
    else:
        if backbone is None or upscale is None:
            raise WeightsError(f"{where} carry no architecture record; say which backbone and task they are for")
        model = build_backbone(backbone, upscale=upscale, in_chans=in_chans, physics=physics)
    return load_state(model, state, where)
