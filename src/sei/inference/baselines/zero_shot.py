"""Zero-shot reconstructions fitted to one measurement: Deep Image Prior, and BM3D deblurring."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from sei.core.errors import ConfigError, OptionalDependencyError
from sei.core.units import NOISE_FLOOR
from sei.physics.base import physics_upscale
from sei.physics.blur import FFTBlur, boundary_pad
from sei.physics.noise import equivalent_sigma
from sei.core.rng import make_generator

__all__ = ["BM3DDeblurring", "DeepImagePrior", "default_dip_iterations"]


def default_dip_iterations(physics) -> int:
    """The reference implementation's budgets: 4000 iterations for Gaussian blur, 1000 for box blur and SR."""
    if isinstance(physics, FFTBlur):
        kernel = physics.kernel
        is_box = bool(torch.allclose(kernel, torch.full_like(kernel, 1.0 / kernel.numel())))
        return 1000 if is_box else 4000
    return 1000


class DeepImagePrior(nn.Module):
    """Deep Image Prior (Ulyanov et al.): fit deepinv's ``ConvDecoder`` ``G`` so that ``A G(z)`` matches ``y``.

    Written around deepinv's decoder rather than its ``DeepImagePrior`` so that the decoder's initial weights and
    its input ``z`` come from a seeded generator (deepinv draws them from PyTorch's global one), and so that the
    fit shows a progress bar.

    :param iterations: Adam steps (default: :func:`default_dip_iterations`); DIP relies on stopping early.
    :param channels: decoder width (deepinv's default 256; smaller is much faster on a CPU).
    :param learning_rate: Adam step size.
    :param seed: seed of the decoder's initial weights and of ``z``.
    """

    def __init__(self, physics, iterations: int | None = None, channels: int = 256, layers: int = 7,
                 learning_rate: float = 1e-2, seed: int = 0, progress: bool = True) -> None:
        super().__init__()
        self.physics = physics
        self.upscale = physics_upscale(physics)
        self.iterations = iterations if iterations is not None else default_dip_iterations(physics)
        if self.iterations < 1 or channels < 1 or layers < 2:
            raise ConfigError("DIP needs positive iterations and channels, and at least 2 layers")
        self.channels, self.layers, self.learning_rate = channels, layers, learning_rate
        self.seed, self.progress = seed, progress

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        from deepinv.models import ConvDecoder
        from tqdm.auto import tqdm

        estimates = []
        for index in range(y.shape[0]):
            target = y[index:index + 1].float()
            size = (y.shape[1], y.shape[-2] * self.upscale, y.shape[-1] * self.upscale)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                decoder = ConvDecoder(img_size=size, in_size=(4, 4), layers=self.layers, channels=self.channels)
            decoder = decoder.to(y.device).train()
            z = torch.randn((1, self.channels, 4, 4), generator=make_generator(self.seed, "dip")).to(y.device)
            optimizer = torch.optim.Adam(decoder.parameters(), lr=self.learning_rate)
            with torch.enable_grad():
                for _ in tqdm(range(self.iterations), desc="DIP", unit="it", leave=False, disable=not self.progress):
                    loss = (self.physics.A(decoder(z)) - target).pow(2).mean()
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
            with torch.no_grad():
                estimates.append(decoder(z))
        return torch.cat(estimates)


@contextmanager
def _numpy_trapz() -> Iterator[None]:
    """``numpy.trapz`` for the duration of a call: bm3d's dependency bm4d (4.2.x) still calls it, and NumPy 2.4
    removed it in favour of ``numpy.trapezoid``. Nothing changes where NumPy still has it."""
    if hasattr(np, "trapz"):
        yield
        return
    np.trapz = np.trapezoid
    try:
        yield
    finally:
        del np.trapz


class BM3DDeblurring(nn.Module):
    """BM3D deblurring (the ``bm3d`` package): regularised inversion followed by BM3D denoising, per image and
    colour channel.

    :param profile: ``bm3d`` profile name (``"np"`` by default).
    :raises OptionalDependencyError: if ``bm3d`` is not installed.
    :raises ConfigError: for anything but circular-blur deblurring.
    """

    def __init__(self, physics, profile: str = "np") -> None:
        super().__init__()
        if not isinstance(physics, FFTBlur):
            raise ConfigError("BM3D deblurring applies to blur kernels only, not to super-resolution; "
                              "use bicubic, wiener, tv, dip or pnp for super-resolution")
        try:
            import bm3d  # noqa: F401
        except ImportError as error:
            raise OptionalDependencyError("model kind 'bm3d' needs the bm3d package: pip install 'sei[bm3d]'") from error
        self.physics = physics
        self.profile = profile
        self.upscale = 1

    @torch.no_grad()
    def forward(self, y: torch.Tensor) -> torch.Tensor:
        import bm3d

        sigma = max(equivalent_sigma(self.physics), NOISE_FLOOR)
        kernel = self.physics.kernel.double().cpu().numpy()
        # bm3d's deconvolution is circular: a boundary that does not wrap is honoured by deblurring the image extended
        # by that model (twice the kernel's radius, beyond the circular inverse's reach) and cropping it back
        (mh, mw) = (0, 0) if self.physics.periodic else (2 * self.physics.margin[0], 2 * self.physics.margin[1])
        extended = y.float().cpu() if (mh, mw) == (0, 0) else boundary_pad(y.float().cpu(), (mh, mw),
                                                                             self.physics.boundary)
        estimates = []
        for image in extended:
            channels = []
            # bm3d 4.0.3's deblurring fails on colour images and mis-broadcasts 2-D ones: one (H, W, 1) plane at a time
            for plane in image.numpy().astype(np.float64):
                with _numpy_trapz():
                    restored = bm3d.bm3d_deblurring(np.ascontiguousarray(plane[:, :, None]), sigma, kernel,
                                                    profile=self.profile)
                channels.append(torch.from_numpy(np.asarray(restored, dtype=np.float32).reshape(plane.shape)))
            estimates.append(torch.stack(channels))
        restored = torch.stack(estimates)
        return restored[..., mh : restored.shape[-2] - mh, mw : restored.shape[-1] - mw].to(y.device)
