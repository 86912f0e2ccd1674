"""Gradient-norm clipping against a fixed bound and against the run's own recent gradients.

A fixed bound is loose once training settles: the laptop recipe's bound of 1 sits about 50 times above the norms of a
3-D U-Net on the nuclei stack (0.005-0.05 after the first steps). A single step whose gradient is 50 times the usual
then reaches Adam almost whole, and Adam, whose second moment has seen only small gradients, turns it into an update of
about ``lr * g / sqrt((1 - beta2) g^2) ~ 30 lr`` on every weight it touches. Runs on the nuclei stack showed losses of
5e4 and 5e6 times their median and lost about 1 dB; giving the spiking loss a zero gradient did not help (the weights
had already been broken by the step before), and bounding the step before by the recent norms did: such steps are the
likely cause (their norms were not logged then).

:class:`GradientClip` also bounds each step's global norm at ``relative`` times the median norm of the last ``window``
steps (in the manner of AutoClip, Seetharaman et al., 2020, which clips at a percentile of the history): a step
can move Adam's update by at most a few times the usual, whatever its batch. The history stays on the gradients'
device (no synchronisation per step) and is saved in checkpoints for exact resume.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["CLIP_WINDOW", "CLIP_WARMUP", "GradientClip"]

CLIP_WINDOW = 64  # steps whose gradient norms the relative bound follows
CLIP_WARMUP = 8  # norms seen before the relative bound applies: the first steps' are the largest of a run


class GradientClip:
    """Scales a step's gradients so that their global norm is at most ``absolute`` and at most ``relative`` times the
    median global norm of the last ``window`` steps (after :data:`CLIP_WARMUP` steps); either may be None (off).

    Norms are recorded unclipped; non-finite ones (an overflowing float16 step, which its scaler skips) are not. In
    data-parallel training the gradients are already averaged over the ranks, so every rank clips alike.

    :param absolute: bound on the global norm, or None.
    :param relative: bound as a multiple of the recent median norm, or None.
    :param window: number of recent steps whose median is used.

    >>> clip = GradientClip(absolute=None, relative=4.0, window=16)
    >>> weight = torch.zeros(2, requires_grad=True)
    >>> def step(gradient):
    ...     weight.grad = torch.tensor(gradient)
    ...     return float(clip([weight])), [round(value, 4) for value in weight.grad.tolist()]
    >>> [step([3.0, 4.0])[0] for _ in range(8)]  # the first steps set the median: 5
    [5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0]
    >>> step([300.0, 400.0])  # norm 500, clipped to 4 x 5
    (500.0, [12.0, 16.0])
    >>> step([3.0, 4.0])  # a usual step is left as it is
    (5.0, [3.0, 4.0])
    """

    def __init__(self, absolute: float | None = None, relative: float | None = None,
                 window: int = CLIP_WINDOW) -> None:
        if absolute is not None and not absolute > 0:
            raise ValueError(f"absolute must be positive or None, got {absolute!r}")
        if relative is not None and not relative > 0:
            raise ValueError(f"relative must be positive or None, got {relative!r}")
        self.absolute, self.relative, self.window = absolute, relative, window
        self.history = torch.full((window,), math.nan)
        self.recorded = 0

    def bound(self, norm: torch.Tensor) -> torch.Tensor:
        """The bound this step's ``norm`` (a 0-d tensor) is held to (``inf`` when none applies), recording it."""
        bound = torch.full((), self.absolute if self.absolute is not None else math.inf, device=norm.device)
        if self.relative is None:
            return bound
        history = self.history = self.history.to(norm.device)
        if self.recorded >= CLIP_WARMUP:
            bound = torch.minimum(bound, self.relative * torch.nanmedian(history))
        finite = torch.isfinite(norm)
        slot = self.recorded % self.window
        history[slot] = torch.where(finite, norm.float(), history[slot])
        self.recorded += 1
        return bound

    def __call__(self, parameters: list[torch.Tensor]) -> torch.Tensor:
        """Clip the gradients of ``parameters`` in place; returns their global norm before clipping."""
        gradients = [p.grad for p in parameters if p.grad is not None]
        if not gradients:
            return torch.zeros(())
        norm = torch.nn.utils.get_total_norm(gradients, foreach=True)
        bound = self.bound(norm)
        # a unit bound on norm / bound: the scale min(1, bound / norm) without a host synchronisation
        torch.nn.utils.clip_grads_with_norm_(parameters, 1.0, norm / bound)
        return norm

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history.cpu(), "recorded": self.recorded}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history, self.recorded = state["history"].clone(), int(state["recorded"])
