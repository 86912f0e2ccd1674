"""The operator registry: one entry per kind of measurement operator, saying everything the rest of ``sei`` asks of it.

A physics spec (:class:`sei.physics.spec.PhysicsSpec`) names its operator by words: a task and the operator fields it
gives (``kernel``, ``sr_factor``). The entry whose task and fields match builds the operator; the entry also says
which baselines apply to it (``sei test``/``sei restore --model-kind``) and which test-time transforms the
self-ensemble may try (:mod:`sei.inference.ensemble` keeps those the operator commutes with). Every entry's operator
passes the contract tests of ``tests/test_operator_contracts.py`` (linearity, adjointness, pseudo-inverse, proximal
operator, margin, gradients in float64, odd and non-square sizes).

======================  ===========  =======================  ==========================================================
kind                    task         fields                   operator
======================  ===========  =======================  ==========================================================
``blur``                deblurring   kernel                   :class:`~sei.physics.blur.FFTBlur`
``bicubic``             sr           sr_factor                :class:`~sei.physics.downsampling.BicubicDownsampling`
``blur-decimate``       sr           kernel, sr_factor        :class:`~sei.physics.blur_downsampling.BlurDownsampling`
``blur-3d``             deblurring   kernel (3-D)             :class:`~sei.physics.blur.FFTBlur` of volumes
``blur-decimate-3d``    sr           kernel (3-D), sr_factor  :class:`~sei.physics.blur_downsampling.BlurDownsampling`
                                                              of volumes: every r-th plane kept (axial)
======================  ===========  =======================  ==========================================================

An entry also says what its operator measures (``spatial_dims``): images, or volumes (z-stacks) for a 3-D PSF.

Adding an operator is one entry here, its class, and its name in the contract tests' list of example specs.

>>> operator_kind("sr", kernel=None, sr_factor=2).name
'bicubic'
>>> "bm3d" in OPERATORS["blur-decimate"].baselines
False
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sei.core.defaults import BOUNDARIES
from sei.core.errors import ConfigError

if TYPE_CHECKING:
    from sei.physics.base import SEILinearPhysics

__all__ = ["ALL_BASELINES", "DIHEDRAL_TRANSFORMS", "OPERATOR_FIELDS", "OPERATORS", "operator_kind", "OperatorKind",
           "VOLUME_TRANSFORMS"]

# The spec fields that say which operator a spec describes (the others describe its noise).
OPERATOR_FIELDS = ("kernel", "sr_factor")
# Every baseline model kind (sei.inference.baselines), for entries that take them all.
ALL_BASELINES = ("identity", "bicubic", "wiener", "tv", "richardson-lucy", "dip", "pnp", "bm3d")
# The flips and quarter turns of the square (sei.physics.symmetry.DIHEDRAL), by index; for volumes, the same after
# reversing the planes' order too.
DIHEDRAL_TRANSFORMS = tuple(range(8))
VOLUME_TRANSFORMS = tuple(range(16))


@dataclass(frozen=True)
class OperatorKind:
    """One kind of measurement operator.

    :ivar name: the kind's name, as :meth:`sei.physics.spec.PhysicsSpec.kind` reports it.
    :ivar task: ``"deblurring"`` or ``"sr"``.
    :ivar fields: the operator fields of a spec (:data:`OPERATOR_FIELDS`) that this kind takes, all required.
    :ivar description: one line for people.
    :ivar build: ``build(spec, noise_model) -> operator`` for a resolved spec.
    :ivar baselines: the baseline model kinds that apply to it.
    :ivar transforms: the dihedral transforms (indices of :data:`sei.physics.symmetry.DIHEDRAL`) the self-ensemble
        may try; those the built operator does not commute with are dropped for networks that do not run it.
    :ivar periodic: the operator wraps around the image's borders (circular convolution), so its ``margin`` is where
        the measurement of a crop differs from the crop of the whole image's measurement: SURE leaves it out. A
        non-periodic operator defines its borders itself (bicubic down-sampling renormalises its weights there; the
        paper's margin is then 0).
    :ivar boundaries: the boundary models (a physics spec's ``padding``) the operator takes, the first its default.
    :ivar spatial_dims: 2 when the operator measures ``(B, C, H, W)`` images, 3 for ``(B, C, D, H, W)`` volumes.
    """

    name: str
    task: str
    fields: frozenset[str]
    description: str
    build: Callable[[Any, Any], SEILinearPhysics]
    baselines: tuple[str, ...] = ALL_BASELINES
    transforms: tuple[int, ...] = DIHEDRAL_TRANSFORMS
    periodic: bool = True
    boundaries: tuple[str, ...] = ("circular",)
    spatial_dims: int = 2


def _blur(spec, noise) -> SEILinearPhysics:
    from sei.physics.blur import FFTBlur

    return FFTBlur(spec.kernel, noise_model=noise, boundary=spec.padding)


def _bicubic(spec, noise) -> SEILinearPhysics:
    from sei.physics.downsampling import BicubicDownsampling

    return BicubicDownsampling(spec.sr_factor, noise_model=noise)


def _blur_decimate(spec, noise) -> SEILinearPhysics:
    from sei.physics.blur_downsampling import BlurDownsampling

    return BlurDownsampling(spec.kernel, spec.sr_factor, noise_model=noise, boundary=spec.padding)


OPERATORS: dict[str, OperatorKind] = {
    kind.name: kind for kind in (
        OperatorKind("blur", "deblurring", frozenset({"kernel"}),
                     "convolution by a kernel (named, from a file, or a PSF), computed with the FFT, with a "
                     "circular, reflecting or replicating boundary",
                     _blur, baselines=tuple(b for b in ALL_BASELINES if b != "bicubic"), boundaries=BOUNDARIES),
        OperatorKind("bicubic", "sr", frozenset({"sr_factor"}),
                     "antialiased bicubic down-sampling by an integer factor (the paper's super-resolution)",
                     _bicubic, baselines=tuple(b for b in ALL_BASELINES if b not in ("bm3d", "richardson-lucy")),
                     periodic=False),
        OperatorKind("blur-decimate", "sr", frozenset({"kernel", "sr_factor"}),
                     "blur by a PSF with a circular, reflecting or replicating boundary, then every r-th pixel kept "
                     "(super-resolution as optics make it)",
                     _blur_decimate, baselines=tuple(b for b in ALL_BASELINES if b != "bm3d"), boundaries=BOUNDARIES),
        OperatorKind("blur-3d", "deblurring", frozenset({"kernel"}),
                     "convolution of a volume (z-stack) by a 3-D PSF, computed with the FFT, with a circular, "
                     "reflecting or replicating boundary",
                     _blur, baselines=("identity", "wiener", "tv", "richardson-lucy"), boundaries=BOUNDARIES,
                     transforms=VOLUME_TRANSFORMS, spatial_dims=3),
        OperatorKind("blur-decimate-3d", "sr", frozenset({"kernel", "sr_factor"}),
                     "axial super-resolution of a volume: blur by a 3-D PSF sampled at the fine z-step, then every "
                     "r-th plane kept (a z-step r times the PSF's)",
                     _blur_decimate, baselines=("identity", "bicubic", "wiener", "tv", "richardson-lucy"),
                     boundaries=BOUNDARIES, transforms=VOLUME_TRANSFORMS, spatial_dims=3),
    )
}


def operator_kind(task: str, kernel: Any = None, sr_factor: Any = None, spatial_dims: int = 2) -> OperatorKind:
    """The entry for a task, the operator fields a spec gives (``None``: not given) and what is measured (2: images,
    3: volumes).

    :raises ConfigError: when no entry takes that task with those fields.
    """
    given = frozenset(name for name, value in (("kernel", kernel), ("sr_factor", sr_factor)) if value is not None)
    for kind in OPERATORS.values():
        if kind.task == task and kind.fields == given and kind.spatial_dims == spatial_dims:
            return kind

    def what(task: str, fields: frozenset[str], dims: int) -> str:
        return f"{task} of {'volumes' if dims == 3 else 'images'} with {' and '.join(sorted(fields)) or 'nothing'}"

    takes = "; ".join(f"{what(k.task, k.fields, k.spatial_dims)} ({k.name})" for k in OPERATORS.values())
    raise ConfigError(f"no operator takes {what(task, given, spatial_dims)}; operators: {takes}")
