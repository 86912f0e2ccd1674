"""Shared fixtures: small natural images and seeded generators."""

from __future__ import annotations

import lightning as L
import pytest
import torch


@pytest.fixture(scope="session")
def natural_image() -> torch.Tensor:
    """A 96x128 RGB crop of a natural photograph (scikit-image's astronaut), (3, H, W) in [0, 1]."""
    from skimage import data

    array = data.astronaut()[40:232:2, 120:376:2]  # downsampled crop of the face region
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float() / 255.0


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


class Interrupt(L.Callback):
    """Simulates a run killed after ``step`` optimiser steps (raises ``RuntimeError("simulated kill")``)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_index) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError("simulated kill")


@pytest.fixture(scope="session")
def interrupt() -> type[Interrupt]:
    """The :class:`Interrupt` callback class: ``interrupt(step)`` stops a training run after ``step`` steps."""
    return Interrupt


# Device and dtype fixtures (kornia's way): a test that takes ``device`` runs on the CPU and, where PyTorch sees a
# GPU, again on CUDA (marked ``cuda``: ``python -m pytest -m cuda`` runs the GPU half alone); one that takes
# ``dtype`` runs in float32 and float64.
CUDA = pytest.param("cuda", marks=[pytest.mark.cuda,
                                   pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")])


@pytest.fixture(params=["cpu", CUDA])
def device(request) -> torch.device:
    if request.param == "cuda":
        # TF32 would make comparisons with the CPU at 1e-5 meaningless; training may use it
        previous = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        request.addfinalizer(lambda: _restore_tf32(previous))
    return torch.device(request.param)


def _restore_tf32(previous: tuple[bool, bool]) -> None:
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = previous


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request) -> torch.dtype:
    return request.param

