"""One physics spec: what the measurements are, resolved once (defaults, canonical names), built once.

A :class:`PhysicsSpec` is the ``physics`` section of an experiment configuration, of a ``degradation.yaml``, of a
weights file's record and of a published weights name alike::

    physics: {task: deblurring, kernel: Gaussian_R2, noise: gaussian, noise_level: 5}
    physics: {task: sr, sr_factor: 2}                       # the paper's bicubic down-sampling
    physics: {task: sr, sr_factor: 4, kernel: psf.npy}      # blur by a PSF, then keep every 4th pixel

:func:`resolve_spec` is the one place where defaults are filled and names made canonical
(``gaussian_r2`` -> ``Gaussian_R2``, ``deblur`` -> ``deblurring``); :meth:`PhysicsSpec.build` the one place
where an operator is made from the words.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sei.core.defaults import BOUNDARIES, DEFAULT_NOISE_LEVEL
from sei.core.errors import ConfigError, UnknownNameError
from sei.core.files import read_yaml_mapping
from sei.core.units import sigma_of
from sei.physics.registry import OPERATORS, OperatorKind, operator_kind

__all__ = ["DEFAULT_KERNEL", "DEFAULT_NOISE_LEVEL", "DEGRADATION_FILE", "ESTIMATED", "LEARNED", "NOISE_MODELS",
           "NOISE_SOURCES", "OPERATORS", "PADDINGS", "PAPER_SR_FACTORS", "TASKS", "PhysicsSpec", "canonical_kernel",
           "canonical_task", "is_kernel_file", "read_degradation_spec", "resolve_spec"]

TASKS = ("deblurring", "sr")
_TASK_ALIASES = {
    "deblurring": "deblurring", "deblur": "deblurring", "blur": "deblurring",
    "sr": "sr", "super-resolution": "sr", "superresolution": "sr",
}
NOISE_MODELS = ("gaussian", "poisson-gaussian")
# A noise level (or gain) the measurements themselves give: estimated before the operator is built.
ESTIMATED = "auto"
# A Gaussian noise level learned with the network (sei.losses.sei.SEILoss), from the measurements' estimate.
LEARNED = "learn"
NOISE_SOURCES = ("given", "estimated", "learned")
PADDINGS = BOUNDARIES  # the blur's boundary models (sei.core.defaults)
PAPER_SR_FACTORS = (2, 3, 4)
# The paper's default kernel, used only where measurements are simulated from clean images.
DEFAULT_KERNEL = "Gaussian_R2"
# The paper's noise level (grey levels), the one default of every noise level in sei, is
# sei.core.defaults.DEFAULT_NOISE_LEVEL (imported above: help texts quote it without importing this module).
# The record ``sei degrade`` writes beside the measurements it simulates.
DEGRADATION_FILE = "degradation.yaml"


def canonical_task(task: str) -> str:
    """``'deblur'`` -> ``'deblurring'``, ``'super-resolution'`` -> ``'sr'``; raises for anything else."""
    key = str(task).strip().lower()
    if key not in _TASK_ALIASES:
        raise UnknownNameError("task", task, TASKS)
    return _TASK_ALIASES[key]


def is_kernel_file(kernel: Any) -> bool:
    """Whether ``kernel`` names a file (a path with a kernel-file suffix) rather than a named kernel."""
    from sei.physics.kernels import is_kernel_path

    return is_kernel_path(kernel)


def canonical_kernel(kernel: Any) -> str | torch.Tensor:
    """A named kernel's canonical spelling (checked by its form, nothing built), a file path as a string (read once
    here, so that a missing or malformed file fails with its name before anything runs), or a tensor unchanged."""
    from sei.physics.kernels import VOLUME_DIMS, canonical_kernel_name, kernel_from_file

    if isinstance(kernel, torch.Tensor):
        return kernel
    if is_kernel_file(kernel):
        kernel_from_file(kernel, VOLUME_DIMS)
        return str(kernel)
    return canonical_kernel_name(str(kernel))


@dataclass(frozen=True)
class PhysicsSpec:
    """The measurement model ``y = A x + e`` in words.

    Fields left at ``None`` are filled by :func:`resolve_spec`, the one place where they are checked and made
    canonical; a resolved spec says so (``resolved``) and is never resolved again.

    :ivar task: ``"deblurring"`` or ``"sr"``.
    :ivar kernel: blur kernel: a name (``Gaussian_R2``, ``Box_R3``), a kernel file, or a ``(kh, kw)`` tensor (in
        memory only, e.g. read from a weights file); a ``(kd, kh, kw)`` PSF (file or tensor) blurs volumes. For ``sr``: ``None`` is the paper's bicubic down-sampling,
        a kernel means blur by it then keep every ``sr_factor``-th pixel.
    :ivar sr_factor: super-resolution factor (``sr`` only).
    :ivar noise: noise model, ``"gaussian"`` (``y = A x + N(0, sigma^2)``, the default) or ``"poisson-gaussian"``
        (``y = gain * Poisson(A x / gain) + N(0, sigma^2)``).
    :ivar noise_level: Gaussian noise standard deviation in 8-bit grey levels (:mod:`sei.core.units`), or
        ``"auto"``: estimated from the measurements (:func:`sei.physics.noise_estimation.estimate_spec_noise`)
        before :meth:`build`, or ``"learn"``: estimated, then learned with the network from the SURE residual
        (Gaussian only; :class:`sei.losses.sei.SEILoss`).
    :ivar gain: Poisson gain (intensity of one photon, in [0, 1] image units) for ``poisson-gaussian``, or
        ``"auto"``; ``None`` for Gaussian noise.
    :ivar noise_source: ``"given"``, ``"estimated"`` (from the measurements) or ``"learned"`` (the level is the
        starting point of one learned in training; a trained network's weights record the learned value).
    :ivar padding: the blur's boundary model (what lies beyond the image's borders): ``"circular"`` (the paper's,
        the default), ``"reflect"`` or ``"replicate"`` (:class:`~sei.physics.blur.FFTBlur`); operators whose
        registry entry does not list a model refuse it. ``None`` until resolved: the recorded model where the
        operator comes from a record, else circular.
    :ivar spatial_dims: 2 when the measurements are images, 3 when they are volumes (z-stacks); decided by the
        kernel's dimensionality when resolved (a value given that the kernel contradicts is an error).
    :ivar operator: set when the operator was handed over from Python and cannot be rebuilt from these words
        (its class name); :meth:`build` then refuses.
    :ivar resolved: set by :func:`resolve_spec` only.

    >>> spec = resolve_spec(PhysicsSpec(task="deblur", kernel="gaussian_r2"))
    >>> spec.kernel, spec.noise, spec.noise_level, spec.kind
    ('Gaussian_R2', 'gaussian', 5.0, 'blur')
    >>> spec.describe()
    'Gaussian_R2 deblurring, gaussian noise 5/255'
    """

    task: str | None = None
    kernel: Any = None
    sr_factor: int | None = None
    noise: str | None = None
    noise_level: float | str | None = None
    gain: float | str | None = None
    noise_source: str = "given"
    padding: str | None = None
    spatial_dims: int | None = None
    operator: str | None = None
    resolved: bool = field(default=False, compare=False, repr=False)

    # -- derived ------------------------------------------------------------------------------------------
    @property
    def sigma(self) -> float:
        """Noise standard deviation in [0, 1] units.

        :raises ConfigError: while the level is still to be estimated (``"auto"``)."""
        if self.needs_estimate:
            raise ConfigError(f"the noise level is still {self.noise_level!r}: estimate it from the measurements first "
                              "(sei.physics.noise_estimation.estimate_spec_noise)")
        return sigma_of(self.noise_level)

    @property
    def needs_estimate(self) -> bool:
        """Whether the noise level or gain is ``"auto"``, still to be estimated from measurements."""
        return self.noise_level in (ESTIMATED, LEARNED) or self.gain == ESTIMATED

    @property
    def upscale(self) -> int:
        return int(self.sr_factor) if self.task == "sr" else 1

    @property
    def kind(self) -> str:
        """The name of the operator's entry in :data:`sei.physics.registry.OPERATORS`."""
        return self.operator_kind.name

    @property
    def operator_kind(self) -> OperatorKind:
        """The operator's registry entry (:mod:`sei.physics.registry`)."""
        return operator_kind(self.task, self.kernel, self.sr_factor, self.dimensionality)

    @property
    def dimensionality(self) -> int:
        """2 for images, 3 for volumes: ``spatial_dims`` once resolved, else what the kernel says (a spec recorded
        before volumes existed has none)."""
        if self.spatial_dims is not None:
            return int(self.spatial_dims)
        if self.kernel is None:
            return 2
        from sei.physics.kernels import kernel_dimensionality

        return kernel_dimensionality(self.kernel)

    @property
    def kernel_is_file(self) -> bool:
        return is_kernel_file(self.kernel)

    def kernel_label(self) -> str:
        """A short name for the kernel: its name, its file's stem, or ``psf`` for a tensor."""
        if self.kernel is None:
            return "bicubic"
        if isinstance(self.kernel, torch.Tensor):
            return "psf"
        return Path(str(self.kernel)).stem if self.kernel_is_file else str(self.kernel)

    def kernel_copy_name(self) -> str:
        """The file name a copy of this spec's kernel gets in a run or measurement folder (``psf.npy``)."""
        return f"{Path(str(self.kernel)).stem}.npy" if self.kernel_is_file else "kernel.npy"

    def kernel_copy_target(self, folder: str | Path) -> Path | None:
        """Where :meth:`copy_kernel` writes into ``folder``: ``None`` for named kernels and bicubic SR, which need
        no copy, and for a kernel file that is already that file."""
        if self.kernel is None or (isinstance(self.kernel, str) and not self.kernel_is_file):
            return None
        copy = Path(folder) / self.kernel_copy_name()
        if self.kernel_is_file and copy.resolve() == Path(str(self.kernel)).resolve():
            return None
        return copy

    def copy_kernel(self, folder: str | Path) -> Path | None:
        """Write a file or tensor kernel into ``folder`` (as :meth:`kernel_copy_name`), so that the folder does not
        depend on the original file; ``None`` for named kernels and bicubic SR, which need no copy.

        :return: the copy's path.
        """
        from sei.io.voxels import read_psf_voxel_size, write_psf_voxel_size
        from sei.physics.kernels import VOLUME_DIMS, load_kernel, write_kernel

        if self.kernel is None or (isinstance(self.kernel, str) and not self.kernel_is_file):
            return None
        copy = self.kernel_copy_target(folder)
        if copy is None:  # the folder's own kernel file
            return Path(folder) / self.kernel_copy_name()
        write_kernel(load_kernel(self.kernel, VOLUME_DIMS), copy)
        sampling = read_psf_voxel_size(self.kernel)
        if sampling is not None:  # the copy keeps the sampling the PSF was made for
            write_psf_voxel_size(copy, sampling)
        return copy

    def short_name(self) -> str:
        """``Gaussian_R2``, ``x2`` or ``x2_Box_R3``: the operator's part of a run name."""
        if self.task == "deblurring":
            return self.kernel_label()
        return f"x{self.sr_factor}" + (f"_{self.kernel_label()}" if self.kernel is not None else "")

    def noise_label(self) -> str:
        """The noise's part of a run name: ``5``, ``auto``, or ``pg0.02_2`` (Poisson gain, read-noise level)."""
        def text(value: Any) -> str:
            return value if isinstance(value, str) else f"{value:g}"

        level = text(self.noise_level)
        return f"pg{text(self.gain)}_{level}" if self.noise == "poisson-gaussian" else level

    def describe(self) -> str:
        """One line for people: ``Gaussian_R2 deblurring, Gaussian noise 5/255``."""
        if self.operator:
            what = f"{self.operator} (from Python)"
        elif self.task == "deblurring":
            what = f"{'3-D ' if self.spatial_dims == 3 else ''}{self.kernel_label()} deblurring"
        else:
            how = "bicubic" if self.kernel is None else f"{self.kernel_label()} blur then decimation"
            if self.spatial_dims == 3:  # sei.core.scaling: volumes are super-resolved along z
                how = f"3-D {self.kernel_label()} blur, then every {_ordinal(self.sr_factor)} plane kept"
            what = f"x{self.sr_factor} {'axial ' if self.spatial_dims == 3 else ''}super-resolution ({how})"
        level = self.noise_level if isinstance(self.noise_level, str) else f"{self.noise_level:g}/255"
        noise = f"{self.noise} noise {level}"
        if self.noise == "poisson-gaussian":
            gain = self.gain if isinstance(self.gain, str) or self.gain is None else f"{self.gain:.4g}"
            noise += f", gain {gain}"
        origin = {"estimated": " (estimated from the measurements)",
                  "learned": " (estimated from the measurements, then learned with the network)"}
        borders = f", {self.padding} borders" if self.padding not in (None, PADDINGS[0]) else ""
        return f"{what}{borders}, {noise}" + origin.get(self.noise_source, "")

    # -- conversions --------------------------------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        """The spec's fields as they are (``resolved`` left out)."""
        return {name: getattr(self, name) for name in _FIELDS}

    def to_dict(self) -> dict[str, Any]:
        """The spec as YAML-safe values; a tensor kernel is written as a description (see :meth:`record`)."""
        values = self.values()
        if isinstance(self.kernel, torch.Tensor):
            values["kernel"] = f"<{'x'.join(map(str, self.kernel.shape))} kernel>"
        return values

    def record(self) -> dict[str, Any]:
        """What a weights file stores: the spec, with a kernel file's content embedded as a tensor."""
        values = self.to_dict()
        if self.kernel is not None and (self.kernel_is_file or isinstance(self.kernel, torch.Tensor)):
            from sei.physics.kernels import VOLUME_DIMS, load_kernel

            values["kernel"] = load_kernel(self.kernel, VOLUME_DIMS).clone()
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PhysicsSpec:
        """A spec from a mapping (YAML section, weights record); unknown keys are an error."""
        if not isinstance(values, dict):
            raise ConfigError(f"a physics spec must be a mapping, got {type(values).__name__}")
        unknown = sorted(set(values) - set(_FIELDS))
        if unknown:
            raise ConfigError(f"unknown physics key(s) {', '.join(unknown)}; valid: {', '.join(sorted(_FIELDS))}")
        return cls(**values)

    def same_operator(self, other: PhysicsSpec) -> bool:
        """Whether two resolved specs describe the same measurements (kernel files compared by content)."""
        from sei.physics.kernels import VOLUME_DIMS, load_kernel

        mine, theirs = self.values(), other.values()
        for values in (mine, theirs):
            values.pop("kernel"), values.pop("spatial_dims")
        if mine != theirs or self.dimensionality != other.dimensionality:
            return False
        if self.kernel is None or other.kernel is None:
            return self.kernel is None and other.kernel is None
        if isinstance(self.kernel, str) and isinstance(other.kernel, str) and self.kernel == other.kernel:
            return True
        a, b = load_kernel(self.kernel, VOLUME_DIMS), load_kernel(other.kernel, VOLUME_DIMS)
        return a.shape == b.shape and bool(torch.allclose(a, b, rtol=0, atol=1e-7))

    # -- the operator -------------------------------------------------------------------------------------
    def build(self):
        """The operator with its noise model, made by the spec's registry entry (a spec not yet resolved is
        resolved first).

        :return: the operator (:class:`~sei.physics.blur.FFTBlur`, ...), carrying this spec as ``.spec``.
        :raises ConfigError: if the spec does not describe one operator, records an operator from Python, or still
            has a noise level to estimate.
        """
        from sei.physics.noise import GaussianNoise, PoissonGaussianNoise

        spec = self if self.resolved else resolve_spec(self)
        if spec.needs_estimate:
            raise ConfigError("the noise level or gain is 'auto' or 'learn', which only measurements can tell, and "
                              "none are read here: give --noise-level NUMBER (and --gain NUMBER)")
        noise = (PoissonGaussianNoise(spec.gain, spec.noise_level) if spec.noise == "poisson-gaussian"
                 else GaussianNoise(spec.noise_level))
        operator = spec.operator_kind.build(spec, noise)
        operator.spec = spec
        return operator


