"""Losses and training methods: the SEI loss (:mod:`sei.losses.sei`), its terms (SURE with an interior margin,
equivariance with stop-gradient), supervised and CSS, and the method registry (:mod:`sei.losses.registry`).

The names below load their module on first use, so that the method registry can be read (``sei train --help``,
``sei info``) without importing torch or deepinv.
"""

from __future__ import annotations

from sei.core.lazy import lazy_exports

# public name -> module that defines it
_LAZY = {
    **dict.fromkeys(("LossOutput", "Method"), "sei.losses.base"),
    "equivariance_loss": "sei.losses.equivariance",
    **dict.fromkeys(("METHOD_REGISTRY", "MethodEntry", "build_method", "canonical_method", "method_entry"),
                    "sei.losses.registry"),
    "SEILoss": "sei.losses.sei",
    **dict.fromkeys(("CSS", "Supervised", "css_loss", "css_pair", "supervised_loss"), "sei.losses.supervised"),
    **dict.fromkeys(("SureTerms", "interior", "interior_probe", "sure_gaussian", "sure_poisson_gaussian"),
                    "sei.losses.sure"),
}

__all__ = ["CSS", "METHOD_REGISTRY", "LossOutput", "Method", "MethodEntry", "SEILoss", "SureTerms", "Supervised",
           "build_method", "canonical_method", "css_loss", "css_pair", "equivariance_loss", "interior",
           "interior_probe", "method_entry", "supervised_loss", "sure_gaussian", "sure_poisson_gaussian"]


__getattr__, __dir__ = lazy_exports("sei.losses", _LAZY, __all__)
