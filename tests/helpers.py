"""Helpers shared by the test modules (import them: ``from helpers import relative_difference``)."""

from __future__ import annotations

import torch


def tolerance(dtype: torch.dtype) -> float:
    """Relative agreement expected of exact identities computed in ``dtype``."""
    return 1e-10 if dtype == torch.float64 else 1e-5


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference over the largest magnitude of ``b``, on any devices and dtypes."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def seeded(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed``."""
    return torch.Generator().manual_seed(seed)


# Example specs of every registered operator kind (sei.physics.registry): the operator, loss and method contracts run
# on each. A 3x5 kernel with no symmetry shows a flip or a wrong centre.
ASYMMETRIC = torch.tensor([[0.0, 1.0, 2.0, 0.5, 0.0], [3.0, 1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 2.0, 1.0, 0.2]])
# A 3x3x5 PSF with no symmetry, along z either: three different planes.
ASYMMETRIC_VOLUME = torch.stack([0.5 * ASYMMETRIC, ASYMMETRIC, ASYMMETRIC.flip(-1) + 0.1])
OPERATOR_EXAMPLES = {
    "blur": [dict(task="deblurring", kernel="Gaussian_R1"), dict(task="deblurring", kernel="Box_R2"),
             dict(task="deblurring", kernel=ASYMMETRIC), dict(task="deblurring", kernel="Gaussian_R1", padding="reflect"),
             dict(task="deblurring", kernel=ASYMMETRIC, padding="replicate")],
    "bicubic": [dict(task="sr", sr_factor=2), dict(task="sr", sr_factor=3)],
    "blur-decimate": [dict(task="sr", sr_factor=2, kernel="Gaussian_R1"),
                      dict(task="sr", sr_factor=3, kernel=ASYMMETRIC),
                      dict(task="sr", sr_factor=2, kernel="Gaussian_R1", padding="reflect")],
    "blur-3d": [dict(task="deblurring", kernel=ASYMMETRIC_VOLUME),
                dict(task="deblurring", kernel=ASYMMETRIC_VOLUME, padding="reflect")],
    "blur-decimate-3d": [dict(task="sr", sr_factor=2, kernel=ASYMMETRIC_VOLUME),
                         dict(task="sr", sr_factor=3, kernel=ASYMMETRIC_VOLUME, padding="replicate")],
}


def fixed_network(upscale: int = 1, spatial_dims: int = 2) -> torch.nn.Module:
    """A tiny U-Net (of volumes with ``spatial_dims=3``), seeded, whose last layer is not zero (an untrained U-Net is
    the identity, through which no gradient reaches the other layers): a plausible restorer, ``y`` plus a small
    non-linear correction."""
    from sei.models import build_backbone

    torch.manual_seed(0)
    if spatial_dims == 3:
        model = build_backbone("unet3d-small", upscale=upscale, width=4, levels=1)
    else:
        model = build_backbone("unet-tiny", upscale=upscale)
    model.tail.reset_parameters()
    with torch.no_grad():
        model.tail.weight.mul_(0.2)
    return model.eval()


def crops(t: torch.Tensor, size: int) -> torch.Tensor:
    """Non-overlapping ``size`` x ``size`` crops of a ``(1, C, H, W)`` tensor, as a batch."""
    rows, cols = t.shape[-2] // size, t.shape[-1] // size
    return torch.cat([t[..., r * size:(r + 1) * size, c * size:(c + 1) * size] for r in range(rows) for c in range(cols)])
