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
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sei.errors import ConfigError, UnknownNameError

TASKS = ("deblurring", "sr")
_TASK_ALIASES = {
    "deblurring": "deblurring", "deblur": "deblurring", "blur": "deblurring",
    "sr": "sr", "super-resolution": "sr", "superresolution": "sr",
}
NOISE_MODELS = ("gaussian", "poisson-gaussian")
# A noise level (or gain) the measurements themselves give: estimated before the operator is built.
ESTIMATED = "auto"
# A Gaussian noise level learned with the network (sei.methods.SureEquivariant), from the measurements' estimate.
LEARNED = "learn"
NOISE_SOURCES = ("given", "estimated", "learned")
PADDINGS = ("circular",)
PAPER_SR_FACTORS = (2, 3, 4)
# The paper's default kernel, used only where measurements are simulated from clean images.
DEFAULT_KERNEL = "Gaussian_R2"
DEFAULT_NOISE_LEVEL = 5.0


def canonical_task(task: str) -> str:
    """``'deblur'`` -> ``'deblurring'``, ``'super-resolution'`` -> ``'sr'``; raises for anything else."""
    key = str(task).strip().lower()
    if key not in _TASK_ALIASES:
        raise UnknownNameError("task", task, TASKS)
    return _TASK_ALIASES[key]


def is_kernel_file(kernel: Any) -> bool:
    """Whether ``kernel`` names a file (a path with a kernel-file suffix) rather than a named kernel."""
    from sei.physics.kernels import KERNEL_FILE_SUFFIXES

    return isinstance(kernel, Path) or (isinstance(kernel, str) and Path(kernel).suffix.lower() in KERNEL_FILE_SUFFIXES)


def canonical_kernel(kernel: Any) -> str | torch.Tensor:
    """A named kernel's canonical spelling, a file path as a string (checked to exist), or a tensor unchanged."""
    from sei.physics.kernels import canonical_kernel_name, kernel_from_file

    if isinstance(kernel, torch.Tensor):
        return kernel
    if is_kernel_file(kernel):
        kernel_from_file(kernel)  # a missing or malformed file fails here, with its name, not mid-run
        return str(kernel)
    return canonical_kernel_name(str(kernel))


