"""The claim checks pass, and fail for deliberately wrong variants (the criteria can catch a wrong method)."""

from __future__ import annotations

import torch
from gradhub_gaussian_pfode import claims
from gradhub_gaussian_pfode.gaussian import GaussianPFODE


def exponent_one(gaussian: GaussianPFODE, x_T, sigma_T, sigma):
    """The flow map with (lam + sigma^2)/(lam + sigma_T^2) to the power 1 instead of 1/2 (VE reading)."""
    if gaussian.schedule == "vp":
        sigma_T, sigma = ((1 - sigma_T) / sigma_T) ** 0.5, ((1 - sigma) / sigma) ** 0.5
        return gaussian.with_schedule("ve").solve(x_T, sigma_T, sigma)
    gain = (gaussian.lam + sigma**2) / (gaussian.lam + sigma_T**2)
    return gaussian.mean + ((x_T - gaussian.mean) @ gaussian.U * gain) @ gaussian.U.T


def test_closed_form_matches_ode():
    result = claims.closed_form_matches_ode()
    assert result.passed, result.report()
    wrong = claims.closed_form_matches_ode(flow=exponent_one)
    assert not wrong.passed and wrong.measured["relative error, RK4 4000 steps"] > 0.1


def test_outline_first():
    result = claims.outline_first()
    assert result.passed, result.report()
    assert result.measured["Spearman correlation"] == 1.0

    def wrong_trajectory(gaussian, x_T, sigmas):
        return torch.stack([exponent_one(gaussian, x_T, float(sigmas[0]), float(s)) for s in sigmas])

    wrong = claims.outline_first(trajectory=wrong_trajectory)
    assert not wrong.passed


class _StdAsVariance(GaussianPFODE):
    """A fit that keeps standard deviations where the variances belong (sqrt of every eigenvalue)."""

    @classmethod
    def fit(cls, data, rank=None, shrinkage=0.0, *, schedule="ve"):
        fitted = GaussianPFODE.fit(data, rank, shrinkage, schedule=schedule)
        return GaussianPFODE(fitted.mean, U=fitted.U, lam=fitted.lam.sqrt())


def test_step_skipping():
    result = claims.step_skipping()
    assert result.passed, result.report()
    assert result.measured["evaluations, Heun"] - result.measured["evaluations, hybrid"] == 12
    # wrong variants: standard deviations used as variances; a jump ignoring the covariance (Sigma = 0)
    assert not claims.step_skipping(fit=_StdAsVariance.fit).passed
    mean_only = claims.step_skipping(fit=lambda data: GaussianPFODE(data.mean(0), diag=torch.zeros(data.shape[1])))
    assert not mean_only.passed
