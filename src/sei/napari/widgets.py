"""The plugin's dock widget: PSF, Train and Restore tabs (magicgui forms), their work run in napari worker threads.

Every action calls :mod:`sei.napari.jobs` in a worker (``napari.qt.threading``) so that the viewer's event loop never
waits; what the library refuses (``sei.core.errors.USER_ERRORS``) comes back as a napari notification in the command
line's one line (``sei train: error: ...``), never as a traceback. A training run reports its steps through a queue
that a timer in the viewer's thread drains into the progress bar and the loss plot; Cancel stops it at the end of the
epoch, its checkpoint and weights written, so that the run resumes exactly (the Resume box, or ``sei train --out-dir RUN
--resume``) and restores at once.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import napari
from magicgui.widgets import (
    CheckBox, ComboBox, Container, FileEdit, Label, LineEdit, ProgressBar, PushButton, Select, SpinBox,
)
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QTabWidget

from sei.core.errors import USER_ERRORS, ConfigError, is_note, one_line

__all__ = ["PsfPanel", "RestorePanel", "SeiWidget", "TrainPanel", "report_error"]


def report_error(command: str, error: BaseException) -> None:
    """Show a user error as the command line prints it, in one line: ``sei COMMAND: error: MESSAGE`` (a note, such as
    a finished run asked to resume, as ``sei COMMAND: MESSAGE``)."""
    if is_note(error):
        show_info(f"sei {command}: {one_line(error)}")
    else:
        show_error(f"sei {command}: error: {one_line(error)}")


@dataclass
class _Outcome:
    """What a job returned, or the user error it raised (bugs are left to napari's own error notification)."""

    value: Any = None
    error: BaseException | None = None


def _start(command: str, work: Callable[[], Any], done: Callable[[Any], None], end: Callable[[], None]):
    """Run ``work`` in a napari worker thread; then, in the viewer's thread, ``done(value)`` or the user error
    notified (:func:`report_error`), and ``end()`` in every case (a bug included)."""

    def guarded() -> _Outcome:
        try:
            return _Outcome(work())
        except USER_ERRORS as error:
            return _Outcome(error=error)

    def returned(outcome: _Outcome) -> None:
        if outcome.error is not None:
            report_error(command, outcome.error)
        else:
            done(outcome.value)

    # "errored" (a bug) is connected so that it is not raised again in the viewer's thread: napari notifies it
    worker = create_worker(guarded, _start_thread=False,
                           _connect={"returned": returned, "errored": lambda _: None, "finished": end})
    worker.start()
    return worker


def _image_layers(viewer: napari.Viewer) -> Callable[[Any], list[tuple[str, Any]]]:
    """The choices of a layer box: the viewer's image layers, by name."""
    return lambda _widget=None: [(layer.name, layer) for layer in viewer.layers
                                 if isinstance(layer, napari.layers.Image)]


def _physical(sampling: Any, ndim: int = 3) -> dict[str, Any]:
    """A layer's scale and units for a voxel (``ndim`` 3) or pixel (2) size in micrometres (nothing for a PSF in
    pixels)."""
    axes = () if sampling is None else (sampling.z, sampling.y, sampling.x)[-ndim:]
    if not axes or None in axes:
        return {}
    return {"scale": axes, "units": ("µm",) * ndim}


def _number(name: str, text: str, kind: type = float) -> float | int | None:
    """A parameter field's value: ``None`` when empty; a one-line error naming the command line's option."""
    text = text.strip()
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(f"--{name.replace('_', '-')}: expected {'an integer' if kind is int else 'a number'}, "
                          f"got {text!r}") from None


# The parameter fields of the PSF tab: their labels (lengths in pixels unless said) and the sources that take them,
# in the order of ``sei psf``'s options (sei.physics.psf.make_psf checks them).
_PSF_FIELDS = {
    "sigma": "sigma (px)", "sigma_y": "sigma y (px)", "angle": "angle (deg)", "length": "length (px)",
    "radius": "radius (px)", "wavelength": "wavelength", "pixel_size": "pixel size", "na": "NA",
    "f_number": "f-number", "rings": "rings", "z_step": "z-step", "planes": "planes", "immersion_index":
    "immersion index", "sample_index": "sample index", "depth": "depth", "excitation_wavelength":
    "excitation wavelength", "pinhole": "pinhole (AU)", "size": "size (px)",
}
_INTEGER_FIELDS = ("rings", "planes", "size")
_OPTICS_3D = ("wavelength", "na", "pixel_size", "z_step", "planes", "immersion_index", "sample_index", "depth")
_PSF_SOURCES = {
    "gaussian": ("sigma", "sigma_y", "angle", "size"),
    "motion": ("length", "angle", "size"),
    "defocus": ("radius", "size"),
    "diffraction": ("wavelength", "pixel_size", "na", "f_number", "rings", "size"),
    "widefield": (*_OPTICS_3D, "size"),
    "confocal": (*_OPTICS_3D, "excitation_wavelength", "pinhole", "size"),
    "file": (),
    "bead": ("planes", "size"),
}


class PsfPanel(Container):
    """Make a PSF from optics parameters (``sei psf KIND``) or load a measured one (a kernel file as ``--kernel`` reads
    it, or a bead image as ``sei psf bead``), shown as an image layer with its voxel size in micrometres."""

    def __init__(self, viewer: napari.Viewer) -> None:
        from sei.physics.kernels import PAPER_KERNELS

        self.viewer = viewer
        self.source = ComboBox(label="PSF", choices=[*_PSF_SOURCES, *PAPER_KERNELS], value="gaussian",
                               tooltip="a model (as sei psf), a named kernel, a kernel file, or a bead image")
        self.fields = {name: LineEdit(label=label, tooltip=f"sei psf --{name.replace('_', '-')} (empty: default)")
                       for name, label in _PSF_FIELDS.items()}
        self.file = FileEdit(label="file", mode="r", tooltip=".npy, .pt or grayscale image (file); image or "
                                                            "multi-page TIFF z-stack of one bead (bead)")
        self.units = Label(value="wavelength, pixel size, z-step, depth: one unit (nm or um)")
        self.make = PushButton(text="Add PSF layer")
        super().__init__(widgets=[self.source, *self.fields.values(), self.file, self.units, self.make])
        self.worker = None
        self.source.changed.connect(self._show_fields)
        self.make.changed.connect(self.start)
        self._show_fields()
        self.native.layout().addStretch()

    def _show_fields(self, *_: Any) -> None:
        shown = _PSF_SOURCES.get(self.source.value, ())
        for name, field in self.fields.items():
            field.visible = name in shown
        self.file.visible = self.source.value in ("file", "bead")
        self.units.visible = self.source.value in ("diffraction", "widefield", "confocal")

    def parameters(self) -> dict[str, float | int | None]:
        """The values of the fields the source takes (``None`` for an empty one)."""
        return {name: _number(name, self.fields[name].value, int if name in _INTEGER_FIELDS else float)
                for name in _PSF_SOURCES.get(self.source.value, ())}

    def start(self, *_: Any):
        """Make or load the PSF in a worker; it is added as a layer when done. Returns the worker (``None`` when a
        field is refused, which is notified)."""
        from sei.napari import jobs

        source = self.source.value
        try:
            params = self.parameters()
        except ConfigError as error:
            report_error("psf", error)
            return None
        if source in ("file", "bead"):
            path = Path(self.file.value)
            size = params.pop("size", None)
            work = partial(jobs.load_psf, path, bead=source == "bead", size=size, **params)
            name = f"PSF {path.stem}"
        else:
            size = params.pop("size", None)
            work = partial(jobs.make_psf, source, size=size, **params)
            name = f"PSF {source}"
        self.make.enabled = False
        self.worker = _start("psf", work, lambda result: self._add(name, *result), self._ended)
        return self.worker

    def _add(self, name: str, kernel: Any, sampling: Any) -> None:
        self.viewer.add_image(kernel, name=name, colormap="magma", **_physical(sampling, kernel.ndim))

    def _ended(self) -> None:
        self.make.enabled = True
        self.worker = None


# The Restore tab's ensemble choices: what each passes to sei.inference.restoration.restore (None: its default).
_ENSEMBLE = {"auto": None, "on": True, "off": False}


def _backbones() -> list[str]:
    from sei.models.registry import BACKBONES

    return ["auto", *BACKBONES]


class TrainPanel(Container):
    """Train a network on measurement layers with a PSF layer (``sei train --measurements``), in a worker: a progress
    bar, the loss plotted as it goes, and Cancel, which leaves a run that resumes.

    :param on_trained: called in the viewer's thread with the run folder and the first measurement layer when a run
        ends with weights (finished or cancelled).
    """

    def __init__(self, viewer: napari.Viewer, on_trained: Callable[[Path, Any], None] | None = None) -> None:
        layers = _image_layers(viewer)
        self.viewer, self.on_trained = viewer, on_trained
        self.measurements = Select(label="measurements", choices=layers,
                                   tooltip="the layers to train on (blurry images or z-stacks); no sharp images needed")
        self.measurements.native.setMaximumHeight(90)  # four rows; it scrolls
        self.psf = ComboBox(label="PSF", choices=layers, nullable=True, tooltip="the PSF layer (--kernel)")
        self.sr_factor = SpinBox(label="SR factor", value=1, min=1, max=8,
                                 tooltip="--task sr --sr-factor N: super-resolution by N with the PSF (1: deblurring)")
        self.noise = ComboBox(label="noise", choices=["gaussian", "poisson-gaussian"], value="gaussian",
                              tooltip="--noise (poisson-gaussian: photon and read noise, its gain estimated)")
        self.noise_level = LineEdit(label="noise level", value="auto",
                                    tooltip="--noise-level: auto (estimated), learn, or 8-bit grey levels")
        self.time = LineEdit(label="time", value="5m", tooltip="--time: 90s, 10m, 1h30m (empty: the recipe's)")
        self.steps = SpinBox(label="steps", value=0, min=0, max=10_000_000,
                             tooltip="--steps (0: as many as fit in the time)")
        self.backbone = ComboBox(label="network", choices=_backbones(), value="auto", tooltip="--model")
        self.crop_size = SpinBox(label="crop size", value=0, min=0, max=4096, tooltip="--crop-size (0: the recipe's)")
        self.batch_size = SpinBox(label="batch size", value=0, min=0, max=4096,
                                  tooltip="--batch-size (0: the recipe's)")
        self.out_dir = LineEdit(label="run folder", value="",
                                tooltip="--out-dir (empty: runs/<layer name>, the next free one)")
        self.resume = CheckBox(label="resume", value=False, tooltip="--resume: continue the run in the run folder")
        self.train = PushButton(text="Train")
        self.cancel = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="progress", value=0, min=0, max=1)
        self.status = Label(value="")
        super().__init__(widgets=[self.measurements, self.psf, self.sr_factor, self.noise, self.noise_level, self.time,
                                  self.steps,
                                  self.backbone, self.crop_size, self.batch_size, self.out_dir, self.resume,
                                  self.train, self.cancel, self.progress, self.status])
        self.status.native.setWordWrap(True)
        self._figure, self._axes, self._canvas = self._loss_plot()
        self.native.layout().addWidget(self._canvas)
        self.native.layout().addStretch()
        self._steps: queue.SimpleQueue[tuple[int, int | None, float | None]] = queue.SimpleQueue()
        self._losses: list[tuple[int, float]] = []
        self._stop = threading.Event()
        self._timer = QTimer(self.native)
        self._timer.setInterval(200)
        self._timer.timeout.connect(self._drain)
        self.worker = None
        self.train.changed.connect(self.start)
        self.cancel.changed.connect(self.request_stop)

    @staticmethod
    def _loss_plot():
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=(3.2, 2.0), layout="constrained")
        axes = figure.add_subplot()
        axes.set_xlabel("step")
        axes.set_ylabel("loss")
        canvas = FigureCanvasQTAgg(figure)
        canvas.setMinimumHeight(160)
        return figure, axes, canvas

    def _run_folder(self) -> Path:
        """The run folder given, or ``runs/<first layer>`` (``-2``, ``-3`` ... when taken)."""
        from sei.config.resolve import RUNS_DIR
        from sei.napari.jobs import measurements_folder
        from sei.napari.layers import file_name

        if self.out_dir.value.strip():
            return Path(self.out_dir.value.strip()).expanduser()
        if self.resume.value:
            raise ConfigError("resume needs the run folder of the run to continue")
        if not self.measurements.value:
            raise ConfigError("choose the measurement layer(s) to train on")
        base = Path(RUNS_DIR) / file_name(self.measurements.value[0], "")
        folder, number = base, 1
        while folder.exists() or measurements_folder(folder).exists():
            number += 1
            folder = base.with_name(f"{base.name}-{number}")
        return folder

    def _budget(self) -> float | None:
        from sei.core.units import parse_duration

        text = self.time.value.strip()
        if not text:
            return None
        try:
            return parse_duration(text)
        except ValueError as error:
            raise ConfigError(f"--time: {error}") from None

    def start(self, *_: Any):
        """Start training in a worker (returns it; ``None`` when the settings are refused, which is notified)."""
        from sei.napari import jobs

        try:
            out_dir, seconds = self._run_folder(), self._budget()
        except ConfigError as error:
            report_error("train", error)
            return None
        layers, psf = list(self.measurements.value), self.psf.value
        settings = dict(sr_factor=self.sr_factor.value, noise=self.noise.value,
                        noise_level=self.noise_level.value.strip() or "auto", seconds=seconds,
                        steps=self.steps.value or None, crop_size=self.crop_size.value or None,
                        batch_size=self.batch_size.value or None, resume=self.resume.value,
                        backbone=None if self.backbone.value == "auto" else self.backbone.value)
        self.out_dir.value = str(out_dir)
        self._stop.clear()
        monitor = jobs.TrainingMonitor(lambda *step: self._steps.put(step), self._stop)
        self._losses.clear()
        self._axes.clear()
        self.progress.value, self.progress.max = 0, 1
        self.status.value = f"training in {out_dir} (the first steps are timed)"
        self.train.enabled, self.cancel.enabled = False, True
        self._timer.start()

        def work():
            return jobs.train_layers(layers, psf, out_dir, callbacks=[monitor], **settings), monitor.stopped

        self.worker = _start("train", work, self._finished, self._ended)
        return self.worker

    def request_stop(self, *_: Any) -> None:
        """Cancel: stop at the end of this epoch (where checkpoints are taken), the weights written."""
        self._stop.set()
        self.cancel.enabled = False
        self.status.value = "stopping at the end of this epoch (a checkpoint that resumes exactly) ..."

    def _drain(self) -> None:
        """Move the steps the training thread reported into the progress bar and the plot (viewer's thread)."""
        latest = None
        while True:
            try:
                latest = self._steps.get_nowait()
            except queue.Empty:
                break
            step, _, loss = latest
            if loss is not None:
                self._losses.append((step, loss))
        if latest is None:
            return
        step, total, loss = latest
        self.progress.max = max(total or step, 1)
        self.progress.value = min(step, self.progress.max)
        if not self._stop.is_set():
            self.status.value = (f"step {step}" + (f" of {total}" if total else "")
                                 + (f", loss {loss:.4g}" if loss is not None else ""))
        if self._losses:
            self._axes.clear()
            self._axes.plot(*zip(*self._losses), color="tab:orange", linewidth=1)
            self._axes.set_xlabel("step")
            self._axes.set_ylabel("loss")
            self._axes.set_yscale("log" if min(loss for _, loss in self._losses) > 0 else "linear")
            self._canvas.draw_idle()

    def _finished(self, value: Any) -> None:
        result, stopped = value
        self._drain()
        steps = self._losses[-1][0] if self._losses else 0
        if stopped:
            self.status.value = (f"cancelled: {result.out_dir} resumes (resume box, or sei train --out-dir "
                                 f"{result.out_dir} --resume)")
        else:
            self.status.value = f"trained in {result.seconds:.0f} s; weights: {result.weights}"
        show_info(f"sei train: {'cancelled' if stopped else 'trained'} {result.out_dir.name} ({steps} steps); "
                  "its network is in the Restore tab")
        if self.on_trained is not None:
            self.on_trained(result.out_dir, self.measurements.value[0] if self.measurements.value else None)

    def _ended(self) -> None:
        self._timer.stop()
        self._drain()
        self.train.enabled, self.cancel.enabled = True, False
        self.worker = None


