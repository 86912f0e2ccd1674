"""Test-time self-ensemble: average a reconstructor's estimates over flips and 90-degree rotations.

For a transform ``T`` of the dihedral group (4 rotations x optional flip) and ``y = A x + e``,
``T y = (T A T^-1)(T x) + T e``: the transformed measurement is a measurement of the transformed image through
the *conjugated* operator ``A_T = T A T^-1`` (white noise stays white). Hence

- a plain network trained for ``A`` may only be fed ``T y`` when ``A_T = A`` (symmetric kernels: every
  Gaussian and box kernel, bicubic down-sampling); for a kernel without those symmetries (a motion PSF) only
  the transforms that leave it unchanged are used, and an ensemble that would hold the identity alone is
  refused;
- a physics-aware network (``unrolled-*``, which runs the operator inside) is given ``A_T`` for ``T y``:
  :class:`ConjugatedOperator` wraps any operator exactly (its ``prox_l2`` is the original one, conjugated), so
  every one of the 8 transforms is valid for any operator.

The group and the check of which transforms an operator commutes with live in :mod:`sei.physics.symmetry`
(training draws its crops through the same ones). The estimate is ``mean_T T^-1 f_T(T y)``, 8 network evaluations
(or fewer) per image. A volume's group also reverses the order of its planes (transforms 8-15: transforms 0-7 after a
flip along z), which a PSF without spherical aberration leaves unchanged: 16 evaluations (or fewer) per volume.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from sei.core.errors import ConfigError
from sei.physics.base import SEILinearPhysics, physics_margin, physics_upscale
from sei.physics.symmetry import (DIHEDRAL, commutes, dihedral, dihedral_inverse, operator_symmetries,
                                  transform_count)

__all__ = ["ConjugatedOperator", "ensemble_by_default", "physics_aware_networks", "SelfEnsemble"]


def ensemble_by_default(physics) -> bool:
    """Whether ``sei restore`` ensembles a network's estimates when not told: for images and volumes whose operator
    some flip or rotation leaves unchanged (every Gaussian and box kernel, bicubic down-sampling, a diffraction PSF, a
    widefield or confocal PSF in 3-D).

    Measured on 14 held-out photographs (benchmarks/photos_heldout.py), the ensemble gained 0.14 to 0.34 dB in every
    case (Gaussian_R2 30.40 -> 30.54 and 30.68 -> 30.85; Box_R3 31.19 -> 31.42; x2 SR 32.90 -> 33.19) for 4 to 8
    times the restore (25 s against 4 s for the 14; training took 10 minutes). On volumes, with networks trained on
    crops drawn through the same symmetries (:func:`sei.config.recipe.default_augment`), it gained 0.11 dB on the
    volumes benchmark's phantom (17.83 -> 17.94) and 0.23 dB on the nuclei stack (32.95 -> 33.18), whose 16 passes
    took 48 s and 2.2 GB against one pass's 6 s and 2.1 GB (benchmarks/volumes.py, two CPU cores). A network trained
    on one orientation alone may lose by it (the phantom's lost 0.19 dB): ``--no-ensemble``.

    >>> from sei.physics import make_physics
    >>> ensemble_by_default(make_physics("deblurring", kernel="Gaussian_R2"))
    True
    >>> ensemble_by_default(make_physics("deblurring", kernel=torch.tensor([[0.5, 0.3, 0.0], [0.0, 0.2, 0.0]])))
    False
    """
    return physics is not None and any(commutes(physics, index) for index in range(1, transform_count(physics)))


class ConjugatedOperator(SEILinearPhysics):
    """``A_T = T A T^-1`` for a dihedral transform ``T``: ``A_T x = T A (T^-1 x)``, and likewise for the
    adjoint and the proximal operator (exact: ``T`` is orthogonal), so a closed-form ``prox_l2`` stays one.

    :param physics: the operator ``A``; its noise model is shared (white noise is invariant under ``T``).
    :param index: the transform (0-7, see :data:`DIHEDRAL`; 8-15 for volumes, see :func:`dihedral`).
    """

    def __init__(self, physics, index: int) -> None:
        super().__init__(noise_model=getattr(physics, "noise_model", None))
        object.__setattr__(self, "base", physics)  # not a submodule: the base operator stays where it is
        self.index = int(index)
        self.upscale = physics_upscale(physics)

    @property
    def margin(self) -> tuple[int, ...]:
        *depth, mh, mw = physics_margin(self.base)  # a volume's axial margin stays: a z flip keeps it
        return (*depth, mw, mh) if self._swaps_axes else (*depth, mh, mw)

    @property
    def _swaps_axes(self) -> bool:
        """Whether the transform turns by an odd number of quarter turns (rows and columns swap sizes)."""
        return DIHEDRAL[self.index % len(DIHEDRAL)][0] % 2 == 1

    def _conjugate(self, function: Callable[..., torch.Tensor], *tensors: torch.Tensor, **kwargs) -> torch.Tensor:
        inputs = [dihedral_inverse(t, self.index) for t in tensors]
        return dihedral(function(*inputs, **kwargs), self.index)

    def A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        return self._conjugate(self.base.A, x, **kwargs)

    def A_adjoint(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        if "img_size" in kwargs and kwargs["img_size"] is not None and self._swaps_axes:
            *depth, height, width = kwargs["img_size"]
            kwargs["img_size"] = (*depth, width, height)
        return self._conjugate(self.base.A_adjoint, y, **kwargs)

    def prox_l2(self, z: torch.Tensor, y: torch.Tensor, gamma, **kwargs) -> torch.Tensor:
        inner_z, inner_y = dihedral_inverse(z, self.index), dihedral_inverse(y, self.index)
        return dihedral(self.base.prox_l2(inner_z, inner_y, gamma, **kwargs), self.index)


def physics_aware_networks(reconstructor: nn.Module) -> list[nn.Module]:
    """The modules inside ``reconstructor`` that run an operator themselves (they have ``set_physics``)."""
    if not isinstance(reconstructor, nn.Module):
        return [reconstructor] if hasattr(reconstructor, "set_physics") else []
    return [module for module in reconstructor.modules() if hasattr(module, "set_physics")]


class SelfEnsemble(nn.Module):
    """``y -> mean_T T^-1 f_T(T y)`` over the valid dihedral transforms (see the module docstring).

    :param reconstructor: measurement -> estimate, any size (a network, a :class:`NetworkReconstructor`).
    :param physics: the operator the measurements come from.
    :param transforms: the transforms to use (indices into :data:`DIHEDRAL`); default: all that are valid.
    :raises ConfigError: if no transform other than the identity is valid, or a requested one is not.
    """

    def __init__(self, reconstructor: Callable[[torch.Tensor], torch.Tensor], physics,
                 transforms: Sequence[int] | None = None) -> None:
        super().__init__()
        self.reconstructor = reconstructor
        object.__setattr__(self, "_physics", physics)
        self.aware = physics_aware_networks(reconstructor)
        if self.aware:
            valid = list(range(transform_count(physics)))  # the operator is conjugated along with the measurement
        else:
            valid = list(operator_symmetries(physics))
        if transforms is None:
            transforms = valid
        invalid = [index for index in transforms if index not in valid]
        if invalid:
            raise ConfigError(f"self-ensemble transforms {invalid} do not commute with the operator, and the network "
                              "does not run the operator itself")
        if list(transforms) in ([], [0]):
            raise ConfigError(
                "a self-ensemble needs flips or rotations that leave the operator unchanged; this operator (e.g. a "
                "motion kernel) has none, so a network trained for it cannot be ensembled; a physics-aware backbone "
                "(unrolled-*) can, because it is given the transformed operator")
        self.transforms = list(transforms)
        self.upscale = physics_upscale(physics)

    @torch.no_grad()
    def forward(self, y: torch.Tensor) -> torch.Tensor:
        originals = [network.physics for network in self.aware]
        total = None
        try:
            for index in self.transforms:
                for network in self.aware:
                    network.set_physics(ConjugatedOperator(self._physics, index) if index else self._physics)
                estimate = dihedral_inverse(self.reconstructor(dihedral(y, index)), index).float()
                total = estimate if total is None else total + estimate
        finally:
            for network, physics in zip(self.aware, originals):
                network.set_physics(physics)
        return (total / len(self.transforms)).to(y.dtype)
