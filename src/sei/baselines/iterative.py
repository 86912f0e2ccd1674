"""Model-based reconstructions: total-variation least squares and plug-and-play DPIR (deepinv solvers).

Both use the operator's exact ``prox_l2`` (closed form for circular blur and for bicubic down-sampling), so
each iteration is a few FFTs or small matrix products.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sei.errors import ConfigError, ResourceUnavailableError, WeightsError
from sei.physics.base import physics_upscale
from sei.physics.noise import equivalent_sigma

DRUNET_FILE = "drunet_deepinv_color_finetune_22k.pth"
DRUNET_URL = f"https://huggingface.co/deepinv/drunet/resolve/main/{DRUNET_FILE}"


class TotalVariation(nn.Module):
    """``argmin_x 1/2 ||A x - y||^2 + weight * TV(x)`` by ADMM (deepinv), the TV proximal steps by Chambolle's
    algorithm, starting from ``A^T y``.

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
        from deepinv.optim import optim_builder
        from deepinv.optim.data_fidelity import L2
        from deepinv.optim.prior import TVPrior

        self.physics = physics
        self.upscale = physics_upscale(physics)
        sigma = max(equivalent_sigma(physics), 1.0 / 255.0)
        self.weight = float(weight if weight is not None else self.DEFAULT_STRENGTH * sigma)
        if self.weight <= 0 or iterations < 1 or inner_iterations < 1 or stepsize <= 0:
            raise ConfigError("TV needs a positive weight, step size and iteration counts")
        self.solver = optim_builder(iteration="ADMM", prior=TVPrior(n_it_max=inner_iterations), data_fidelity=L2(),
                                    params_algo={"stepsize": stepsize, "lambda": self.weight}, max_iter=iterations,
                                    early_stop=False)

    @torch.no_grad()
    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.solver(y.float(), self.physics)


def drunet_weights_path() -> Path:
    """Where deepinv (through torch hub) caches the DRUNet denoiser weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / DRUNET_FILE


def read_drunet_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A DRUNet state dict, read with ``weights_only=True`` (deepinv's own loader would unpickle anything).

    :raises WeightsError: if the file cannot be read or holds no state dict.
    """
    from sei.files import describe_load_failure

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

        from sei.data.download import unreachable

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
        self.solver = DPIR(sigma=max(equivalent_sigma(physics), 1.0 / 255.0), denoiser=denoiser.eval())

    @torch.no_grad()
    def forward(self, y: torch.Tensor) -> torch.Tensor:
        y = y.float()
        if self.upscale == 1:
            return self.solver(y, self.physics)
        start = F.interpolate(y, scale_factor=self.upscale, mode="bicubic", align_corners=False)
        return self.solver(y, self.physics, init=start)
