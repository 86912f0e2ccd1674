"""The plugin's sample data (napari's File > Open Sample > sei): blurred examples made without a file or a network,
each with its PSF, so that a first-time user can try the PSF, Train and Restore tabs at once.

- ``blurred_photo``: the ``sample`` set's ``camera`` photograph (the embedded data of ``sei demo``), its shorter side
  256 px, through the paper's Gaussian_R2 blur with Gaussian noise of 5 grey levels, as ``sei degrade`` simulates it;
  the shipped network ``pretrained:photos-gaussian-r2`` restores it without training.
- ``blurred_stack``: a synthetic fluorescence z-stack (:func:`sei.data.phantoms.fluorescence_phantom`, 24 x 96 x 96
  voxels of 0.3 x 0.1 x 0.1 um) through a widefield PSF (NA 1.4, 520 nm) with Poisson-Gaussian noise, 16-bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["PHOTO", "PHOTO_SIDE", "STACK_SHAPE", "STACK_VOXEL_UM", "blurred_photo", "blurred_stack"]

PHOTO, PHOTO_SIDE = "camera", 256
STACK_SHAPE = (24, 96, 96)
STACK_VOXEL_UM = (0.3, 0.1, 0.1)

LayerData = tuple[np.ndarray, dict[str, Any], str]


def _measured(spec_values: dict[str, Any], clean: torch.Tensor, seed: str) -> torch.Tensor:
    """``A x + e`` of a ``(C, ...)`` clean image by the operator ``spec_values`` describe, seeded."""
    from sei.core.rng import make_generator
    from sei.physics.noise import measure
    from sei.physics.spec import PhysicsSpec, resolve_spec

    physics = resolve_spec(PhysicsSpec(**spec_values)).build()
    with torch.no_grad():
        return measure(physics, clean[None], make_generator("napari sample", seed))[0]


def blurred_photo() -> list[LayerData]:
    """The blurred photograph (8-bit, what its measurement would be as a PNG), its clean original (hidden) and the
    Gaussian_R2 PSF (hidden)."""
    from sei.data.preprocess import resize_shorter_side
    from sei.data.sources import sample_image
    from sei.io.intensity import integer_map
    from sei.physics.kernels import kernel_from_name

    clean = resize_shorter_side(sample_image(PHOTO)[:1], PHOTO_SIDE).clamp(0, 1)
    blurred = _measured({"task": "deblurring", "kernel": "Gaussian_R2", "noise_level": 5.0}, clean, PHOTO)
    to_8bit = integer_map("uint8").from_network
    return [
        (to_8bit(clean[0].numpy()), {"name": f"{PHOTO} (clean)", "visible": False}, "image"),
        (to_8bit(blurred[0].numpy()), {"name": f"{PHOTO} blurred (Gaussian_R2, noise 5)"}, "image"),
        (kernel_from_name("Gaussian_R2").numpy(), {"name": "PSF Gaussian_R2", "colormap": "magma", "visible": False},
         "image"),
    ]


def blurred_stack() -> list[LayerData]:
    """The blurred z-stack (16-bit, with its voxel size in micrometres), its clean phantom (hidden) and its 3-D
    widefield PSF (hidden), on one physical scale."""
    from sei.data.phantoms import fluorescence_phantom
    from sei.io.intensity import integer_map
    from sei.physics.psf import psf_with_sampling

    z, y, x = STACK_VOXEL_UM
    clean = fluorescence_phantom(STACK_SHAPE, seed=0, anisotropy=z / x)
    psf, sampling = psf_with_sampling("widefield", wavelength=0.52, na=1.4, pixel_size=x, z_step=z, planes=9, size=15)
    blurred = _measured({"task": "deblurring", "kernel": psf, "noise": "poisson-gaussian", "gain": 0.01,
                         "noise_level": 1.0}, clean[None], "stack")[0]
    to_16bit = integer_map("uint16").from_network
    physical = {"scale": STACK_VOXEL_UM, "units": ("µm",) * 3}
    return [
        (to_16bit(clean.numpy()), {"name": "cells (clean)", "visible": False, **physical}, "image"),
        (to_16bit(blurred.clamp(0, 1).numpy()), {"name": "cells blurred (widefield, NA 1.4)", **physical}, "image"),
        (psf.numpy(), {"name": "PSF widefield NA 1.4", "colormap": "magma", "visible": False,
                       "scale": (sampling.z, sampling.y, sampling.x), "units": ("µm",) * 3}, "image"),
    ]
