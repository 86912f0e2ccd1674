"""Shared fixtures: small natural images and seeded generators."""

from __future__ import annotations

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