_FIELDS = tuple(f.name for f in dataclasses.fields(PhysicsSpec) if f.name != "resolved")


def _ordinal(n: int) -> str:
    """``2`` -> ``2nd``, ``3`` -> ``3rd``, ``11`` -> ``11th``."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _noise_level_word(value: Any) -> float | str:
    """A noise level as given: ``auto``/``learn`` (any case), or a number (checked)."""
    from sei.physics.noise import check_noise_level

    if isinstance(value, str) and value.strip().lower() in (ESTIMATED, LEARNED):
        return value.strip().lower()
    try:
        return check_noise_level(value)
    except ConfigError as error:
        raise ConfigError(f"{error} (or '{ESTIMATED}', '{LEARNED}')") from None


def _gain_word(value: Any, noise: str) -> float | str | None:
    """A Poisson-Gaussian model's gain (a finite number > 0, or ``"auto"``); ``None`` for Gaussian noise."""
    from sei.physics.noise import check_gain

    if noise != "poisson-gaussian":
        if value is not None:
            raise ConfigError(f"a gain ({value!r}) is for --noise poisson-gaussian, not {noise} noise")
        return None
    if value is None:
        raise ConfigError("Poisson-Gaussian noise needs its gain (the intensity of one photon in [0, 1] image units, "
                          f"e.g. 1/50 for a peak of 50 photons): --gain NUMBER or --gain {ESTIMATED}")
    if isinstance(value, str) and value.strip().lower() == ESTIMATED:
        return ESTIMATED
    try:
        return check_gain(value)
    except ConfigError as error:
        raise ConfigError(f"{error} (or '{ESTIMATED}')") from None


