"""``torch.compile`` for training: SwinIR region by region, any other network whole.

Compiling the paper's SwinIR whole traces 36 Swin blocks into one graph and recompiles it for every new input
size; a SEI step calls the network on three sizes (the crop, and the two down-scaled crops of the equivariance
term), so compilation took minutes. The blocks are identical code, so compiling each block in place gives one
small graph per input size that all 36 blocks reuse (PyTorch passes a block's parameters as graph inputs),
which compiles in seconds and keeps every state-dict key unchanged.

The compile modes are PyTorch's. ``reduce-overhead`` (and ``max-autotune``) also replay each compiled region as a
CUDA graph on GPUs: one launch per region instead of one per operation, for steps bound by launches rather than
by arithmetic (the paper's SwinIR on 48x48 crops, measured on an H100). On a CPU they compile as ``default`` does.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, ContextManager

import torch
from torch import nn

from sei.core.errors import ConfigError

__all__ = ["COMPILE_MODES", "CUDA_GRAPH_MODES", "compile_mode", "compile_network", "mark_step_begin",
           "running_eagerly", "swin_blocks", "uses_cuda_graphs", "without_cuda_graphs"]

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")  # torch.compile's modes that replay CUDA graphs
_OFF = ("false", "no", "off", "none")
_ON = ("true", "yes", "on")


def compile_mode(value: Any) -> str | None:
    """The ``torch.compile`` mode a setting asks for: None (not compiled), or one of :data:`COMPILE_MODES`.

    :param value: False, None, True (PyTorch's ``default`` mode), a mode name, or their spellings in YAML.
    :raises ConfigError: for anything else.
    """
    if value is None or value is False:
        return None
    if value is True:
        return "default"
    word = value.strip().lower() if isinstance(value, str) else None
    if word in _OFF:
        return None
    if word in _ON:
        return "default"
    if word in COMPILE_MODES:
        return word
    raise ConfigError(f"compile must be true, false or a torch.compile mode ({', '.join(COMPILE_MODES)}), "
                      f"got {value!r}")


def running_eagerly(mode: str | None) -> ContextManager:
    """A context in which compiled networks run their eager code: for passes on inputs of any size (validation),
    each of which would otherwise compile a graph, and record a CUDA graph, of its own. Nothing when not compiled."""
    return torch.compiler.set_stance("force_eager") if mode is not None else contextlib.nullcontext()


def uses_cuda_graphs(mode: str | None) -> bool:
    """Whether networks compiled in ``mode`` replay CUDA graphs (on GPUs), which need a step boundary marked."""
    return mode in CUDA_GRAPH_MODES


def without_cuda_graphs(mode: str) -> str:
    """The mode that compiles as ``mode`` does but replays no CUDA graphs."""
    return {"reduce-overhead": "default", "max-autotune": "max-autotune-no-cudagraphs"}.get(mode, mode)


def swin_blocks(model: nn.Module) -> list[nn.Module]:
    """The Swin transformer blocks of a :class:`sei.models.swinir.SwinIR` (empty for other networks)."""
    from sei.models.swinir import CachedMaskBlock

    return [module for module in model.modules() if isinstance(module, CachedMaskBlock)]


def compile_network(model: nn.Module, mode: str = "default") -> nn.Module:
    """The network to call in training steps: ``model`` with its Swin blocks compiled in place, or
    ``torch.compile(model)`` when it has none. Outputs and gradients are those of ``model``.

    :param mode: one of :data:`COMPILE_MODES`; a mode with CUDA graphs compiles without them (with a warning)
        for a network that checkpoints its activations.
    :raises ConfigError: for an unknown mode.
    """
    if mode not in COMPILE_MODES:
        raise ConfigError(f"unknown compile mode {mode!r}; valid: {', '.join(COMPILE_MODES)}")
    if uses_cuda_graphs(mode) and getattr(model, "checkpointing", False) not in (False, "none"):
        # A CUDA-graphed region recomputed by non-reentrant checkpointing fails in CUDA-graph trees (PyTorch issue
        # 154306): activations are recomputed, so compile without graphs.
        warnings.warn(f"compile mode {mode!r} replays CUDA graphs, which do not work with activation "
                      f"checkpointing: compiling in {without_cuda_graphs(mode)!r} mode instead", stacklevel=2)
        mode = without_cuda_graphs(mode)
    blocks = swin_blocks(model)
    if not blocks:
        return torch.compile(model, mode=mode)
    for block in blocks:  # their attention masks stay eager (CachedMaskBlock.calculate_mask)
        block.compile(dynamic=False, mode=mode)  # one graph per input size: the sizes of a run are few and fixed
    return model


def mark_step_begin(mode: str | None) -> None:
    """Tell PyTorch's CUDA-graph trees that a new training or validation step begins, so that the graphs' outputs of
    the previous step may be overwritten (without the mark the trees guess the boundary, and record new graphs when
    an output of an earlier step is still referenced). Nothing for modes without CUDA graphs."""
    if uses_cuda_graphs(mode):
        torch.compiler.cudagraph_mark_step_begin()
