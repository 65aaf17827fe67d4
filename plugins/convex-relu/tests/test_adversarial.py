"""convex_relu_adv against cvxpy, and the robust identity: the recovered net's worst-case hinge loss is the loss."""

from __future__ import annotations

import pytest
import torch
from convex_relu_testkit import D, classification
from gradhub_convex_relu.adversarial import convex_relu_adv, robust_cone_violation, robust_objective, robust_slopes
from gradhub_convex_relu.problem import prepare

from gradhub.claims import single_thread

EPS, BETA = 0.05, 0.3


@pytest.fixture(scope="module")
def robust():
    X, y = classification(12, seed=2)
    with single_thread():  # fixtures run outside the one-thread wrapper of conftest.py
        exact = convex_relu_adv(X, y, eps=EPS, n_arrangements=6, beta=BETA, solver="cvxpy")
    problem = prepare("t", X, y, loss="hinge", include_bias=True, n_arrangements=6, seed=0, exact=False)
    return X, y, exact, problem


def test_admm_reaches_the_cvxpy_optimum(robust):
    X, y, exact, problem = robust
    assert exact.converged and exact.iterations == 1
    result = convex_relu_adv(X, y, eps=EPS, n_arrangements=6, beta=BETA, rho=0.3, gamma=1.6, tol=0.0, max_iter=800)
    value = exact.objectives[-1].item()
    assert abs(result.objectives[-1].item() - value) <= 1e-4 * value
    assert robust_cone_violation(problem, result.solution, EPS) <= 1e-3


def _worst_case(X, y, slopes):
    """delta_k = -eps y_k sign(slope_k): the l-inf perturbation that maximises each sample's hinge loss."""
    return X - EPS * y.unsqueeze(-1) * torch.sign(slopes)


def test_recovered_network_worst_case_loss_equals_the_robust_loss(robust):
    X, y, exact, problem = robust
    network = exact.network()
    weights = exact.solution
    attacked = _worst_case(X, y, robust_slopes(problem, weights))
    with torch.no_grad():
        worst = torch.relu(1 - y * network(attacked).squeeze(-1)).sum()
        # every neuron keeps its training pattern under the attack (the robust cone constraints)
        norms = weights.reshape(-1, weights.shape[-1]).norm(dim=-1)
        large = norms[norms > 0] > 1e-6  # CLARABEL leaves blocks of norm ~1e-9 for the zero ones
        hidden = network[0](attacked)[:, large]
        patterns = torch.cat([problem.patterns, problem.patterns], dim=1)[:, norms > 0][:, large]
        assert large.sum() >= 2
        assert torch.equal(hidden > 0, patterns.bool())
    decay = 0.5 * BETA * sum(p.square().sum() for p in network.parameters())
    torch.testing.assert_close(worst + decay, robust_objective(problem, weights, EPS, BETA), rtol=1e-6, atol=1e-8)
    # and no other l-inf perturbation of a vertex does worse (the worst case is the sign vertex)
    signs = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]], dtype=D)
    with torch.no_grad():
        corners = torch.stack([torch.relu(1 - y * network(X + EPS * s).squeeze(-1)) for s in signs])
    assert bool((corners.amax(0) <= torch.relu(1 - y * network(attacked).squeeze(-1)) + 1e-9).all())


def test_wrong_variant_with_plain_cone_constraints_is_not_robust(robust):
    """Non-robust cones ((2 D_i - I) X v_i >= 0): patterns flip under the attack, the identity breaks."""
    import cvxpy as cp

    X, y, _, problem = robust
    Xn, yn, Dn = (t.numpy() for t in (problem.X, y, problem.patterns))
    d, P = Xn.shape[1], Dn.shape[1]
    V, W = cp.Variable((d, P)), cp.Variable((d, P))
    prediction = cp.sum(cp.multiply(Dn, Xn @ (V - W)), axis=1)
    slopes = Dn @ (V - W)[:2, :].T
    loss = cp.sum(cp.pos(1 - cp.multiply(yn, prediction) + EPS * cp.sum(cp.abs(slopes), axis=1)))
    penalty = cp.sum(cp.norm(V, 2, axis=0)) + cp.sum(cp.norm(W, 2, axis=0))
    E = 2 * Dn - 1
    cp.Problem(cp.Minimize(loss + BETA * penalty), [cp.multiply(E, Xn @ V) >= 0, cp.multiply(E, Xn @ W) >= 0]).solve(
        solver="CLARABEL"
    )
    weights = torch.stack([torch.as_tensor(V.value.T.copy()), torch.as_tensor(W.value.T.copy())])
    assert robust_cone_violation(problem, weights, EPS) > 1e-3
    from gradhub_convex_relu.network import recover_network

    network = recover_network(weights, include_bias=True)
    attacked = _worst_case(X, y, robust_slopes(problem, weights))
    with torch.no_grad():
        worst = torch.relu(1 - y * network(attacked).squeeze(-1)).sum()
    decay = 0.5 * BETA * sum(p.square().sum() for p in network.parameters())
    claimed = robust_objective(problem, weights, EPS, BETA)
    assert abs((worst + decay - claimed).item()) > 1e-3 * claimed.item()
