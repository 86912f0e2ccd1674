"""Model-based reconstructions: total-variation least squares (ADMM, deepinv's iteration in lean form) and
plug-and-play DPIR (deepinv's solver).

Both use the operator's exact ``prox_l2`` (closed form for circular blur and for bicubic down-sampling), so
each iteration is a few FFTs or small matrix products.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sei.core.errors import ConfigError, ResourceUnavailableError, WeightsError
from sei.core.units import NOISE_FLOOR
from sei.physics.base import physics_upscale
from sei.physics.noise import equivalent_sigma

__all__ = ["DRUNET_FILE", "DRUNET_URL", "ELEMENTS_PER_THREAD", "drunet_weights_path", "PnP", "read_drunet_weights",
           "solver_threads", "TotalVariation", "TVProximal"]

DRUNET_FILE = "drunet_deepinv_color_finetune_22k.pth"
DRUNET_URL = f"https://huggingface.co/deepinv/drunet/resolve/main/{DRUNET_FILE}"


# Elements per intra-op thread below which an iterative solve runs on fewer threads: its tens of thousands of
# small memory-bound operations gain little from more threads, and each ends in a barrier that stalls for a whole
# scheduler slice whenever another process holds one of the cores (measured: TV on a 410x256 RGB image on a
# shared 2-core machine, 2 threads 8-17x slower than 1).
ELEMENTS_PER_THREAD = 1 << 20


@contextmanager
def solver_threads(elements: int) -> Iterator[None]:
    """Cap torch's intra-op threads at one per ``ELEMENTS_PER_THREAD`` elements of the iterate for the duration."""
    available = torch.get_num_threads()
    wanted = max(1, min(available, elements // ELEMENTS_PER_THREAD))
    if wanted == available:
        yield
        return
    torch.set_num_threads(wanted)
    try:
        yield
    finally:
        torch.set_num_threads(available)


class TVProximal:
    """Proximal operator of isotropic TV, ``argmin_x 1/2 ||x - p||^2 + gamma ||D x||_{1,2}``, by Condat's
    over-relaxed Chambolle-Pock iteration: deepinv's ``TVDenoiser`` (same steps, same stopping rule, warm start
    from the previous call's primal and dual variables), with the two gradient components stacked in one tensor
    and updated in place, so that an iteration is about 20 tensor operations instead of about 35 with two
    ``(B, C, H, W, 2)`` allocations. One instance serves one solve: a new image starts from ``p`` and a zero dual.
    A ``(B, C, D, H, W)`` volume gets the isotropic TV of its three-axis gradient.

    :param iterations: most iterations per call.
    :param crit: stop when an iteration changes the primal variable by less than this, relatively.
    """

    TAU = 0.01  # primal step (deepinv's default)
    RHO = 1.99  # over-relaxation (deepinv's default)

    def __init__(self, iterations: int, crit: float = 1e-8) -> None:
        self.iterations = iterations
        self.crit = crit
        self.x2: torch.Tensor | None = None
        self.u2: torch.Tensor | None = None

    def __call__(self, p: torch.Tensor, gamma: float) -> torch.Tensor:
        tau, rho = self.TAU, self.RHO
        axes = tuple(range(-(p.ndim - 2), 0))  # (H, W), or (D, H, W) for volumes
        sigma = 1.0 / tau / (4.0 * len(axes))  # 1 / (tau ||D||^2), ||D||^2 = 4 per axis
        if self.x2 is None or self.x2.shape != p.shape:
            self.x2 = p.clone()
            self.u2 = p.new_zeros((len(axes), *p.shape))  # the last entry along each component's axis stays 0
        x2, u2 = self.x2, self.u2
        gradient = torch.zeros_like(u2)
        scaled_p = p * (tau / (1.0 + tau))
        for iteration in range(self.iterations):
            # x = (x2 - tau D^T u2 + tau p) / (1 + tau), with D^T u = -u + u shifted by one pixel
            x = torch.add(x2, u2.sum(0), alpha=tau)
            for component, axis in enumerate(axes):
                size = x.shape[axis]
                x.narrow(axis, 1, size - 1).sub_(u2[component].narrow(axis, 0, size - 1), alpha=tau)
            x.mul_(1.0 / (1.0 + tau)).add_(scaled_p)
            # u = projection of u2 + sigma D (2 x - x2) on the balls of radius gamma
            extrapolated = torch.lerp(x2, x, 2.0)
            for component, axis in enumerate(axes):
                size = x.shape[axis]
                torch.sub(extrapolated.narrow(axis, 1, size - 1), extrapolated.narrow(axis, 0, size - 1),
                          out=gradient[component].narrow(axis, 0, size - 1))
            u = torch.add(u2, gradient, alpha=sigma)
            norm = torch.hypot(u[0], u[1]) if len(axes) == 2 else torch.linalg.vector_norm(u, dim=0)
            u.div_(norm.div_(gamma).clamp_(min=1.0))
            u2.lerp_(u, rho)
            change = torch.dist(x, x2) * rho
            x2.lerp_(x, rho)
            if iteration > 1 and change < self.crit * torch.linalg.vector_norm(x2 + 1e-12):
                break
        return x2


class TotalVariation(nn.Module):
    """``argmin_x 1/2 ||A x - y||^2 + weight * TV(x)`` by ADMM (deepinv's iteration: data step ``prox_l2``, TV step
    :class:`TVProximal`, unit relaxation, no early stop), starting from ``x = z = A^T y``.

    :param weight: TV weight; default ``0.05 sigma`` (tuned on crops of the sample training photographs, where it
        beats the input for Gaussian, box and x2 down-sampling alike).
    :param iterations: ADMM iterations (each: one exact data proximal step and one TV proximal step).
    :param inner_iterations: iterations of the TV proximal solver.
    :param stepsize: ADMM penalty parameter.
    """

    DEFAULT_STRENGTH = 0.05

    def __init__(self, physics, weight: float | None = None, iterations: int = 100, inner_iterations: int = 20,
                 stepsize: float = 10.0) -> None:
        super().__init__()
        self.physics = physics
        self.upscale = physics_upscale(physics)
        sigma = max(equivalent_sigma(physics), NOISE_FLOOR)
        self.weight = float(weight if weight is not None else self.DEFAULT_STRENGTH * sigma)
        if self.weight <= 0 or iterations < 1 or inner_iterations < 1 or stepsize <= 0:
            raise ConfigError("TV needs a positive weight, step size and iteration counts")
        self.iterations = iterations
        self.inner_iterations = inner_iterations
        self.stepsize = float(stepsize)

    @torch.no_grad()
    def forward(self, y: torch.Tensor) -> torch.Tensor:
        y = y.float()
        x = self.physics.A_adjoint(y)
        with solver_threads(x.numel()):
            z = x.clone()
            tv = TVProximal(self.inner_iterations)  # a fresh warm start per image, not the previous image's
            for _ in range(self.iterations):
                u = self.physics.prox_l2(x - z, y, self.stepsize)
                x = tv(u + z, self.weight * self.stepsize).clone()
                z.add_(u - x)
        return x


def drunet_weights_path() -> Path:
    """Where deepinv (through torch hub) caches the DRUNet denoiser weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / DRUNET_FILE


def read_drunet_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A DRUNet state dict, read with ``weights_only=True`` (deepinv's own loader would unpickle anything).

    :raises WeightsError: if the file cannot be read or holds no state dict.
    """
    from sei.core.files import describe_load_failure

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # damaged files and forbidden pickled objects
        raise WeightsError(f"DRUNet weights file {path} cannot be read: {describe_load_failure(path, error)}") from error
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"DRUNet weights file {path} holds no state dict")
    return state


class PnP(nn.Module):
    """Plug-and-play DPIR (Zhang et al.): 8 half-quadratic-splitting iterations with a DRUNet denoiser whose
    noise level decreases from 49/255 to the measurement's (deepinv's ``DPIR``).

    :param weights: DRUNet weights file; default: deepinv's cached ``drunet_deepinv_color_finetune_22k.pth``.
    :param download: fetch the default weights if they are not cached.
    :raises ResourceUnavailableError: when the weights are neither given, cached, nor downloadable.
    """

    def __init__(self, physics, weights: str | Path | None = None, download: bool = False) -> None:
        super().__init__()
        from deepinv.models import DRUNet
        from deepinv.optim import DPIR

        from sei.io.download import unreachable

        self.physics = physics
        self.upscale = physics_upscale(physics)
        if weights is None:
            cached = drunet_weights_path()
            if cached.is_file():
                weights = cached
            elif not download:
                raise ResourceUnavailableError(
                    f"PnP needs the DRUNet denoiser weights {DRUNET_FILE}, not found in {cached.parent}. Download "
                    f"{DRUNET_URL} and place it there, pass --pnp-weights FILE, or allow downloading (--download).")
        elif not Path(weights).is_file():
            raise ResourceUnavailableError(f"DRUNet weights file not found: {weights}")
        if weights is None:  # allowed to download: into the cache deepinv uses, then read like any file
            weights = drunet_weights_path()
            reason = unreachable(DRUNET_URL)
            if reason is not None:
                raise ResourceUnavailableError(f"cannot download the DRUNet weights {DRUNET_URL}: {reason}")
            weights.parent.mkdir(parents=True, exist_ok=True)
            try:
                torch.hub.download_url_to_file(DRUNET_URL, str(weights), progress=False)
            except Exception as error:  # network and HTTP errors
                raise ResourceUnavailableError(f"cannot download the DRUNet weights {DRUNET_URL}: {error}") from error
        denoiser = DRUNet(in_channels=3, out_channels=3, pretrained=None)
        try:
            denoiser.load_state_dict(read_drunet_weights(weights), strict=True)
        except RuntimeError as error:  # missing, unexpected or mis-shaped keys
            raise WeightsError(f"{weights} does not hold the weights of deepinv's colour DRUNet: "
                               f"{str(error).splitlines()[0]}") from error
        self.solver = DPIR(sigma=max(equivalent_sigma(physics), NOISE_FLOOR), denoiser=denoiser.eval())

    @torch.no_grad()
    def forward(self, y: torch.Tensor) -> torch.Tensor:
        y = y.float()
        if self.upscale == 1:
            return self.solver(y, self.physics)
        start = F.interpolate(y, scale_factor=self.upscale, mode="bicubic", align_corners=False)
        return self.solver(y, self.physics, init=start)
