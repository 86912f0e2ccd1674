"""Loss terms: SURE with an interior margin, equivariance with optional stop-gradient, supervised and CSS."""

from sei.losses.equivariance import equivariance_loss
from sei.losses.supervised import css_loss, css_pair, supervised_loss
from sei.losses.sure import SureTerms, interior, interior_probe, sure_gaussian, sure_poisson_gaussian

__all__ = ["SureTerms", "css_loss", "css_pair", "equivariance_loss", "interior", "interior_probe",
           "supervised_loss", "sure_gaussian", "sure_poisson_gaussian"]
