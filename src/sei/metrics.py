"""Image-quality metrics following the paper's protocol.

Estimates and references are rounded to 8 bits and clamped to [0, 1]; PSNR and SSIM are computed on the
full-range luma ``Y = 0.299 R + 0.587 G + 0.114 B`` (grayscale images are their own luma); LPIPS on RGB.
All functions take ``(B, C, H, W)`` batches of any size and return one value per image, ``(B,)``.

Scientific data (16-bit, float) are scored in their own units with ``data_range``: no 8-bit rounding, no clamping,
and the peak of PSNR (and SSIM's constants) is the data range instead of 1 (255 grey levels), e.g. 65535 for
16-bit data or :attr:`sei.io.intensity.IntensityMap.data_range` for the recorded map of float data.

SSIM is Wang et al.'s: an 11x11 Gaussian window of standard deviation 1.5, ``K1 = 0.01``, ``K2 = 0.03``,
data range 1, averaged over the positions where the window fits (what ``skimage.metrics.structural_similarity``
computes with ``gaussian_weights=True, use_sample_covariance=False, data_range=1``).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sei.core.errors import ImageTooSmallError, ResourceUnavailableError, ShapeError
from sei.core.checks import check_image_batch
from sei.core.units import GREY_LEVELS

__all__ = ["LPIPS", "LUMA_WEIGHTS", "SSIM_SIGMA", "SSIM_WINDOW", "lpips_weights_path", "psnr", "quantize",
           "rgb_to_luma", "ssim"]

LUMA_WEIGHTS = (0.299, 0.587, 0.114)
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Round to 8 bits and clamp to [0, 1]: ``round(255 x) / 255``."""
    return torch.round(x.clamp(0, 1) * GREY_LEVELS) / GREY_LEVELS


def rgb_to_luma(x: torch.Tensor) -> torch.Tensor:
    """Full-range luma ``(B, 1, H, W)`` of ``(B, 3, H, W)`` RGB; ``(B, 1, H, W)`` grayscale is returned as is."""
    check_image_batch(x)
    if x.shape[1] == 1:
        return x
    if x.shape[1] != 3:
        raise ShapeError(f"expected 1 (grayscale) or 3 (RGB) channels, got {x.shape[1]}")
    weights = torch.tensor(LUMA_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)


def _prepare(estimate: torch.Tensor, reference: torch.Tensor,
             data_range: float | None = None) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Luma of both in float64: 8-bit quantised in [0, 1] (range 1), or as given in data units (``data_range``)."""
    check_image_batch(estimate, "estimate")
    check_image_batch(reference, "reference")
    if estimate.shape != reference.shape:
        raise ShapeError(f"estimate {tuple(estimate.shape)} and reference {tuple(reference.shape)} differ in shape")
    estimate, reference = estimate.detach().to(torch.float64), reference.detach().to(torch.float64)
    if data_range is None:
        estimate, reference, data_range = quantize(estimate), quantize(reference), 1.0
    elif not (data_range > 0 and torch.isfinite(torch.tensor(data_range))):
        raise ValueError(f"data_range must be a finite number > 0, got {data_range}")
    return rgb_to_luma(estimate), rgb_to_luma(reference), float(data_range)


def psnr(estimate: torch.Tensor, reference: torch.Tensor, data_range: float | None = None) -> torch.Tensor:
    """PSNR in dB on the luma, one value per image ``(B,)``; ``inf`` for identical images.

    :param data_range: ``None``: the paper's protocol (8-bit quantised images in [0, 1]); a number: images in data
        units (e.g. 16-bit counts) scored as they are, with this peak (65535 for 16-bit data).

    >>> x = torch.full((1, 1, 8, 8), 100 / 255)
    >>> round(psnr(x + 1 / 255, x).item(), 2)  # one grey level everywhere: 20 log10(255)
    48.13
    """
    estimate, reference, peak = _prepare(estimate, reference, data_range)
    mse = (estimate - reference).pow(2).flatten(1).mean(dim=1)
    return (10.0 * torch.log10(peak**2 / mse)).float()


def _gaussian_window(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    profile = torch.exp(-(coords**2) / (2 * sigma**2))
    profile = profile / profile.sum()
    return torch.outer(profile, profile).view(1, 1, size, size)


def ssim(estimate: torch.Tensor, reference: torch.Tensor, data_range: float | None = None) -> torch.Tensor:
    """SSIM on the luma, one value per image ``(B,)``.

    :param data_range: as in :func:`psnr` (the constants become ``(0.01 L)^2`` and ``(0.03 L)^2``).
    :raises ImageTooSmallError: for images smaller than the 11x11 window.
    """
    estimate, reference, peak = _prepare(estimate, reference, data_range)
    height, width = estimate.shape[-2:]
    if height < SSIM_WINDOW or width < SSIM_WINDOW:
        raise ImageTooSmallError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {height}x{width}")
    window = _gaussian_window(SSIM_WINDOW, SSIM_SIGMA, estimate.dtype, estimate.device)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, window)

    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mu_x, mu_y = blur(estimate), blur(reference)
    var_x = blur(estimate * estimate) - mu_x**2
    var_y = blur(reference * reference) - mu_y**2
    cov = blur(estimate * reference) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(dim=1).float()


# -- LPIPS ------------------------------------------------------------------------------------------------
_ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
_ALEXNET_URL = f"https://download.pytorch.org/models/{_ALEXNET_FILE}"


def lpips_weights_path() -> Path:
    """Where torchvision looks for the AlexNet weights that LPIPS needs (the torch hub cache)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / _ALEXNET_FILE


class LPIPS(nn.Module):
    """LPIPS (AlexNet) distance on RGB, one value per image; lower is better.

    ``torchmetrics``' ``LearnedPerceptualImagePatchSimilarity``, whose linear calibration layers ship with it; the
    AlexNet backbone weights come from torchvision's cache and are never downloaded unless ``download=True``.

    :raises ResourceUnavailableError: if the AlexNet weights are not cached and ``download`` is False.
    """

    def __init__(self, download: bool = False) -> None:
        super().__init__()
        from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

        path = lpips_weights_path()
        if not path.is_file() and not download:
            raise ResourceUnavailableError(
                f"LPIPS needs the AlexNet weights {_ALEXNET_FILE}, not found in {path.parent}. "
                f"Download {_ALEXNET_URL} and place it there, or allow downloading (download=True / --download)."
            )
        self.metric = LearnedPerceptualImagePatchSimilarity(net_type="alex", reduction="none").eval()

    @torch.no_grad()
    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        check_image_batch(estimate, "estimate")
        check_image_batch(reference, "reference")
        if estimate.shape != reference.shape:
            raise ShapeError(f"estimate {tuple(estimate.shape)} and reference {tuple(reference.shape)} differ in shape")
        if estimate.shape[1] == 1:
            estimate, reference = estimate.expand(-1, 3, -1, -1), reference.expand(-1, 3, -1, -1)
        # LPIPS expects [-1, 1] inputs.
        estimate = quantize(estimate.float()) * 2 - 1
        reference = quantize(reference.float()) * 2 - 1
        self.metric.reset()
        return self.metric(estimate, reference).flatten()
