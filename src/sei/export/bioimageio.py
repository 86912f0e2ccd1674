"""A training run as a BioImage Model Zoo package (``sei export RUN OUT.zip``), for Fiji/deepImageJ, ilastik and
``bioimageio.core``.

The package (model description format 0.5, written and validated by ``bioimageio.spec``) holds:

- the network twice: TorchScript (traced, what deepImageJ runs) and ``pytorch_state_dict`` with the U-Net's source
  (``sei_unet.py``, assembled from sei's own code, so it runs without sei: ilastik, ``bioimageio.core``);
- the data's units on both sides: preprocessing ``scale_linear`` maps data ``x`` to the network's ``(x - offset) /
  scale`` by the run's intensity map (:mod:`sei.io.intensity`), postprocessing maps the estimate back; the package
  takes the data as recorded (``uint16`` counts ...) and returns float32 in the same units (``sei restore`` rounds
  to the file's dtype instead);
- a test input, a crop of the run's own measurements (a seeded phantom through the run's operator when they cannot
  be read), and the test output that sei's restore path computes from it, which the package must reproduce;
- input sizes a zoo runner may feed: multiples of the network's grid (:attr:`UNet.size_multiple`), with a halo of
  :data:`HALO` pixels for runners that tile;
- a README from the run's configuration (operator, noise, method, training), a cover (input | output), the paper's
  citation, and sei's record (``config.sei``: architecture, physics, intensity map) from which ``sei restore
  --weights OUT.zip`` rebuilds the network (:mod:`sei.models.zoo`, which owns the package's file names).

The U-Net families export; SwinIR (deepinv's code) and the unrolled networks (which run the operator inside) do not
yet. ``bioimageio.spec`` and ``bioimageio.core`` (the ``bioimageio`` extra) are imported here only.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import shutil
import string
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sei import __version__
from sei.config.run_folder import RunFolder
from sei.config.sources import locate_network
from sei.core.defaults import DEFAULT_LICENSE
from sei.core.errors import ConfigError, ImageError, OptionalDependencyError, SEIError, WeightsError
from sei.core.files import atomic_path
from sei.core.scaling import scale_factors, upscaled_size
from sei.inference.reconstructors import NetworkReconstructor
from sei.io.intensity import IntensityMap, integer_map
from sei.io.outputs import check_replaceable
from sei.losses.registry import method_entry
from sei.models.registry import backbone_preset
from sei.models.weights import load_backbone, read_weights
from sei.models.zoo import ARCHITECTURE_FILE, KERNEL_FILE, RECORD_KEY, STATE_DICT_FILE, TORCHSCRIPT_FILE

__all__ = ["CITATION", "DEFAULT_LICENSE", "EXPORTABLE_FAMILIES", "ExportResult", "HALO", "TEST_CROP",
           "architecture_source", "export_bioimageio"]

# The paper every package cites (arXiv's DOI: the journal's is not minted yet).
CITATION = {"text": "Scanvic, Davies, Abry, Tachella. Scale-Equivariant Imaging: Self-Supervised Learning for Image "
                    "Super-Resolution and Deblurring. IEEE Transactions on Computational Imaging, 2026.",
            "doi": "10.48550/arXiv.2312.11232"}
# Backbone families whose network ships as source code, and what their U-Net takes besides the record's options.
EXPORTABLE_FAMILIES = {"unet": {}, "unet3d": {"spatial_dims": 3}}
# Pixels a tiling runner crops from each side of a tile: half of sei restore's default tile overlap (32).
HALO = 16
# The test input's largest crop, per spatial axis (lateral for images; planes, then lateral, for volumes).
TEST_CROP = {2: (64, 64), 3: (16, 48, 48)}
_SEED = 0  # the phantom and its noise when the run's measurements cannot be read
_CHANNEL_NAMES = {1: ["intensity"], 3: ["red", "green", "blue"]}
_FILES = {"readme": "README.md", "cover": "cover.png", "test_input": "test_input.npy",
          "test_output": "test_output.npy", "sample_input": "sample_input.tif", "sample_output": "sample_output.tif"}


@dataclass(frozen=True)
class ExportResult:
    """What ``sei export`` wrote: the package, its format version, and where its test input came from."""

    path: Path
    format_version: str
    test_input: str
    input_shape: tuple[int, ...]
    weights: tuple[str, ...]


def _bioimageio() -> Any:
    """``bioimageio.spec`` (which writes and validates packages), or the one-line error that says how to install it."""
    try:
        from bioimageio import spec
    except ImportError as error:
        raise OptionalDependencyError("sei export --format bioimageio needs the bioimageio extra: pip install "
                                      "'sei[bioimageio]'") from error
    return spec


def architecture_source() -> str:
    """A Python module that defines sei's ``UNet`` with torch alone: the source of :class:`sei.models.unet.UNet`,
    its blocks, :func:`sei.models.windows.apply_aligned`, the input check and :mod:`sei.core.scaling`'s rules, as
    they are in this sei (one copy of the code: a change to the U-Net is exported with it)."""
    from sei.core import checks, scaling
    from sei.models import unet, windows

    convolutions = ", ".join(f"{dims}: ({', '.join(f'nn.{kind.__name__}' for kind in kinds)})"
                             for dims, kinds in unet.CONVOLUTIONS.items())
    parts = [
        (f'"""sei\'s residual U-Net: the sei package\'s own code, assembled by sei export. The package\'s '
         f'pytorch_state_dict entry builds {ARCHITECTURE_FILE}\'s UNet(**kwargs)."""'),
        ("from __future__ import annotations\n\nimport math\nfrom collections.abc import Callable, Sequence\n\n"
         "import torch\nimport torch.nn.functional as F\nfrom torch import nn"),
        "class ConfigError(ValueError):\n    pass",
        "class ShapeError(ValueError):\n    pass",
        f"STRIP = {windows.STRIP}\nCONVOLUTIONS = {{{convolutions}}}",
        *(inspect.getsource(item) for item in (checks.check_image_batch, scaling.scale_factors,
                                               scaling.interpolate_up, windows.apply_aligned, unet.ResidualBlock,
                                               unet.PlaneShuffle, unet._stage, unet.UNet)),
    ]
    return "\n\n\n".join(part.rstrip() for part in parts) + "\n"


