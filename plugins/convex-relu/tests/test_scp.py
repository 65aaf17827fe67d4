"""convex_relu_scp (gated ReLU) against cvxpy, its zero-solution threshold and its predictor; wrong variants fail."""

from __future__ import annotations

import pytest
import torch
from convex_relu_testkit import classification, regression
from gradhub_convex_relu import problem as problem_module
from gradhub_convex_relu.arrangements import augment
from gradhub_convex_relu.problem import forward, forward_adjoint, prepare
from gradhub_convex_relu.reference import gated_program
from gradhub_convex_relu.scp import convex_relu_scp


def _relative(value: float, reference: float) -> float:
    return abs(value - reference) / abs(reference)


@pytest.mark.parametrize(
    ("loss", "solver", "accuracy"),
    [("squared", "fista", 1e-7), ("logistic", "fista", 1e-7), ("squared", "admm", 1e-6), ("hinge", "admm", 1e-4)],
)
def test_gated_program_reaches_the_cvxpy_optimum(loss, solver, accuracy):
    X, y = regression() if loss == "squared" else classification()
    result = convex_relu_scp(
        X, y, n_arrangements=8, beta=0.3, loss=loss, solver=solver, rho=0.1, tol=1e-8, max_iter=1500
    )
    _, value = gated_program(augment(X, True), y, result.patterns, beta=0.3, loss=loss)
    assert _relative(result.objectives[-1].item(), value) <= accuracy


def test_predictor_uses_the_fixed_gates():
    X, y = regression()
    result = convex_relu_scp(X, y, n_arrangements=8, beta=0.3, tol=1e-8, max_iter=1500)
    problem = prepare("t", X, y, loss="squared", include_bias=True, n_arrangements=8, seed=0, exact=False)
    torch.testing.assert_close(result.predict(X), forward(problem, result.solution))
    shifted = X + 0.3
    patterns = (augment(shifted, True) @ result.gates >= 0).to(X.dtype)
    expected = (patterns * (augment(shifted, True) @ result.solution.T)).sum(-1)
    torch.testing.assert_close(result.predict(shifted), expected)


def test_solution_is_zero_exactly_when_beta_exceeds_the_largest_block_correlation():
    """First-order optimality at u = 0: zero is the solution iff beta >= max_i ||(D_i X)^T y||."""
    X, y = regression()
    problem = prepare("t", X, y, loss="squared", include_bias=True, n_arrangements=8, seed=0, exact=False)
    threshold = forward_adjoint(problem, y).norm(dim=-1).max().item()
    above = convex_relu_scp(X, y, n_arrangements=8, beta=threshold * 1.001, tol=1e-10, max_iter=50)
    assert above.converged and above.iterations <= 1 and torch.count_nonzero(above.solution) == 0
    below = convex_relu_scp(X, y, n_arrangements=8, beta=threshold * 0.99, tol=1e-10, max_iter=2000)
    assert torch.count_nonzero(below.solution.norm(dim=-1)) >= 1


def test_wrong_variant_with_an_elementwise_threshold_fails(monkeypatch):
    """A lasso prox (elementwise soft-threshold) in place of the group prox solves another program."""
    X, y = regression()

    def lasso(blocks, threshold):
        return torch.sign(blocks) * (blocks.abs() - threshold).clamp_min(0)

    from gradhub_convex_relu import scp

    monkeypatch.setattr(scp, "group_soft_threshold", lasso)
    wrong = convex_relu_scp(X, y, n_arrangements=8, beta=0.3, tol=1e-8, max_iter=1500)
    _, value = gated_program(augment(X, True), y, wrong.patterns, beta=0.3)
    assert _relative(wrong.objectives[-1].item(), value) > 1e-3
    assert problem_module.group_soft_threshold is not lasso
