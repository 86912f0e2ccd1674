"""The work the plugin's widgets start, each a call of the library function the command line calls; no Qt here.

Each function runs in a worker thread (the widgets start them with ``napari.qt.threading``): the viewer's event loop
never waits for a PSF, a training step or a restored tile. Errors are those of the library (``sei.core.errors``),
which the widgets show as the command line does, in one line.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np

from sei.core.errors import ConfigError, ImageError
from sei.io.voxels import VoxelSize
from sei.napari.layers import layer_array, read_layer_data, write_layer, write_psf_layer
from sei.physics.spec import PhysicsSpec

__all__ = ["MEASUREMENTS_SUFFIX", "RestoredLayer", "TrainingMonitor", "layer_scale_for", "load_psf", "make_psf",
           "measurements_folder", "restore_layer", "train_layers"]


def make_psf(kind: str, size: int | None = None, **params: float | None) -> tuple[np.ndarray, VoxelSize | None]:
    """``sei psf KIND``: a PSF from optics parameters (:func:`sei.physics.psf.psf_with_sampling`) as a float32
    array summing to 1, ``(k, k)`` or ``(planes, k, k)``, and the voxel size in micrometres a 3-D PSF was made for
    (for a 2-D diffraction PSF, the pixel size it was made for, ``z`` left ``None``: the layer's scale).

    :raises KernelError: for missing or invalid parameters, as the command line says them (``--sigma``).
    """
    import dataclasses

    from sei.physics.psf import psf_with_sampling
    from sei.physics.psf3d import optics_sampling

    kernel, sampling = psf_with_sampling(kind, size=size, **params)
    if sampling is None and kind == "diffraction" and params.get("wavelength") and params.get("pixel_size"):
        pixel = params["pixel_size"]
        sampling = dataclasses.replace(optics_sampling(params["wavelength"], pixel, pixel), z=None)
    return kernel.numpy(), sampling


def load_psf(path: str | Path, bead: bool = False, planes: int | None = None, size: int | None = None
             ) -> tuple[np.ndarray, VoxelSize | None]:
    """A measured PSF: a kernel file as ``--kernel`` reads it (``.npy``, ``.pt``, a grayscale image; its voxel size
    from the record ``sei psf`` writes beside a ``.npy``), or with ``bead`` a bead image or z-stack as ``sei psf bead``
    makes a PSF of it (:func:`sei.physics.psf3d.bead_psf_file`).

    :raises KernelError: for a file that holds no kernel; :class:`ImageError` for an unreadable bead image.
    """
    if bead:
        from sei.physics.psf3d import bead_psf_file

        kernel, sampling = bead_psf_file(path, planes, size)
        return kernel.numpy(), sampling
    from sei.io.voxels import read_psf_voxel_size
    from sei.physics.kernels import VOLUME_DIMS, kernel_from_file

    kernel = kernel_from_file(path, VOLUME_DIMS)
    return kernel.numpy(), read_psf_voxel_size(path) if kernel.ndim == 3 else None


@dataclass
class RestoredLayer:
    """A restored layer's pixels, in the input's dtype and units, and what ``sei restore`` says of the restore.

    :ivar data: ``(H', W'[, C])`` or ``(D, H', W')``; larger than the input by the super-resolution factor.
    :ivar lines: the lines ``sei restore`` prints of it: the operator and where it came from, the noise estimate.
    """

    data: np.ndarray
    lines: list[str]


def restore_layer(layer: Any, model_kind: str = "network", weights: str | None = None,
                  physics: PhysicsSpec | None = None, psf_layer: Any = None, ensemble: bool | None = None,
                  tile: int = 512, overlap: int = 32, download: bool = False, device: str = "auto") -> RestoredLayer:
    """``sei restore`` of one layer: the layer written as a TIFF in its own dtype
    (:func:`sei.napari.layers.write_layer`), restored by :func:`sei.inference.restoration.restore` and read back, so
    that the result is the file the command line writes for the same array.

    :param model_kind: ``network`` (with ``weights``: a run folder, weights file, zoo package or published name) or
        a baseline (``wiener``, ``tv``, ``richardson-lucy`` ...), which needs the operator (``physics``, or
        ``psf_layer``).
    :param physics: the operator options given (``None`` fields where not given, as ``--task``, ``--noise-level`` ...).
    :param psf_layer: a PSF layer, the ``--kernel`` of the restore.
    :raises SEIError: what ``sei restore`` refuses, in its words.
    """
    import dataclasses

    from sei.inference.restoration import restore

    physics = physics or PhysicsSpec()
    with tempfile.TemporaryDirectory(prefix="sei-napari-") as folder:
        folder = Path(folder)
        if psf_layer is not None:
            kernel = write_psf_layer(psf_layer, folder / "psf" / "psf.npy")
            physics = dataclasses.replace(physics, kernel=str(kernel))
        source = write_layer(layer, folder / "input")
        target = folder / "restored" / source.name
        result = restore(source, target, model_kind, weights or None, physics,
                         baseline_options={"download": download, "progress": False}, tile=tile, overlap=overlap,
                         ensemble=ensemble, device=device, download=download, progress=False)
        if result.report.failed:
            _, reason = result.report.failed[0]
            raise ImageError(reason.replace(f"{source.parent}/", "layer "))
        lines = []
        if result.physics is not None:
            lines.append(f"operator: {result.physics.describe()} (from {result.origin})")
        if result.noise_estimate:
            lines.append(result.noise_estimate)
        return RestoredLayer(read_layer_data(target), lines)


# A run's measurements, written from the layers, go beside its folder: <run>-measurements (its config.yaml names it,
# so that `sei train --out-dir RUN --resume` reads them again).
MEASUREMENTS_SUFFIX = "-measurements"


def measurements_folder(out_dir: str | Path) -> Path:
    """Where the layers a run trains on are written: ``<out_dir>-measurements``."""
    out_dir = Path(out_dir)
    return out_dir.with_name(out_dir.name + MEASUREMENTS_SUFFIX)


class TrainingMonitor(L.Callback):
    """Reports each optimiser step to ``report(step, total, loss)`` (``total`` the run's step budget, ``None`` when it
    has none), and once ``stop`` is set, stops training at the end of the epoch: checkpoints are taken at whole epochs'
    ends (:mod:`sei.training.checkpointing`), so that ``sei train --out-dir RUN --resume`` continues the run exactly
    where it stopped, losing no step; the weights are written as at the end of any run.

    ``report`` is called in the training thread; it should hand the values over, not touch widgets.
    """

    def __init__(self, report: Callable[[int, int | None, float | None], None], stop: threading.Event) -> None:
        self.report = report
        self.stop = stop
        self.total: int | None = None
        self.stopped = False
        self._budget: Any = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from sei.training.budget import StepBudget

        self._budget = StepBudget.of(trainer)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_index: int) -> None:
        self.total = self._budget.steps if self._budget is not None else None  # a time budget may re-plan it
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        self.report(trainer.global_step, self.total, None if loss is None else float(loss.detach()))
        # a stop within an epoch would leave its steps out of last.ckpt (the last whole epoch), to be trained again
        epoch_ends = batch_index + 1 >= trainer.num_training_batches
        if self.stop.is_set() and epoch_ends and not trainer.should_stop:
            trainer.should_stop = True
            self.stopped = True


def train_layers(layers: Sequence[Any], psf_layer: Any, out_dir: str | Path, sr_factor: int = 1,
                 noise: str = "gaussian",
                 noise_level: str = "auto", seconds: float | None = None, steps: int | None = None,
                 backbone: str | None = None, crop_size: int | None = None, batch_size: int | None = None,
                 resume: bool = False, callbacks: Sequence[L.Callback] = ()):
    """``sei train --measurements DIR --kernel PSF --out-dir OUT``: the layers written as TIFFs into
    :func:`measurements_folder` (the PSF layer as its ``psf.npy``), the configuration built and resolved as the
    command line builds it (:func:`sei.config.resolve.requested_config`, :func:`sei.config.resolve.resolve`) and
    trained by :func:`sei.training.run.train`.

    :param sr_factor: 1 to deblur; N > 1 for super-resolution by N with the PSF (``--task sr --sr-factor N``).
    :param noise: ``gaussian`` or ``poisson-gaussian``; ``noise_level``: a number of 8-bit grey levels, ``auto``
        (estimated from the measurements) or ``learn``; the gain of Poisson-Gaussian noise is estimated.
    :param seconds: the time budget (``--time``); ``steps``: ``--steps``; ``None`` leaves each to the recipe.
    :param resume: continue the run in ``out_dir`` with its own settings and measurements (``--resume``).
    :return: the :class:`sei.training.run.TrainResult` (its ``weights`` restore at once).
    :raises SEIError: what ``sei train`` refuses, in its words.
    """
    from sei.config.resolve import requested_config, resolve
    from sei.training import train

    values: dict[str, Any] = {"out_dir": str(out_dir), "train.progress": False}
    for key, value in (("train.time", seconds), ("train.steps", steps)):
        if value is not None:
            values[key] = value
    if not resume:
        if not layers:
            raise ConfigError("choose the measurement layer(s) to train on")
        if psf_layer is None:
            raise ConfigError("choose the PSF layer of the measurements (make one in the PSF tab, or load one)")
        folder = measurements_folder(out_dir)
        if folder.exists():  # the layers of another run (or of this one, to resume): never written over
            raise ConfigError(f"{folder} already holds the measurements of a run: choose another run folder, or "
                              f"resume the run in {out_dir}")
        names = [write_layer(layer, folder).name for layer in layers]
        if len(set(names)) < len(names):
            raise ConfigError(f"the measurement layers need different names, got {', '.join(names)}")
        values.update({"data.dataset": str(folder), "data.kind": "measurements", "physics.noise": noise,
                       "physics.noise_level": noise_level,
                       "physics.kernel": str(write_psf_layer(psf_layer, folder / "psf" / "psf.npy"))})
        if sr_factor > 1:
            values.update({"physics.task": "sr", "physics.sr_factor": sr_factor})
        for key, value in (("model.backbone", backbone), ("data.crop_size", crop_size),
                           ("data.batch_size", batch_size)):
            if value is not None:
                values[key] = value
    config = resolve(requested_config(values, None, resume))
    return train(config, resume=resume, callbacks=callbacks)


def layer_scale_for(data: np.ndarray, layer: Any) -> tuple[float, ...]:
    """The scale of a restored layer: the input's, divided along each axis by the factor it grew by (super-resolution),
    so that the two lie on each other in the viewer."""
    source = layer_array(layer)
    dims = source.ndim - (1 if getattr(layer, "rgb", False) else 0)
    scale = [float(s) for s in layer.scale]
    for axis in range(dims):
        scale[axis] = scale[axis] * source.shape[axis] / data.shape[axis]
    return tuple(scale)
