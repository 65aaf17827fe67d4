"""The claim check passes, and its criterion fails for deliberately wrong variants of LV-HBA."""

from __future__ import annotations

from gradhub_lvhba import claims
from gradhub_lvhba.lvhba import LVHBA
from gradhub_lvhba.projections import product


def test_toy_convergence():
    result = claims.toy_convergence()
    assert result.passed, result.report()
    assert len(result.figures) == 3
    for seed in claims.SEEDS:
        assert result.measured[f"seed {seed}: ||x - x*|| / ||x*||"] < claims.X_BOUND / 2
        assert result.measured[f"seed {seed}: ||y - y*|| / ||y*||"] < claims.Y_BOUND / 2


def test_toy_convergence_fails_without_the_projection_onto_C():
    """Wrong variant: (x, y) not projected onto C = {y <= x} (only z and lambda are): it diverges."""
    result = claims._check_toy(proj_C=product())
    assert not result.passed
    assert result.measured["max over iterates and seeds of max_i (y_i - x_i)"] > 1.0


class FlippedValueGradient(LVHBA):
    """Wrong variant: grad v enters with the wrong sign (d = grad(F / c + f) + grad v)."""

    def value_function_gradient(self, theta, lam):
        grad_x, grad_y, grad_z, value = super().value_function_gradient(theta, lam)
        return -grad_x, -grad_y, -grad_z, value


def test_toy_convergence_fails_with_the_value_function_gradient_flipped():
    result = claims._check_toy(stepper=FlippedValueGradient)
    assert not result.passed
    assert all(result.measured[f"seed {seed}: ||x - x*|| / ||x*||"] > 0.3 for seed in claims.SEEDS)