@dataclass
class PhysicsSpec:
    """The measurement model ``y = A x + e`` in words.

    Fields left at ``None`` are filled by :func:`resolve_spec` (deblurring, noise level 5).

    :ivar task: ``"deblurring"`` or ``"sr"``.
    :ivar kernel: blur kernel: a name (``Gaussian_R2``, ``Box_R3``), a kernel file, or a ``(kh, kw)`` tensor (in
        memory only, e.g. read from a weights file). For ``sr``: ``None`` is the paper's bicubic down-sampling,
        a kernel means blur by it then keep every ``sr_factor``-th pixel.
    :ivar sr_factor: super-resolution factor (``sr`` only).
    :ivar noise: noise model, ``"gaussian"`` (``y = A x + N(0, sigma^2)``) or ``"poisson-gaussian"``
        (``y = gain * Poisson(A x / gain) + N(0, sigma^2)``).
    :ivar noise_level: Gaussian noise standard deviation in 8-bit grey levels (sigma = noise_level / 255), or
        ``"auto"``: estimated from the measurements (:func:`sei.physics.noise_estimation.estimate_spec_noise`)
        before :meth:`build`, or ``"learn"``: estimated, then learned with the network from the SURE residual
        (Gaussian only; :class:`sei.methods.SureEquivariant`).
    :ivar gain: Poisson gain (intensity of one photon, in [0, 1] image units) for ``poisson-gaussian``, or
        ``"auto"``; ``None`` for Gaussian noise.
    :ivar noise_source: ``"given"``, ``"estimated"`` (from the measurements) or ``"learned"`` (the level is the
        starting point of one learned in training; a trained network's weights record the learned value).
    :ivar padding: boundary model of the blur, ``"circular"``.
    :ivar operator: set when the operator was handed over from Python and cannot be rebuilt from these words
        (its class name); :meth:`build` then refuses.
    """

    task: str | None = None
    kernel: Any = None
    sr_factor: int | None = None
    noise: str = "gaussian"
    noise_level: float | str | None = None
    gain: float | str | None = None
    noise_source: str = "given"
    padding: str = "circular"
    operator: str | None = None

    # -- derived ------------------------------------------------------------------------------------------
    @property
    def sigma(self) -> float:
        """Noise standard deviation in [0, 1] units.

        :raises ConfigError: while the level is still to be estimated (``"auto"``)."""
        if self.needs_estimate:
            raise ConfigError(f"the noise level is still {self.noise_level!r}: estimate it from the measurements first "
                              "(sei.physics.noise_estimation.estimate_spec_noise)")
        return float(self.noise_level) / 255.0

    @property
    def needs_estimate(self) -> bool:
        """Whether the noise level or gain is ``"auto"``, still to be estimated from measurements."""
        return self.noise_level in (ESTIMATED, LEARNED) or self.gain == ESTIMATED

    @property
    def upscale(self) -> int:
        return int(self.sr_factor) if self.task == "sr" else 1

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

    def copy_kernel(self, folder: str | Path) -> Path | None:
        """Write a file or tensor kernel into ``folder`` (as :meth:`kernel_copy_name`), so that the folder does not
        depend on the original file; ``None`` for named kernels and bicubic SR, which need no copy.

        :return: the copy's path.
        """
        from sei.physics.kernels import load_kernel, write_kernel

        if self.kernel is None or (isinstance(self.kernel, str) and not self.kernel_is_file):
            return None
        copy = Path(folder) / self.kernel_copy_name()
        if not self.kernel_is_file or copy.resolve() != Path(str(self.kernel)).resolve():
            write_kernel(load_kernel(self.kernel), copy)
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
            what = f"{self.kernel_label()} deblurring"
        else:
            how = "bicubic" if self.kernel is None else f"{self.kernel_label()} blur then decimation"
            what = f"x{self.sr_factor} super-resolution ({how})"
        level = self.noise_level if isinstance(self.noise_level, str) else f"{self.noise_level:g}/255"
        noise = f"{self.noise} noise {level}"
        if self.noise == "poisson-gaussian":
            gain = self.gain if isinstance(self.gain, str) or self.gain is None else f"{self.gain:.4g}"
            noise += f", gain {gain}"
        origin = {"estimated": " (estimated from the measurements)",
                  "learned": " (estimated from the measurements, then learned with the network)"}
        return f"{what}, {noise}" + origin.get(self.noise_source, "")

    # -- conversions --------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The spec as YAML-safe values; a tensor kernel is written as a description (see :meth:`record`)."""
        values = dataclasses.asdict(self)
        if isinstance(self.kernel, torch.Tensor):
            values["kernel"] = f"<{self.kernel.shape[0]}x{self.kernel.shape[1]} kernel>"
        return values

    def record(self) -> dict[str, Any]:
        """What a weights file stores: the spec, with a kernel file's content embedded as a tensor."""
        values = self.to_dict()
        if self.kernel is not None and (self.kernel_is_file or isinstance(self.kernel, torch.Tensor)):
            from sei.physics.kernels import load_kernel

            values["kernel"] = load_kernel(self.kernel).clone()
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PhysicsSpec:
        """A spec from a mapping (YAML section, weights record); unknown keys are an error."""
        if not isinstance(values, dict):
            raise ConfigError(f"a physics spec must be a mapping, got {type(values).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ConfigError(f"unknown physics key(s) {', '.join(unknown)}; valid: {', '.join(sorted(fields))}")
        return cls(**values)

    def same_operator(self, other: PhysicsSpec) -> bool:
        """Whether two resolved specs describe the same measurements (kernel files compared by content)."""
        from sei.physics.kernels import load_kernel

        mine, theirs = dataclasses.asdict(self), dataclasses.asdict(other)
        mine.pop("kernel"), theirs.pop("kernel")
        if mine != theirs:
            return False
        if self.kernel is None or other.kernel is None:
            return self.kernel is None and other.kernel is None
        if isinstance(self.kernel, str) and isinstance(other.kernel, str) and self.kernel == other.kernel:
            return True
        a, b = load_kernel(self.kernel), load_kernel(other.kernel)
        return a.shape == b.shape and bool(torch.allclose(a, b, rtol=0, atol=1e-7))

    # -- the operator -------------------------------------------------------------------------------------
    def build(self):
        """The operator with its noise model (resolving the spec first).

        :return: :class:`~sei.physics.blur.FFTBlur`, :class:`~sei.physics.downsampling.BicubicDownsampling` or
            :class:`~sei.physics.blur_downsampling.BlurDownsampling`, carrying this spec as ``.spec``.
        :raises ConfigError: if the spec does not describe one operator, or records an operator from Python.
        """
        from sei.physics.blur import FFTBlur
        from sei.physics.blur_downsampling import BlurDownsampling
        from sei.physics.downsampling import BicubicDownsampling
        from sei.physics.noise import GaussianNoise, PoissonGaussianNoise

        spec = resolve_spec(self)
        if spec.needs_estimate:
            raise ConfigError("the noise level or gain is 'auto' or 'learn': estimate it from the measurements before "
                              "building the operator (sei.physics.noise_estimation.estimate_spec_noise)")
        noise = (PoissonGaussianNoise(spec.gain, spec.noise_level) if spec.noise == "poisson-gaussian"
                 else GaussianNoise(spec.noise_level))
        if spec.task == "deblurring":
            operator = FFTBlur(spec.kernel, noise_model=noise)
        elif spec.kernel is None:
            operator = BicubicDownsampling(spec.sr_factor, noise_model=noise)
        else:
            operator = BlurDownsampling(spec.kernel, spec.sr_factor, noise_model=noise)
        operator.spec = spec
        return operator


def _check_noise_level(value: Any) -> float | str:
    if isinstance(value, str) and value.strip().lower() in (ESTIMATED, LEARNED):
        return value.strip().lower()
    try:
        level = float(value)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"noise level must be a number, '{ESTIMATED}' or '{LEARNED}', got {value!r}") from error
    if not math.isfinite(level) or level < 0:
        raise ConfigError(f"noise level must be a finite number >= 0 (8-bit grey levels), got {value!r}")
    return level


