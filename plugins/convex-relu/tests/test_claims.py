"""The claim check passes, its ADMM objective is near CLARABEL's, and deliberately wrong ADMMs fail it."""

from __future__ import annotations

import pytest
import torch
from convex_relu_testkit import relu_admm_variant
from gradhub_convex_relu import admm
from gradhub_convex_relu.arrangements import augment, sample_arrangements
from gradhub_convex_relu.claims import BETA, N_ARRANGEMENTS, N_SAMPLES, NOISE, RHO, global_optimum_vs_sgd
from gradhub_convex_relu.data import half_moons
from gradhub_convex_relu.reference import relu_program


@pytest.fixture(scope="module")
def claim():
    with torch.no_grad():
        return global_optimum_vs_sgd()  # single-threaded inside


def test_claim_passes(claim):
    assert claim.passed, claim.report()
    assert claim.measured["convex_over_best_adam"] <= 1.01
    assert claim.measured["admm_residual_drop"] >= 50
    assert claim.measured["accuracy_after_20_iterations"] >= 0.95 * claim.measured["final_accuracy"]
    assert len(claim.figures) == 2


def test_claim_admm_is_near_the_cvxpy_optimum(claim):
    """Optimality of the claim's ADMM objective against CLARABEL on the same 171 arrangements (measured 1.2%)."""
    X, y = half_moons(N_SAMPLES, noise=NOISE, seed=0)
    patterns = sample_arrangements(X, N_ARRANGEMENTS, 0, include_bias=True).patterns
    _, value = relu_program(augment(X, True), y, patterns, beta=BETA)
    assert abs(claim.measured["convex_program_objective"] - value) <= 0.03 * value
    assert claim.measured["convex_network_objective"] <= 1.03 * value


def test_claim_fails_with_the_dual_sign_flipped(monkeypatch):
    monkeypatch.setattr(admm, "dual_step", lambda dual, violation, gamma: dual - gamma * violation)
    result = global_optimum_vs_sgd()
    assert not result.passed
    assert result.measured["admm_residual_drop"] < 50


def test_claim_fails_without_the_cone_constraints():
    def without_cones(X, y, *, max_iter):
        return relu_admm_variant(
            X, y, cones=False, max_iter=max_iter, tol=1e-5, n_arrangements=N_ARRANGEMENTS, beta=BETA, rho=RHO
        )

    result = global_optimum_vs_sgd(solve=without_cones)
    assert not result.passed
    assert result.measured["convex_over_best_adam"] > 1.01