def _published_weights() -> list[str]:
    """The published names ``--weights`` takes: the networks that ship with sei, then the reference's."""
    from sei.models.hub import KNOWN_NAMES
    from sei.models.pretrained import pretrained_networks

    return ["", *(network.weights_name for network in pretrained_networks().values()), *KNOWN_NAMES]


class RestorePanel(Container):
    """Restore a layer (``sei restore``) with a trained run, published weights or a baseline, tiled, in a worker; the
    result is added as a layer on the input's scale and contrast limits, to flick between them."""

    def __init__(self, viewer: napari.Viewer) -> None:
        from sei.inference.baselines import MODEL_KINDS

        layers = _image_layers(viewer)
        self.viewer = viewer
        self.image = ComboBox(label="image", choices=layers, nullable=True, tooltip="the layer to restore")
        self.model_kind = ComboBox(label="restorer", choices=list(MODEL_KINDS), value="network",
                                   tooltip="--model-kind: a network (weights below) or a baseline (needs the PSF)")
        self.weights = LineEdit(label="weights", value="",
                                tooltip="--weights: a run folder, weights file, zoo package (.zip) or published name")
        self.published = ComboBox(label="published", choices=_published_weights(), value="",
                                  tooltip="networks that ship with sei, and the reference's (download)")
        self.psf = ComboBox(label="PSF", choices=layers, nullable=True,
                            tooltip="--kernel: the PSF layer (baselines; networks carry theirs)")
        self.noise_level = LineEdit(label="noise level", value="",
                                    tooltip="--noise-level (empty: the network's record, else auto)")
        self.ensemble = ComboBox(label="ensemble", choices=list(_ENSEMBLE), value="auto",
                                 tooltip="average a network's estimates over the flips and rotations the operator "
                                         "allows: auto (sei restore's default: images, not volumes), on "
                                         "(--ensemble), off (--no-ensemble)")
        self.tile = SpinBox(label="tile", value=512, min=0, max=65536, tooltip="--tile in pixels (0: whole image)")
        self.download = CheckBox(label="download", value=False, tooltip="--download published weights")
        self.run = PushButton(text="Restore")
        self.status = Label(value="")
        super().__init__(widgets=[self.image, self.model_kind, self.weights, self.published, self.psf,
                                  self.noise_level, self.ensemble, self.tile, self.download, self.run, self.status])
        self.status.native.setWordWrap(True)
        self.native.layout().addStretch()
        self.published.changed.connect(self._use_published)
        self.run.changed.connect(self.start)
        self.worker = None

    def _use_published(self, name: str) -> None:
        if name:
            self.weights.value = name
            self.model_kind.value = "network"

    def use_run(self, run: Path, layer: Any = None) -> None:
        """Restore with the network of ``run`` (a run folder), the layer it trained on chosen."""
        self.reset_choices()
        self.model_kind.value = "network"
        self.weights.value = str(run)
        if layer is not None and layer in self.viewer.layers:
            self.image.value = layer

    def start(self, *_: Any):
        """Restore the chosen layer in a worker (returns it; ``None`` when nothing is chosen, which is notified)."""
        from sei.napari import jobs
        from sei.physics.spec import PhysicsSpec

        layer = self.image.value
        if layer is None:
            report_error("restore", ConfigError("choose the layer to restore"))
            return None
        kind, weights, psf = self.model_kind.value, self.weights.value.strip() or None, self.psf.value
        physics = PhysicsSpec(noise_level=self.noise_level.value.strip() or None)
        options = dict(ensemble=_ENSEMBLE[self.ensemble.value], tile=self.tile.value, download=self.download.value)
        label = Path(weights).name if kind == "network" and weights else kind
        self.run.enabled = False
        self.status.value = f"restoring {layer.name} with {label} ..."
        work = partial(jobs.restore_layer, layer, kind, weights, physics, psf, **options)
        self.worker = _start("restore", work, partial(self._add, layer, label), self._ended)
        return self.worker

    def _add(self, layer: Any, label: str, restored: Any) -> None:
        from sei.napari.jobs import layer_scale_for

        options = {"colormap": layer.colormap.name} if not layer.rgb else {}
        self.viewer.add_image(restored.data, name=f"{layer.name} restored ({label})", rgb=layer.rgb,
                              scale=layer_scale_for(restored.data, layer), translate=layer.translate,
                              units=layer.units, contrast_limits=layer.contrast_limits, **options)
        self.status.value = "; ".join(restored.lines)

    def _ended(self) -> None:
        self.run.enabled = True
        self.worker = None


class SeiWidget(QTabWidget):
    """The plugin's dock widget: the PSF, Train and Restore tabs; a finished (or cancelled) training run is chosen
    in the Restore tab at once."""

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self.psf = PsfPanel(napari_viewer)
        self.restore = RestorePanel(napari_viewer)
        self.train = TrainPanel(napari_viewer, on_trained=self._trained)
        for panel, title in ((self.psf, "PSF"), (self.train, "Train"), (self.restore, "Restore")):
            self.addTab(panel.native, title)

    def _trained(self, run: Path, layer: Any) -> None:
        self.restore.use_run(run, layer)
        self.setCurrentWidget(self.restore.native)

    def reset_choices(self, *_: Any) -> None:
        """Refresh the layer boxes (napari calls it when layers are added, removed, reordered or renamed)."""
        for panel in (self.psf, self.train, self.restore):
            panel.reset_choices()
