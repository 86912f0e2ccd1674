"""Scale-Equivariant Imaging: self-supervised deblurring and super-resolution from measurements alone.

``import sei`` stays light: submodules (which import deepinv) load on first use, e.g. ``sei.make_physics``.
"""

from __future__ import annotations

from sei.core.lazy import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "PhysicsSpec": "sei.physics",
    "make_physics": "sei.physics",
    "BlurDownsampling": "sei.physics",
    "FFTBlur": "sei.physics",
    "BicubicDownsampling": "sei.physics",
    "GaussianNoise": "sei.physics",
    "load_kernel": "sei.physics",
    "build_method": "sei.losses",
    "METHOD_REGISTRY": "sei.losses",
    "SEILoss": "sei.losses",
    "build_backbone": "sei.models",
    "load_backbone": "sei.models",
    "save_weights": "sei.models",
    "psnr": "sei.metrics",
    "ssim": "sei.metrics",
}

__all__ = ["__version__", *_LAZY]


__getattr__, __dir__ = lazy_exports("sei", _LAZY, __all__)