def _check_output(output: Path, overwrite: bool) -> None:
    if output.suffix.lower() != ".zip":
        raise ConfigError(f"{output}: a BioImage Model Zoo package is a .zip file; name the output NAME.zip")
    check_replaceable([output], overwrite)


def _check_license(license: str) -> None:
    from bioimageio.spec.model.v0_5 import LicenseId

    try:
        LicenseId(license)
    except ValueError as error:
        raise ConfigError(f"--license {license!r} is not an SPDX licence identifier (e.g. CC-BY-4.0, MIT, "
                          "BSD-3-Clause)") from error


def _check_authors(authors: Sequence[str]) -> list[str]:
    names = [" ".join(str(name).split()) for name in authors]
    if not names or any(not name or "/" in name for name in names):
        raise ConfigError("give each author's name with --author NAME (a name without '/'), once per author")
    return names


def _network_kwargs(architecture: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of the exported ``UNet`` for an architecture record.

    :raises ConfigError: for a backbone whose family does not export.
    """
    preset = backbone_preset(architecture["backbone"])
    family = preset.family.name
    if family not in EXPORTABLE_FAMILIES:
        raise ConfigError(f"backbone {architecture['backbone']!r} does not export to the BioImage Model Zoo yet: the "
                          f"U-Net backbones do ({', '.join(f'{name}-*' for name in EXPORTABLE_FAMILIES)})")
    return {"upscale": int(architecture.get("upscale", 1)), "in_chans": int(architecture.get("in_chans", 3)),
            **preset.options, **architecture.get("options", {}), **EXPORTABLE_FAMILIES[family]}


# -- the test input -------------------------------------------------------------------------------------------
def _minimum_sizes(dims: int, multiple: int) -> tuple[int, ...]:
    """The smallest input a runner may feed, per spatial axis: a multiple of the grid that leaves something
    inside the halo laterally (the z axis has no halo: stacks are thin)."""
    lateral = multiple * (2 * HALO // multiple + 1)
    return (multiple,) * (dims - 2) + (lateral, lateral)


def _crop_sizes(shape: Sequence[int], dims: int, multiple: int) -> tuple[int, ...] | None:
    """The centre crop of an image of spatial ``shape``: at most :data:`TEST_CROP`, multiples of the grid; ``None``
    when the image is smaller than the smallest input."""
    sizes = tuple(min(limit, n) // multiple * multiple for limit, n in zip(TEST_CROP[dims], shape))
    return sizes if all(s >= low for s, low in zip(sizes, _minimum_sizes(dims, multiple))) else None


def _as_channels(array: np.ndarray, channels: int) -> np.ndarray:
    """``(C, ...)`` data with the network's channel count (alpha dropped, gray repeated, equal colours as one)."""
    array = array[:3] if array.shape[0] >= 3 else array[:1]
    if array.shape[0] == channels:
        return array
    return np.repeat(array, 3, axis=0) if channels == 3 else array[:1]


def _measurement_crop(dataset: str, dims: int, multiple: int, channels: int) -> tuple[np.ndarray, str] | None:
    """A centre crop ``(1, C, ...)`` of the first readable file of the run's measurement folder, in its dtype."""
    from sei.io.images import list_images, read_image_file

    try:
        files = list_images(dataset)
    except ImageError:
        return None
    for path in files:
        try:
            file = read_image_file(path)
        except ImageError:
            continue
        if dims == 3 and (len(file.pages) < 2 or not file.pages_along_z):
            continue
        pages = file.pages if dims == 3 else file.pages[:1]
        data = np.stack([page if page.ndim == 3 else page[..., None] for page in pages])  # (D, H, W, C)
        data = np.moveaxis(data, -1, 0)  # (C, D, H, W)
        data = data if dims == 3 else data[:, 0]
        sizes = _crop_sizes(data.shape[1:], dims, multiple)
        if sizes is None:
            continue
        starts = [(n - s) // 2 for n, s in zip(data.shape[1:], sizes)]
        crop = data[(slice(None), *(slice(a, a + s) for a, s in zip(starts, sizes)))]
        where = "x".join(map(str, sizes))
        return _as_channels(np.ascontiguousarray(crop), channels)[None], f"a {where} centre crop of {path.name}"
    return None


def _phantom_measurement(spec: Any, mapping: IntensityMap, dims: int, upscale: int, channels: int
                         ) -> tuple[np.ndarray, str]:
    """A seeded phantom through the run's operator with its noise (or as it is, for an operator sei cannot
    rebuild), in the data's units ``(1, C, ...)``."""
    from sei.data.phantoms import fluorescence_phantom

    sizes = TEST_CROP[dims]
    # a volume is super-resolved along z, an image across (sei.core.scaling); an image is the middle of 8 planes
    shape = upscaled_size(sizes, upscale) if dims == 3 else (8, *upscaled_size(sizes[-2:], upscale))
    clean = fluorescence_phantom(shape, seed=_SEED)
    clean = clean[None, None] if dims == 3 else clean[shape[0] // 2][None, None]
    how = "a seeded fluorescence phantom"
    try:
        operator = spec.build() if spec is not None else None
    except SEIError:
        operator = None
    if operator is not None:
        measured = operator(clean, generator=torch.Generator().manual_seed(_SEED))
        how += f" through the run's operator ({spec.describe()})"
    else:
        factors = scale_factors(upscale, dims)
        measured = torch.nn.functional.interpolate(clean, scale_factor=tuple(1 / f for f in factors), mode="area") \
            if upscale > 1 else clean
    array = mapping.from_network(measured[0].clamp_min(0).numpy())
    return _as_channels(array, channels)[None], how


# -- the network in both formats ------------------------------------------------------------------------------
def _compare(expected: torch.Tensor, actual: torch.Tensor, what: str) -> None:
    """:raises SEIError: when an exported network does not compute what sei's does (a bug in the export)."""
    if actual.shape != expected.shape or not torch.allclose(actual, expected, rtol=1e-4, atol=1e-5):
        raise SEIError(f"the exported {what} does not reproduce sei's network (a bug in sei export; please report it)")


def _write_state_dict(network: nn.Module, kwargs: dict[str, Any], folder: Path, probe: torch.Tensor,
                      expected: torch.Tensor) -> None:
    """The state dict and the standalone architecture, checked to compute ``expected`` from ``probe``."""
    source = architecture_source()
    (folder / ARCHITECTURE_FILE).write_text(source)
    state = {key: value.detach().cpu().contiguous() for key, value in network.state_dict().items()}
    torch.save(state, folder / STATE_DICT_FILE)
    namespace: dict[str, Any] = {"__name__": "sei_export_check"}
    exec(compile(source, ARCHITECTURE_FILE, "exec"), namespace)  # the file as a runner imports it
    rebuilt = namespace["UNet"](**kwargs)
    rebuilt.load_state_dict(torch.load(folder / STATE_DICT_FILE, weights_only=True))
    with torch.no_grad():
        _compare(expected, rebuilt.eval()(probe), f"architecture ({ARCHITECTURE_FILE})")


def _write_torchscript(network: nn.Module, folder: Path, probe: torch.Tensor, expected: torch.Tensor,
                       multiple: int) -> None:
    """The network traced on ``probe``, checked on it and on a size one grid step smaller (the trace keeps the
    aligned path of :func:`sei.models.windows.apply_aligned`, which is why the package declares aligned sizes)."""
    with warnings.catch_warnings():  # trace's deprecation and "might be incorrect" notes: checked below
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(network, probe, check_trace=False)
        traced.save(str(folder / TORCHSCRIPT_FILE))
        loaded = torch.jit.load(str(folder / TORCHSCRIPT_FILE), map_location="cpu")
    smaller = probe[(..., *(slice(0, n - multiple if n > multiple else n) for n in probe.shape[2:]))]
    with torch.no_grad():
        _compare(expected, loaded(probe), "TorchScript network")
        _compare(network(smaller), loaded(smaller), "TorchScript network (at another size)")


# -- the description ------------------------------------------------------------------------------------------
def _physics_record(spec: Any, folder: Path) -> dict[str, Any] | None:
    """The physics spec as YAML values, a kernel from a file or tensor written as :data:`KERNEL_FILE` (no local
    path goes into the package)."""
    if spec is None:
        return None
    values = spec.to_dict()
    record = spec.record()
    if isinstance(record.get("kernel"), torch.Tensor):
        np.save(folder / KERNEL_FILE, record["kernel"].numpy().astype(np.float32), allow_pickle=False)
        values["kernel"] = KERNEL_FILE
    return values


def _cover(test_input: np.ndarray, test_output: np.ndarray, path: Path, upscale: int) -> None:
    """``input | output`` (the middle plane of a volume) at one contrast, the input's 0.1-99.9th percentiles, as a
    2:1 PNG at least 256 pixels high."""
    from PIL import Image

    def view(array: np.ndarray) -> np.ndarray:
        image = array[0]
        image = image[:, image.shape[1] // 2] if image.ndim == 4 else image  # (C, H, W)
        return np.moveaxis(image, 0, -1) if image.shape[0] == 3 else image[0]

    shown = view(test_input.astype(np.float64))
    low, high = np.percentile(shown, (0.1, 99.9))
    lateral = scale_factors(upscale, test_input.ndim - 2)[-1]  # a volume's planes keep their pixels
    shown = shown.repeat(lateral, 0).repeat(lateral, 1)
    panels = [np.clip((image - low) / max(high - low, 1e-12), 0, 1) for image in (shown, view(test_output))]
    picture = (np.concatenate(panels, axis=1) * 255).round().astype(np.uint8)
    zoom = max(1, -(-256 // picture.shape[0]))
    picture = picture.repeat(zoom, 0).repeat(zoom, 1)
    Image.fromarray(picture).save(path)


def _readme(name: str, config: Any, spec: Any, architecture: dict[str, Any], mapping: IntensityMap,
            recorded: bool, test_input: str, shape: tuple[int, ...], sizes: tuple[Sequence[int], int],
            parameters: int, summary: dict[str, Any]) -> str:
    """The package's documentation, from the run's configuration."""
    method = method_entry(config.loss.method)
    dims = len(shape) - 2
    task = "super-resolution" if int(architecture.get("upscale", 1)) > 1 else "deblurring"
    physics = spec.describe() if spec is not None else "an operator given from Python (not recorded)"
    kernel = (f" The PSF is attached as `{KERNEL_FILE}` (float32, normalised)." if spec is not None
              and isinstance(spec.record().get("kernel"), torch.Tensor) else "")
    steps, lr = summary.get("steps"), config.train.lr
    trained = (f"{steps} steps" if steps is not None else "an unrecorded number of steps") + (
        f"; Adam, learning rate {lr:g}" if lr is not None else "")
    where_map = "the map its training run recorded" if recorded else "the 8-bit range (the run recorded no map)"
    axes = "batch, channel, z, y, x" if dims == 3 else "batch, channel, y, x"
    return f"""# {name}

A {task} network for {'z-stacks (volumes)' if dims == 3 else '2-D images'}, trained with
sei {__version__} by **Scale-Equivariant Imaging** from blurry measurements alone: no
sharp image was used. It undoes one measurement process, the one it was trained for; on data measured otherwise
(another PSF, pixel size or noise level) its output is not a restoration.

## The measurements it restores

- Measurement model: {physics}.{kernel}
- Axes: {axes}; {architecture.get('in_chans', 3)} channel(s).
- Units: the input is the data as recorded ({mapping.dtype}). Preprocessing maps it to the network's units by
  {where_map}, `u = (x - {mapping.offset:.9g}) / {mapping.scale:.9g}`; postprocessing maps the estimate back, so the
  output is in the input's units (float32; values beyond the range are kept, not clipped).
- Sizes: multiples of {sizes[1]} pixels along each axis, at least {'x'.join(map(str, sizes[0]))}; runners that tile
  crop a halo of {HALO} pixels from each side laterally.

## Training

- Method: `{method.name}`: {method.description}; {'trained on clean images' if method.needs_ground_truth else
  'no ground truth'}.
- Network: `{architecture['backbone']}`, {backbone_preset(architecture['backbone']).description}
  ({parameters:,} parameters).
- Data: `{Path(str(config.data.dataset)).name}` ({config.data.kind}), crops of {config.data.crop_size} pixels along
  each axis in batches of {config.data.batch_size}; {trained}.

## Using it

- **Fiji (deepImageJ)**: install the package from its zip (DeepImageJ Install Model, "From ZIP file"), open an image in
  the units above and run it; deepImageJ uses the TorchScript weights.
- **ilastik** (Neural Network Workflow) and **bioimageio.core** (`bioimageio predict`) use the `pytorch_state_dict`
  weights, whose architecture (`{ARCHITECTURE_FILE}`) needs torch alone.
- **sei**: `sei restore IN OUT --weights this_package.zip` restores files in their own dtype (tiles, stacks,
  colour, the self-ensemble), with the intensity map and operator recorded in `config.sei`.

## Validation

The test input is {test_input}, {'x'.join(map(str, shape))} ({axes}); the test output is what sei's restore path
computes from it, before rounding to the data's dtype. `bioimageio test` checks that both weight formats reproduce
it. Nothing here measures the restoration against a ground truth: training used none. Judge it on data whose
structures are known (beads, a phantom, `sei degrade` of a sharp image), or with `sei report`.

## Citation

{CITATION['text']} DOI [{CITATION['doi']}](https://doi.org/{CITATION['doi']}).
"""


def _default_name(run: Path, upscale: int) -> str:
    """``SEI deblurring <run folder's name>``, in the characters a zoo name may hold (others become ``-``)."""
    allowed = set(string.ascii_letters + string.digits + "_+- ()")
    folder = "".join(char if char in allowed else "-" for char in run.resolve().name)
    return f"SEI {'super-resolution' if upscale > 1 else 'deblurring'} {folder}"[:64].rstrip()


def _first_error(summary: Any) -> str:
    """The first error of a ``bioimageio.spec`` validation summary, on one line."""
    for detail in getattr(summary, "details", []):
        for error in getattr(detail, "errors", []):
            location = ".".join(map(str, getattr(error, "loc", ()))) or "description"
            return f"{location}: {' '.join(str(getattr(error, 'msg', error)).split())}"
    return str(getattr(summary, "status", "invalid"))


def _tensor_axes(dims: int, channels: int, minimum: Sequence[int], multiple: int, upscale: int,
                 output: bool) -> list[dict[str, Any]]:
    """The axes of the input (sizes: a minimum and a step) or the output (the input's times ``upscale``, along z
    only for volumes: :mod:`sei.core.scaling`)."""
    axes: list[dict[str, Any]] = [{"type": "batch"},
                                  {"type": "channel", "channel_names": _CHANNEL_NAMES.get(channels, [
                                      f"channel{index}" for index in range(channels)])}]
    for axis, low, factor in zip(("z", "y", "x")[3 - dims:], minimum, scale_factors(upscale, dims)):
        entry: dict[str, Any] = {"type": "space", "id": axis}
        if not output:
            entry["size"] = {"min": low, "step": multiple}
        else:
            entry["size"] = {"tensor_id": "input", "axis_id": axis}
            if axis != "z":
                entry["halo"] = HALO * factor
            if factor > 1:
                entry["scale"] = 1 / factor
        axes.append(entry)
    return axes


def _write_sample(path: Path, array: np.ndarray) -> None:
    import tifffile

    tifffile.imwrite(path, array)


def export_bioimageio(run: str | Path, output: str | Path, authors: Sequence[str], license: str = DEFAULT_LICENSE,
                      name: str | None = None, overwrite: bool = False) -> ExportResult:
    """Write the network of a finished training run as a BioImage Model Zoo package (see the module).

    :param run: the run's folder (``sei train --out-dir``).
    :param output: the package, a ``.zip`` file.
    :param authors: the people who trained the network, one name each (the description's authors).
    :param license: an SPDX identifier for the weights (default :data:`DEFAULT_LICENSE`).
    :param name: the model's name (default: ``SEI <task> <run folder's name>``).
    :param overwrite: replace ``output`` if it exists.
    :raises WeightsError: for a folder without trained weights.
    :raises ConfigError: for an output that is not a ``.zip``, a licence that is not an SPDX identifier, no author,
        or a backbone that does not export.
    :raises OutputExistsError: when ``output`` exists and ``overwrite`` is not set.
    :raises OptionalDependencyError: without ``bioimageio.spec`` (the ``bioimageio`` extra).
    """
    folder, output = RunFolder(run), Path(output)
    if not folder.path.is_dir():
        raise WeightsError(f"{run} is not a folder; sei export takes a training run's folder (sei train --out-dir)")
    if not folder.is_finished():
        raise WeightsError(f"{run} holds no {folder.weights_path.name}; is it a finished training run?")
    config = folder.config
    _check_output(output, overwrite)
    names = _check_authors(authors)
    spec_module = _bioimageio()
    _check_license(license)

    architecture = read_weights(folder.weights_path)[1]
    if architecture is None:
        raise WeightsError(f"{folder.weights_path} carries no architecture record; sei export takes runs of sei train")
    kwargs = _network_kwargs(dict(architecture))  # before the network is built: refuses what does not export
    source = locate_network(folder.path)
    network = load_backbone(folder.weights_path).eval()
    architecture = dict(network.sei_architecture)
    spatial, channels, upscale = kwargs.get("spatial_dims", 2), kwargs["in_chans"], kwargs["upscale"]
    multiple = int(network.size_multiple)
    recorded = IntensityMap.from_dict(source.intensity) if source.intensity else None
    mapping = recorded or integer_map("uint8")

    found = (_measurement_crop(config.data.dataset, spatial, multiple, channels)
             if config.data.kind == "measurements" else None)
    if found is not None and found[0].dtype.name != mapping.dtype:
        found = None  # a file of another dtype than the run's map: the package declares one
    test_input, origin = found or _phantom_measurement(source.physics, mapping, spatial, upscale, channels)
    probe = torch.from_numpy(mapping.to_network(test_input))
    estimate = NetworkReconstructor(network)(probe)
    test_output = dataclasses.replace(mapping, dtype="float32").from_network(estimate.numpy())

    model_name = name or _default_name(folder.path, upscale)
    summary = json.loads(folder.summary_path.read_text()) if folder.summary_path.is_file() else {}
    with tempfile.TemporaryDirectory(prefix="sei-export-") as temporary:
        staging = Path(temporary) / "package"
        staging.mkdir()
        _write_state_dict(network, kwargs, staging, probe, estimate)
        _write_torchscript(network, staging, probe, estimate, multiple)
        np.save(staging / _FILES["test_input"], test_input, allow_pickle=False)
        np.save(staging / _FILES["test_output"], test_output, allow_pickle=False)
        _write_sample(staging / _FILES["sample_input"], test_input)
        _write_sample(staging / _FILES["sample_output"], test_output)
        _cover(test_input, test_output, staging / _FILES["cover"], upscale)
        physics = _physics_record(source.physics, staging)
        minimum = _minimum_sizes(spatial, multiple)
        parameters = sum(p.numel() for p in network.parameters())
        (staging / _FILES["readme"]).write_text(_readme(model_name, config, source.physics, architecture, mapping,
                                                        recorded is not None, origin, test_input.shape,
                                                        (minimum, multiple), parameters, summary))
        torch_version = torch.__version__.split("+")[0]
        task = "super-resolution" if upscale > 1 else "deblurring"
        description = {
            "type": "model", "format_version": spec_module.model.v0_5.ModelDescr.implemented_format_version,
            "name": model_name,
            "description": (f"Restores {'z-stacks' if spatial == 3 else 'images'} measured as its training data were"
                            f"{': ' + source.physics.describe() if source.physics is not None else ''}. Trained by "
                            "Scale-Equivariant Imaging from the blurry measurements alone (no sharp images), with sei."),
            "authors": [{"name": author} for author in names],
            "cite": [CITATION], "license": license,
            "documentation": {"source": _FILES["readme"]}, "covers": [{"source": _FILES["cover"]}],
            "tags": [task, "self-supervised", "scale-equivariant-imaging", "sei", "pytorch", f"{spatial}d", "unet"],
            "attachments": [{"source": KERNEL_FILE}] if (staging / KERNEL_FILE).is_file() else [],
            "inputs": [{
                "id": "input", "description": f"measurements in the data's units ({mapping.dtype})",
                "axes": _tensor_axes(spatial, channels, minimum, multiple, upscale, output=False),
                "test_tensor": {"source": _FILES["test_input"]}, "sample_tensor": {"source": _FILES["sample_input"]},
                "data": {"type": mapping.dtype},
                "preprocessing": [
                    {"id": "ensure_dtype", "kwargs": {"dtype": "float32"}},
                    {"id": "scale_linear", "kwargs": {"gain": 1 / mapping.scale, "offset": -mapping.offset / mapping.scale}},
                    {"id": "ensure_dtype", "kwargs": {"dtype": "float32"}},
                ]}],
            "outputs": [{
                "id": "output", "description": "the restored estimate, in the input's units",
                "axes": _tensor_axes(spatial, channels, minimum, multiple, upscale, output=True),
                "test_tensor": {"source": _FILES["test_output"]}, "sample_tensor": {"source": _FILES["sample_output"]},
                "data": {"type": "float32"},
                "postprocessing": [
                    {"id": "scale_linear", "kwargs": {"gain": mapping.scale, "offset": mapping.offset}},
                    {"id": "ensure_dtype", "kwargs": {"dtype": "float32"}},
                ]}],
            "weights": {
                "pytorch_state_dict": {
                    "source": STATE_DICT_FILE, "pytorch_version": torch_version,
                    "architecture": {"source": ARCHITECTURE_FILE, "callable": "UNet", "kwargs": kwargs}},
                "torchscript": {"source": TORCHSCRIPT_FILE, "pytorch_version": torch_version,
                                "parent": "pytorch_state_dict"},
            },
            "config": {
                RECORD_KEY: {"version": __version__, "architecture": architecture, "physics": physics,
                             "intensity": recorded.to_dict() if recorded is not None else None,
                             "method": config.loss.method, "test_input": origin},
                "bioimageio": {"architecture_type": f"{spatial}-D residual U-Net", "task": task,
                               "model_parameter_count": parameters,
                               "training": {"loss_function": method_entry(config.loss.method).description,
                                            "optimizer": "torch.optim.Adam",
                                            "training_batch_size": config.data.batch_size,
                                            "initial_learning_rate": config.train.lr}},
            },
        }
        with spec_module.ValidationContext(root=staging, perform_io_checks=True, log_warnings=False):
            built = spec_module.build_description(description)
        if built.validation_summary.status == "failed":
            raise SEIError(f"the package's description does not validate ({_first_error(built.validation_summary)}); "
                           "nothing was written")
        packed = spec_module.save_bioimageio_package(built, output_path=Path(temporary) / "package.zip")
        with atomic_path(output) as target:
            shutil.copyfile(packed, target)
    return ExportResult(output, str(built.format_version), origin, tuple(test_input.shape),
                        ("pytorch_state_dict", "torchscript"))