def _check_factor(value: Any) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"super-resolution factor must be an integer >= 2, got {value!r}")
    try:
        factor = int(value)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"super-resolution factor must be an integer >= 2, got {value!r}") from error
    if factor != value and str(factor) != str(value):
        raise ConfigError(f"super-resolution factor must be an integer >= 2, got {value!r}")
    if factor < 2:
        raise ConfigError(f"super-resolution factor must be an integer >= 2, got {value!r}")
    return factor


def resolve_spec(spec: PhysicsSpec | dict[str, Any], default_kernel: str | None = None,
                 recorded: PhysicsSpec | None = None, measured: bool = False) -> PhysicsSpec:
    """The canonical, checked spec: the one place for the physics defaults and checks.

    :param default_kernel: the kernel a deblurring spec without one gets (``DEFAULT_KERNEL`` where measurements
        are simulated from clean images); ``None`` makes a missing kernel an error (the user's own measurements).
    :param recorded: what the measurements' folder says about them (its ``degradation.yaml``): its operator is used
        when the spec names none (no task, kernel nor factor), and its noise model, level and gain fill those the
        spec leaves open.
    :param measured: the spec describes measurements the user has, whose noise nobody recorded: a noise level (and
        a Poisson-Gaussian gain) left open is ``"auto"``, estimated from them, instead of the simulations' default
        :data:`DEFAULT_NOISE_LEVEL`.
    :raises ConfigError: for unknown names, a missing kernel or factor, a bad noise level, or a kernel file that
        cannot be read.
    """
    spec = PhysicsSpec.from_dict(spec) if isinstance(spec, dict) else spec
    if spec.resolved and recorded is None:
        return spec
    if spec.operator:
        raise ConfigError(
            f"this operator ({spec.operator}) was given from Python and is not recorded in the configuration; "
            "the run can only be reproduced from Python: sei.training.train(config, physics=operator)")
    values = spec.values()
    if recorded is not None:
        if spec.task is None and spec.kernel is None and spec.sr_factor is None:
            values.update(task=recorded.task, kernel=recorded.kernel, sr_factor=recorded.sr_factor)
            if spec.padding is None:
                values["padding"] = recorded.padding
        if spec.noise is None:
            values["noise"] = recorded.noise
        if spec.noise_level is None:
            values.update(noise_level=recorded.noise_level, noise_source=recorded.noise_source)
        if spec.gain is None and values["noise"] == recorded.noise:
            values["gain"] = recorded.gain
    task = canonical_task(values["task"] if values["task"] is not None else "deblurring")
    noise = str(values["noise"] or "gaussian").strip().lower().replace("_", "-")
    if noise not in NOISE_MODELS:
        raise UnknownNameError("noise model", values["noise"], NOISE_MODELS)
    open_level = ESTIMATED if measured else DEFAULT_NOISE_LEVEL
    level = _noise_level_word(values["noise_level"] if values["noise_level"] is not None else open_level)
    if measured and values["gain"] is None and noise == "poisson-gaussian":
        values["gain"] = ESTIMATED
    gain = _gain_word(values["gain"], noise)
    if noise == "poisson-gaussian" and level == LEARNED:
        raise ConfigError("--noise-level learn is for Gaussian noise; Poisson-Gaussian noise takes numbers or auto")
    if values["noise_source"] not in NOISE_SOURCES:
        raise UnknownNameError("noise source", values["noise_source"], NOISE_SOURCES)
    padding = str(values["padding"] if values["padding"] is not None else PADDINGS[0]).strip().lower()
    if padding not in PADDINGS:
        raise UnknownNameError("boundary model", values["padding"], PADDINGS)
    kernel, factor = values["kernel"], values["sr_factor"]
    if task == "deblurring":
        if factor not in (None, 1):
            raise ConfigError(f"deblurring takes no super-resolution factor, got {factor}")
        factor = None
        if kernel is None:
            if default_kernel is None:
                raise ConfigError(
                    "deblurring needs the blur kernel: --kernel NAME (Gaussian_R2, Box_R3 ...) or --kernel FILE "
                    "(.npy/.pt/grayscale image; `sei psf` makes one), or a measurement folder with the "
                    f"{DEGRADATION_FILE} that `sei degrade` writes")
            kernel = default_kernel
    else:
        if factor is None:
            raise ConfigError(f"super-resolution needs --sr-factor (e.g. one of {PAPER_SR_FACTORS})")
        factor = _check_factor(factor)
    dims = 2
    if kernel is not None:
        from sei.physics.kernels import kernel_dimensionality

        kernel = canonical_kernel(kernel)
        dims = kernel_dimensionality(kernel)
    given = values["spatial_dims"]
    if given is not None and given != dims:
        raise ConfigError(f"the physics spec says spatial_dims {given!r}, but its kernel is {dims}-D: a 2-D kernel "
                          "blurs images, a 3-D PSF (kd, kh, kw) blurs volumes")
    kind = operator_kind(task, kernel, factor, dims)  # every operator the words can name has an entry
    if padding not in kind.boundaries:
        raise ConfigError(f"the {kind.name} operator ({kind.description}) has no {padding!r} boundary model; it "
                          f"takes {', '.join(kind.boundaries)}")
    values.update(task=task, kernel=kernel, sr_factor=factor, noise=noise, noise_level=level, gain=gain,
                  padding=padding, spatial_dims=dims)
    return PhysicsSpec(**values, resolved=True)


def read_degradation_spec(folder: str | Path) -> PhysicsSpec | None:
    """The spec recorded in ``folder/degradation.yaml`` by ``sei degrade`` (kernel files resolved against the
    folder), or ``None`` when there is no such file."""
    path = Path(folder) / DEGRADATION_FILE
    if not path.is_file():
        return None
    data = read_yaml_mapping(path, DEGRADATION_FILE)
    spec = PhysicsSpec.from_dict({k: v for k, v in data.items() if k in _FIELDS})
    if spec.kernel is not None and is_kernel_file(spec.kernel) and not Path(spec.kernel).is_absolute():
        spec = dataclasses.replace(spec, kernel=str(Path(folder) / spec.kernel))
    return resolve_spec(spec)
