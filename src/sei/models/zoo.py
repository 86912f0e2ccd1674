"""BioImage Model Zoo packages that ``sei export`` wrote, read back as a weights payload.

A zoo package is a zip holding its description (``rdf.yaml``, or ``bioimageio.yaml`` in newer packages), the
network's weights and test tensors. The description's ``config.sei`` entry is sei's record: the backbone's
architecture record, the physics spec the network was trained for (a kernel from a file as a ``.npy`` inside the
package) and the intensity map its run recorded. :func:`read_package` turns a package into the payload a weights file
holds (:mod:`sei.models.weights`), so ``--weights PACKAGE.zip`` works wherever a weights file does. Reading needs
neither ``bioimageio.spec`` nor ``bioimageio.core``: zip, YAML and ``torch.load(weights_only=True)``.

This module owns the package's layout: the names :func:`sei.export.bioimageio.export_bioimageio` writes and this
module reads.
"""

from __future__ import annotations

import io
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from sei.core.errors import WeightsError

__all__ = ["ARCHITECTURE_FILE", "DESCRIPTION_FILES", "KERNEL_FILE", "RECORD_KEY", "STATE_DICT_FILE",
           "TORCHSCRIPT_FILE", "is_package", "read_package"]

# The description's name inside a package: bioimageio.spec wrote rdf.yaml, later versions bioimageio.yaml.
DESCRIPTION_FILES = ("rdf.yaml", "bioimageio.yaml")
# sei's own record, under the description's free ``config`` section.
RECORD_KEY = "sei"
# The files sei writes into a package.
STATE_DICT_FILE = "weights_state_dict.pt"
TORCHSCRIPT_FILE = "weights_torchscript.pt"
ARCHITECTURE_FILE = "sei_unet.py"
KERNEL_FILE = "psf.npy"


def _description_name(archive: zipfile.ZipFile) -> str | None:
    names = set(archive.namelist())
    return next((name for name in DESCRIPTION_FILES if name in names), None)


def is_package(path: str | Path) -> bool:
    """Whether ``path`` is a zip holding a zoo description (PyTorch's own weights files are zips without one)."""
    path = Path(path)
    if not (path.is_file() and zipfile.is_zipfile(path)):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return _description_name(archive) is not None
    except (OSError, zipfile.BadZipFile):
        return False


def _member(archive: zipfile.ZipFile, name: Any, where: str) -> bytes:
    """The bytes of a file the description names.

    :raises WeightsError: for a name the package does not hold.
    """
    if not isinstance(name, str) or name not in archive.namelist():
        raise WeightsError(f"{where} names a file {name!r} that it does not hold; the package is damaged")
    return archive.read(name)


def _state_dict(archive: zipfile.ZipFile, weights: Mapping[str, Any], where: str) -> dict[str, torch.Tensor]:
    """The network's state dict: the ``pytorch_state_dict`` entry, else the TorchScript module's parameters (sei
    traces the network itself, so their names are the network's)."""
    entry = weights.get("pytorch_state_dict")
    if isinstance(entry, Mapping):
        data = _member(archive, entry.get("source"), where)
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as error:  # truncated file, forbidden pickle globals ...
            raise WeightsError(f"{where}: its state dict cannot be read ({error})") from error
        if not isinstance(state, Mapping):
            raise WeightsError(f"{where}: its state dict holds a {type(state).__name__}, not a state dict")
        return dict(state)
    entry = weights.get("torchscript")
    if isinstance(entry, Mapping):
        data = _member(archive, entry.get("source"), where)
        try:
            with warnings.catch_warnings():  # TorchScript is deprecated, and is what deepImageJ runs
                warnings.simplefilter("ignore", FutureWarning)
                module = torch.jit.load(io.BytesIO(data), map_location="cpu")
        except Exception as error:
            raise WeightsError(f"{where}: its TorchScript weights cannot be read ({error})") from error
        return {name: value.detach().clone() for name, value in module.state_dict().items()}
    raise WeightsError(f"{where} holds neither pytorch_state_dict nor torchscript weights")


def _physics_record(archive: zipfile.ZipFile, record: Any, where: str) -> dict[str, Any] | None:
    """The physics record with a kernel stored as a file of the package loaded as a tensor."""
    if record is None:
        return None
    if not isinstance(record, Mapping):
        raise WeightsError(f"{where}: its physics record is a {type(record).__name__}, not a mapping")
    record = dict(record)
    if record.get("kernel") == KERNEL_FILE:
        array = np.load(io.BytesIO(_member(archive, KERNEL_FILE, where)), allow_pickle=False)
        record["kernel"] = torch.from_numpy(np.asarray(array, dtype=np.float32))
    return record


def read_package(path: str | Path) -> dict[str, Any]:
    """The weights payload of a zoo package sei exported: ``{"params": state_dict, "sei_architecture": ...,
    "sei_physics": ... or None, "sei_intensity": ... or None}`` (see :mod:`sei.models.weights`).

    :raises WeightsError: for a package that sei did not export (no ``config.sei`` record), or a damaged one.
    """
    where = f"package {path}"
    try:
        with zipfile.ZipFile(path) as archive:
            name = _description_name(archive)
            if name is None:
                raise WeightsError(f"{where} holds no {' or '.join(DESCRIPTION_FILES)}; is it a BioImage Model Zoo "
                                   "package?")
            description = yaml.safe_load(archive.read(name))
            config = description.get("config") if isinstance(description, Mapping) else None
            record = config.get(RECORD_KEY) if isinstance(config, Mapping) else None
            if not isinstance(record, Mapping) or "architecture" not in record:
                raise WeightsError(f"{where} was not exported by sei (its description has no config.{RECORD_KEY} "
                                   "record of the network): sei restores with packages it exported")
            weights = description.get("weights")
            state = _state_dict(archive, weights if isinstance(weights, Mapping) else {}, where)
            physics = _physics_record(archive, record.get("physics"), where)
    except (OSError, zipfile.BadZipFile, yaml.YAMLError) as error:
        raise WeightsError(f"{where} cannot be read: {error}") from error
    return {"params": state, "sei_architecture": record["architecture"], "sei_physics": physics,
            "sei_intensity": record.get("intensity")}
