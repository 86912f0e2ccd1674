"""Measurement operators ``y = A x + e``: the physics spec, FFT blur, bicubic and PSF down-sampling, noise."""

from sei.physics.base import SEILinearPhysics, physics_margin, physics_upscale
from sei.physics.blur import FFTBlur, transfer_function
from sei.physics.blur_downsampling import BlurDownsampling
from sei.physics.downsampling import BicubicDownsampling, bicubic_downsample, downsampling_matrix
from sei.physics.factory import make_physics
from sei.physics.kernels import PAPER_KERNELS, box_kernel, gaussian_kernel, kernel_from_file, kernel_from_name, load_kernel
from sei.physics.noise import (
    GaussianNoise, PoissonGaussianNoise, add_noise, equivalent_sigma, gaussian_noise_like, gaussian_sigma, measure,
    noise_parameters,
)
from sei.physics.spec import TASKS, PhysicsSpec, canonical_task, resolve_spec

__all__ = [
    "PAPER_KERNELS", "TASKS", "BicubicDownsampling", "BlurDownsampling", "FFTBlur", "GaussianNoise", "PhysicsSpec",
    "PoissonGaussianNoise", "SEILinearPhysics", "add_noise", "bicubic_downsample", "box_kernel", "canonical_task",
    "downsampling_matrix", "equivalent_sigma", "gaussian_kernel", "gaussian_noise_like", "gaussian_sigma",
    "kernel_from_file", "kernel_from_name", "load_kernel", "make_physics", "measure", "noise_parameters",
    "physics_margin", "physics_upscale", "resolve_spec", "transfer_function",
]
