"""convex_relu_admm against cvxpy (CLARABEL), the recovery identity, the linear solve, the proxes; wrong variants."""

from __future__ import annotations

import pytest
import torch
from convex_relu_testkit import D, classification, regression, relu_admm_variant
from gradhub_convex_relu import admm
from gradhub_convex_relu.admm import convex_relu_admm
from gradhub_convex_relu.arrangements import augment
from gradhub_convex_relu.network import network_objective, recover_network
from gradhub_convex_relu.problem import ADMMSystem, group_soft_threshold, loss_prox, prepare, relu_prediction
from gradhub_convex_relu.reference import relu_program

from gradhub.claims import single_thread


def _relative(value: float, reference: float) -> float:
    return abs(value - reference) / abs(reference)


@pytest.fixture(scope="module")
def squared():
    """ADMM (squared loss, n = 20, d = 3, 7 arrangements) and CLARABEL's optimum of the same program."""
    X, y = regression()
    with single_thread():  # fixtures run outside the one-thread wrapper of conftest.py
        result = convex_relu_admm(X, y, n_arrangements=8, beta=0.1, rho=0.1, tol=1e-7, max_iter=2000)
        weights, value = relu_program(augment(X, True), y, result.patterns, beta=0.1)
    return X, y, result, weights, value


def test_admm_reaches_the_cvxpy_optimum(squared):
    _, _, result, _, value = squared
    assert result.converged and result.residuals[-1] <= 1e-7
    assert result.patterns.shape == (20, 7)
    assert _relative(result.objectives[-1].item(), value) <= 1e-5


def test_recovered_network_objective_equals_the_convex_objective(squared):
    X, y, result, _, value = squared
    network = result.network()
    assert network[0].weight.shape[1] == 2 and network[2].bias is None
    nonconvex = network_objective(network, X, y, beta=0.1).item()
    assert _relative(nonconvex, result.objectives[-1].item()) <= 1e-6
    assert _relative(nonconvex, value) <= 1e-5
    assert torch.allclose(result.predict(X), network(X).squeeze(-1))


def test_recovery_identity_is_exact_on_feasible_weights():
    """For feasible (v, w) -- v_i = a_i h_i with a_i >= 0 respects D_i = 1[X h_i >= 0] -- the network is exact."""
    X, y = regression()
    problem = prepare("t", X, y, loss="squared", include_bias=True, n_arrangements=8, seed=0, exact=False)
    generator = torch.Generator().manual_seed(3)
    scales = torch.rand(2, problem.patterns.shape[1], 1, generator=generator, dtype=D)
    scales[:, ::3] = 0  # some blocks zero: no neuron for them
    weights = scales * problem.gates.T.unsqueeze(0)
    network = recover_network(weights, include_bias=True)
    assert network[0].weight.shape[0] == int((weights.norm(dim=-1) > 0).sum())
    torch.testing.assert_close(network(X).squeeze(-1), relu_prediction(problem, weights), rtol=1e-13, atol=1e-13)
    decay = 0.5 * sum(p.square().sum() for p in network.parameters())
    torch.testing.assert_close(decay, weights.norm(dim=-1).sum(), rtol=1e-13, atol=0)


def test_zero_weights_give_the_empty_network():
    network = recover_network(torch.zeros(2, 3, 4, dtype=D), include_bias=True)
    assert network[0].weight.shape == (0, 3)
    assert torch.equal(network(torch.ones(5, 3, dtype=D)), torch.zeros(5, 1, dtype=D))


@pytest.mark.parametrize(("n", "cones", "kappa"), [(20, True, 10.0), (20, False, 1.0), (60, True, 3.0)])
def test_u_update_matches_a_dense_solve(n, cones, kappa):
    """(I + G^T G + kappa F^T F) u = b through the factored system equals torch.linalg.solve (Woodbury and direct)."""
    X, y = regression(n, seed=2)
    problem = prepare("t", X, y, loss="squared", include_bias=True, n_arrangements=5, seed=0, exact=False)
    _, d = problem.X.shape
    P = problem.patterns.shape[1]
    Fv = (problem.patterns.unsqueeze(-1) * problem.X.unsqueeze(1)).reshape(n, P * d)
    F = torch.cat([Fv, -Fv], dim=1)
    Gv = torch.block_diag(*(problem.signs.T.unsqueeze(-1) * problem.X.unsqueeze(0)))
    G = torch.block_diag(Gv, Gv)
    matrix = torch.eye(2 * P * d, dtype=D) + kappa * F.T @ F + (G.T @ G if cones else 0)
    rhs = torch.randn(2, P, d, generator=torch.Generator().manual_seed(4), dtype=D)
    system = ADMMSystem(problem, signs=2, cones=cones, kappa=kappa)
    assert system.ridge.woodbury == (n <= P * d)
    torch.testing.assert_close(system(rhs).reshape(-1), torch.linalg.solve(matrix, rhs.reshape(-1)))


