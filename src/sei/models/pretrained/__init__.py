"""Networks that ship with ``sei``, by name: ``--weights pretrained:NAME``.

Each was trained by SEI from measurements only (no clean image was ever a target) for far longer than a laptop
run, and is stored beside this module in bfloat16 (a few MB). ``manifest.json`` records, for each: the file and
its SHA-256, the operator it was trained for, the command that trained it and the one that packed it, the
training data and their licences, and its PSNR on the ``sample`` validation photographs (``sei test --weights
pretrained:NAME --dataset sample``), which a test re-measures. A shipped network restores the measurements it was
trained for at once (``sei restore``), and is a starting point for fine-tuning on a user's own measurements
(``sei train --measurements DIR --weights pretrained:NAME``), for its operator or another of the same task.

>>> from sei.models.pretrained import pretrained_networks
>>> network = pretrained_networks()["photos-gaussian-r2"]
>>> network.task, network.kernel, network.noise_level
('deblurring', 'Gaussian_R2', 5.0)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from sei.core.errors import UnknownNameError, WeightsError
from sei.io.download import file_digest

__all__ = ["MANIFEST", "PREFIX", "PretrainedNetwork", "is_pretrained", "pretrained_networks", "pretrained_path"]

PREFIX = "pretrained:"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class PretrainedNetwork:
    """One shipped network, as ``manifest.json`` records it.

    :ivar val_psnr: PSNR (dB) of ``sei test --weights pretrained:NAME --dataset sample`` when it was packed.
    """

    name: str
    file: str
    sha256: str
    task: str
    kernel: str | None
    sr_factor: int | None
    noise_level: float
    backbone: str
    description: str
    train_command: str
    pack_command: str
    steps: int
    train_hours: float
    data: str
    licences: str
    val_psnr: float
    val_ssim: float

    @property
    def path(self) -> Path:
        """Where the weights file is installed."""
        return Path(str(_folder() / self.file))

    @property
    def weights_name(self) -> str:
        """How ``--weights`` names it."""
        return PREFIX + self.name


def _folder() -> Any:
    """Where the weights files and the manifest are installed (beside this module)."""
    return resources.files(__package__)


def pretrained_networks() -> dict[str, PretrainedNetwork]:
    """The shipped networks by name (read from ``manifest.json``; empty when none ship)."""
    manifest = _folder() / MANIFEST
    if not manifest.is_file():
        return {}
    entries = json.loads(manifest.read_text(encoding="utf-8"))
    return {entry["name"]: PretrainedNetwork(**entry) for entry in entries}


def is_pretrained(source: object) -> bool:
    """Whether a ``--weights`` value names a shipped network (``pretrained:NAME``)."""
    return str(source).startswith(PREFIX)


def pretrained_path(source: str) -> Path:
    """The weights file of ``pretrained:NAME`` (or ``NAME``), its SHA-256 checked.

    :raises UnknownNameError: for a name that no shipped network has.
    :raises WeightsError: when the installed file is missing or does not match its recorded checksum.
    """
    name = str(source).removeprefix(PREFIX)
    networks = pretrained_networks()
    if name not in networks:
        raise UnknownNameError("pretrained network", name, networks,
                               hint="`sei weights list` shows the shipped networks")
    network = networks[name]
    if not network.path.is_file():
        raise WeightsError(f"the shipped network {name}'s file {network.path} is missing: reinstall sei")
    digest = file_digest(network.path)
    if digest != network.sha256:
        raise WeightsError(f"the shipped network {name}'s file {network.path} does not match its recorded SHA-256 "
                           f"({digest} instead of {network.sha256}): reinstall sei")
    return network.path
