"""Losses and training methods: the SEI loss (:mod:`sei.losses.sei`), its terms (SURE with an interior margin,
equivariance with stop-gradient), supervised and CSS, and the method registry (:mod:`sei.losses.registry`)."""

from sei.losses.base import LossOutput, Method
from sei.losses.equivariance import equivariance_loss
from sei.losses.registry import METHOD_REGISTRY, MethodEntry, build_method, canonical_method, method_entry
from sei.losses.sei import SEILoss
from sei.losses.supervised import CSS, Supervised, css_loss, css_pair, supervised_loss
from sei.losses.sure import SureTerms, interior, interior_probe, sure_gaussian, sure_poisson_gaussian

__all__ = ["CSS", "METHOD_REGISTRY", "LossOutput", "Method", "MethodEntry", "SEILoss", "SureTerms", "Supervised",
           "build_method", "canonical_method", "css_loss", "css_pair", "equivariance_loss", "interior",
           "interior_probe", "method_entry", "supervised_loss", "sure_gaussian", "sure_poisson_gaussian"]