def test_group_soft_threshold_is_the_prox_of_the_group_norm():
    generator = torch.Generator().manual_seed(5)
    blocks = torch.randn(50, 3, generator=generator, dtype=D) * torch.rand(50, 1, generator=generator, dtype=D) * 2
    t = 0.7
    out = group_soft_threshold(blocks, t)
    norms = blocks.norm(dim=-1, keepdim=True)
    closed = torch.where(norms > t, (1 - t / norms) * blocks, torch.zeros_like(blocks))
    torch.testing.assert_close(out, closed, rtol=1e-14, atol=1e-15)
    # subgradient optimality of argmin t||x|| + ||x - a||^2 / 2: a - x in t d||x||
    residual = blocks - out
    active = out.norm(dim=-1) > 0
    assert active.any() and (~active).any()
    torch.testing.assert_close(residual[active], t * out[active] / out[active].norm(dim=-1, keepdim=True))
    assert bool((residual[~active].norm(dim=-1) <= t + 1e-12).all())


@pytest.mark.parametrize("loss", ["squared", "logistic", "hinge"])
def test_loss_prox_is_optimal(loss):
    """prox_{step l}(a): 0 in step dl(z) + z - a, checked against a brute-force minimisation on a fine grid."""
    generator = torch.Generator().manual_seed(6)
    a = 3 * torch.randn(40, generator=generator, dtype=D)
    y = torch.where(torch.rand(40, generator=generator, dtype=D) > 0.5, 1.0, -1.0).to(D)
    step = 0.8
    z = loss_prox(loss, a, y, step)
    grid = torch.linspace(-12, 12, 48001, dtype=D).unsqueeze(1)
    if loss == "squared":
        values = 0.5 * (grid - y).square()
    elif loss == "logistic":
        values = torch.nn.functional.softplus(-y * grid)
    else:
        values = torch.relu(1 - y * grid)
    objective = values + (grid - a).square() / (2 * step)
    brute = grid[objective.argmin(dim=0), 0]
    assert (z - brute).abs().max() <= 1e-3
    mine = {
        "squared": 0.5 * (z - y).square(),
        "logistic": torch.nn.functional.softplus(-y * z),
        "hinge": torch.relu(1 - y * z),
    }
    assert bool((mine[loss] + (z - a).square() / (2 * step) <= objective.min(dim=0).values + 1e-12).all())


@pytest.mark.parametrize(
    ("loss", "rho", "iterations", "accuracy"), [("hinge", 0.3, 600, 1e-3), ("logistic", 0.1, 400, 1e-3)]
)
def test_other_losses_reach_the_cvxpy_optimum(loss, rho, iterations, accuracy):
    """The split-off loss (our reading for non-squared losses) converges to CLARABEL's optimum (slower: README)."""
    X, y = classification()
    result = convex_relu_admm(X, y, n_arrangements=8, beta=0.3, rho=rho, loss=loss, tol=0.0, max_iter=iterations)
    _, value = relu_program(augment(X, True), y, result.patterns, beta=0.3, loss=loss)
    assert _relative(result.objectives[-1].item(), value) <= accuracy
    network = result.network()
    assert _relative(network_objective(network, X, y, beta=0.3, loss=loss).item(), value) <= 10 * accuracy


def test_wrong_variant_without_cone_constraints_fails(squared):
    """Dropping (2 D_i - I) X u_i >= 0: the program's value drops below the optimum and its net no longer matches."""
    X, y, _, _, value = squared
    wrong = relu_admm_variant(X, y, cones=False, max_iter=2000, tol=1e-7)
    assert wrong.objectives[-1].item() < value * (1 - 1e-2)
    nonconvex = network_objective(wrong.network(), X, y, beta=0.1).item()
    assert _relative(nonconvex, wrong.objectives[-1].item()) > 1e-2


def test_wrong_variant_with_the_dual_sign_flipped_fails(squared, monkeypatch):
    X, y, _, _, value = squared
    monkeypatch.setattr(admm, "dual_step", lambda dual, violation, gamma: dual - gamma * violation)
    wrong = convex_relu_admm(X, y, n_arrangements=8, beta=0.1, rho=0.1, tol=1e-7, max_iter=2000)
    assert not wrong.converged
    final = wrong.objectives[-1].item()
    assert not (abs(final - value) <= 1e-3 * value)


def test_sampling_is_a_restriction_of_the_exact_program():
    """More arrangements can only lower the optimum; exact enumeration gives the lowest (the global optimum)."""
    X, y = regression(12, seed=7)
    values = {}
    for name, options in {"sampled": {"n_arrangements": 3}, "exact": {"exact": True}}.items():
        result = convex_relu_admm(X, y, beta=0.3, rho=0.3, tol=0.0, max_iter=600, **options)
        values[name] = relu_program(augment(X, True), y, result.patterns, beta=0.3)[1]
        assert _relative(result.objectives[-1].item(), values[name]) <= 1e-2
    assert values["exact"] <= values["sampled"] * (1 - 1e-2)
