"""Measurement operators ``y = A x + e``: FFT blur, bicubic down-sampling, Gaussian noise, and their factory."""

from sei.physics.base import SEILinearPhysics, physics_margin, physics_upscale
from sei.physics.blur import FFTBlur, transfer_function
from sei.physics.downsampling import BicubicDownsampling, bicubic_downsample, downsampling_matrix
from sei.physics.factory import TASKS, canonical_task, make_physics, noise_sigma
from sei.physics.kernels import PAPER_KERNELS, box_kernel, gaussian_kernel, kernel_from_file, kernel_from_name, load_kernel
from sei.physics.noise import GaussianNoise, gaussian_noise_like

__all__ = [
    "PAPER_KERNELS", "TASKS", "BicubicDownsampling", "FFTBlur", "GaussianNoise", "SEILinearPhysics",
    "bicubic_downsample", "box_kernel", "canonical_task", "downsampling_matrix", "gaussian_kernel",
    "gaussian_noise_like", "kernel_from_file", "kernel_from_name", "load_kernel", "make_physics", "noise_sigma",
    "physics_margin", "physics_upscale", "transfer_function",
]