def _check_gain(value: Any, noise: str) -> float | str | None:
    """A Poisson-Gaussian model's gain (a finite number > 0, or ``"auto"``); ``None`` for Gaussian noise."""
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
        gain = float(value)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"the Poisson gain must be a number > 0 or '{ESTIMATED}', got {value!r}") from error
    if not math.isfinite(gain) or gain <= 0:
        raise ConfigError(f"the Poisson gain must be a finite number > 0 (intensity of one photon), got {value!r}")
    return gain


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
                 recorded: PhysicsSpec | None = None) -> PhysicsSpec:
    """The canonical, checked spec: the one place for the physics defaults.

    :param default_kernel: the kernel a deblurring spec without one gets (``DEFAULT_KERNEL`` where measurements
        are simulated from clean images); ``None`` makes a missing kernel an error (the user's own measurements).
    :param recorded: what the measurements' folder says about them (its ``degradation.yaml``): used when the spec
        names no operator (no task, kernel nor factor), and for a noise level left open.
    :raises ConfigError: for unknown names, a missing kernel or factor, a bad noise level, or a kernel file that
        cannot be read.
    """
    spec = PhysicsSpec.from_dict(spec) if isinstance(spec, dict) else dataclasses.replace(spec)
    if spec.operator:
        raise ConfigError(
            f"this operator ({spec.operator}) was given from Python and is not recorded in the configuration; "
            "the run can only be reproduced from Python: sei.training.train(config, physics=operator)")
    if recorded is not None:
        if spec.task is None and spec.kernel is None and spec.sr_factor is None:
            spec.task, spec.kernel, spec.sr_factor = recorded.task, recorded.kernel, recorded.sr_factor
        if spec.noise_level is None:
            spec.noise, spec.noise_level, spec.gain = recorded.noise, recorded.noise_level, recorded.gain
            spec.noise_source = recorded.noise_source
    spec.task = canonical_task(spec.task if spec.task is not None else "deblurring")
    if spec.noise_level is None:
        spec.noise_level = DEFAULT_NOISE_LEVEL
    noise = str(spec.noise).strip().lower().replace("_", "-")
    if noise not in NOISE_MODELS:
        raise UnknownNameError("noise model", spec.noise, NOISE_MODELS)
    spec.noise = noise
    spec.noise_level = _check_noise_level(spec.noise_level)
    spec.gain = _check_gain(spec.gain, noise)
    if noise == "poisson-gaussian" and spec.noise_level == LEARNED:
        raise ConfigError("--noise-level learn is for Gaussian noise; Poisson-Gaussian noise takes numbers or auto")
    if spec.noise_source not in NOISE_SOURCES:
        raise UnknownNameError("noise source", spec.noise_source, NOISE_SOURCES)
    if spec.padding not in PADDINGS:
        raise UnknownNameError("padding", spec.padding, PADDINGS)
    if spec.task == "deblurring":
        if spec.sr_factor not in (None, 1):
            raise ConfigError(f"deblurring takes no super-resolution factor, got {spec.sr_factor}")
        spec.sr_factor = None
        if spec.kernel is None:
            if default_kernel is None:
                raise ConfigError(
                    "deblurring needs the blur kernel: --kernel NAME (Gaussian_R2, Box_R3 ...) or --kernel FILE "
                    "(.npy/.pt/grayscale image; `sei psf` makes one), or a measurement folder with the "
                    "degradation.yaml that `sei degrade` writes")
            spec.kernel = default_kernel
    else:
        if spec.sr_factor is None:
            raise ConfigError(f"super-resolution needs --sr-factor (e.g. one of {PAPER_SR_FACTORS})")
        spec.sr_factor = _check_factor(spec.sr_factor)
    if spec.kernel is not None:
        spec.kernel = canonical_kernel(spec.kernel)
    return spec


def read_degradation_spec(folder: str | Path) -> PhysicsSpec | None:
    """The spec recorded in ``folder/degradation.yaml`` by ``sei degrade`` (kernel files resolved against the
    folder), or ``None`` when there is no such file."""
    import yaml

    path = Path(folder) / DEGRADATION_FILE
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping, got {type(data).__name__}")
    fields = {f.name for f in dataclasses.fields(PhysicsSpec)}
    spec = PhysicsSpec.from_dict({k: v for k, v in data.items() if k in fields})
    if spec.kernel is not None and is_kernel_file(spec.kernel) and not Path(spec.kernel).is_absolute():
        spec.kernel = str(Path(folder) / spec.kernel)
    return resolve_spec(spec)


DEGRADATION_FILE = "degradation.yaml"
