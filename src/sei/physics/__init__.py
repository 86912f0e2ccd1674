"""Measurement operators ``y = A x + e``: the physics spec, FFT blur, bicubic and PSF down-sampling, noise.

The names below load their module on first use, so that reading the registries and specs (``sei info``, every
command's ``--help``) does not import deepinv.
"""

from __future__ import annotations

from sei.core.lazy import lazy_exports

# public name -> module that defines it
_LAZY = {
    **dict.fromkeys(("SEILinearPhysics", "physics_margin", "physics_spatial_dims", "physics_upscale"),
                    "sei.physics.base"),
    **dict.fromkeys(("FFTBlur", "transfer_function"), "sei.physics.blur"),
    **dict.fromkeys(("BlurDownsampling",), "sei.physics.blur_downsampling"),
    **dict.fromkeys(("BicubicDownsampling", "bicubic_downsample", "downsampling_matrix"), "sei.physics.downsampling"),
    **dict.fromkeys(("make_physics",), "sei.physics.factory"),
    **dict.fromkeys((
        "PAPER_KERNELS", "box_kernel", "gaussian_kernel", "kernel_from_file", "kernel_from_name", "load_kernel",
    ), "sei.physics.kernels"),
    **dict.fromkeys((
        "GaussianNoise", "PoissonGaussianNoise", "add_noise", "equivalent_sigma", "gaussian_noise_like",
        "gaussian_sigma", "measure", "noise_parameters",
    ), "sei.physics.noise"),
    **dict.fromkeys(("TASKS", "PhysicsSpec", "canonical_task", "resolve_spec"), "sei.physics.spec"),
}

__all__ = list(_LAZY)


__getattr__, __dir__ = lazy_exports("sei.physics", _LAZY, __all__)
