"""``convex_relu_adv``: convex adversarial training of a two-layer ReLU network (§4), l-infinity, hinge loss.

Paper: "Efficient Global Optimization of Two-layer ReLU Networks: Quadratic-time Algorithms and
Adversarial Training", Yatong Bai, Tanmay Gautam, Somayeh Sojoudi, SIMODS 2023, arXiv:2201.01965
(§4, robust convex optimisation applied to the convex program; the earlier version is
arXiv:2105.12237). No official code was published.

With the patterns fixed, the network on a perturbed input x_k + delta is sum_i d_ik (x_k + delta)^T
(v_i - w_i), linear in delta, provided no neuron changes its pattern. The robust counterpart over
||delta||_inf <= eps (only the features are perturbed, not the bias column) is

    min  sum_k (1 - y_k sum_i d_ik x_k^T (v_i - w_i) + eps ||sum_i d_ik (v_i - w_i)_f||_1)_+
         + beta sum_i (||v_i||_2 + ||w_i||_2)
    s.t. (2 d_ik - 1) x_k^T v_i >= eps ||(v_i)_f||_1,  the same for w_i       (robust cone constraints)

(_f: the feature coordinates). The worst case of the hinge term is attained at
delta = -eps y_k sign(sum_i d_ik (v_i - w_i)_f), and the robust constraints keep every pattern for
every such delta, so on the training points the recovered network's worst-case hinge loss equals
the loss term of this program exactly.

``solver="admm"``: the program in the form of §3 with l1-epigraph variables, t_i >= |(v_i)_f| and
r_k >= |sum_i d_ik (v_i - w_i)_f| (elementwise), so that every constraint is linear: x = (u, t, r),
z = u carries the group lasso, s = G x >= 0 all linear inequalities, q = L x + 1 the hinge argument
(prox of (.)_+ in closed form), scaled duals, dual step gamma. The x-update matrix
``diag(1_u, 0, 0) + G^T G + L^T L`` is built densely from the batched operators once and factorised
once (Cholesky): this path is for small problems (the dense G has (2nP + 4Pf + 2nf) rows).
``solver="cvxpy"``: the same program in cvxpy with CLARABEL (:func:`gradhub_convex_relu.reference.robust_program`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from gradhub.errors import UnsupportedInputError
from gradhub.kinds.solver import Iterate, solver
from gradhub_convex_relu import CONVEX_RELU_ADV
from gradhub_convex_relu.admm import ConvexReLUResult, dual_step
from gradhub_convex_relu.problem import (
    LARGE_SYSTEM,
    History,
    Problem,
    forward,
    forward_adjoint,
    group_norms,
    group_soft_threshold,
    positive_part_prox,
    prepare,
)


@dataclass
class RobustReLUResult(ConvexReLUResult):
    """:class:`~gradhub_convex_relu.admm.ConvexReLUResult` of the robust program (``objectives``: its objective)."""

    eps: float = 0.0


def robust_slopes(problem: Problem, weights: Tensor) -> Tensor:
    """``sum_i d_ik (v_i - w_i)_f`` for every sample: (n, f), the gradient of each prediction in the features."""
    f = problem.features
    return problem.patterns @ (weights[0, :, :f] - weights[1, :, :f])


def robust_objective(problem: Problem, weights: Tensor, eps: float, beta: float) -> Tensor:
    """``sum_k (1 - y_k yhat_k + eps ||slope_k||_1)_+ + beta sum ||u_i||`` at weights (2, P, d)."""
    prediction = forward(problem, weights[0] - weights[1])
    worst = torch.relu(1 - problem.y * prediction + eps * robust_slopes(problem, weights).abs().sum(-1))
    return worst.sum() + beta * group_norms(weights)


def robust_cone_violation(problem: Problem, weights: Tensor, eps: float) -> Tensor:
    """``||min(0, (2 d_ik - 1) x_k^T u_i - eps ||(u_i)_f||_1)||_2`` over both signs: 0 when feasible."""
    margins = problem.signs * (problem.X @ weights.mT)  # (2, n, P)
    needed = eps * weights[..., : problem.features].abs().sum(-1).unsqueeze(-2)  # (2, 1, P)
    return torch.linalg.vector_norm(torch.relu(needed - margins))


def zero_violation(problem: Problem, beta: float) -> Tensor:
    """The residual before the first iteration: max_i (||X^T D_i y|| - beta)_+, the first-order violation of
    u = 0 for the hinge (whose subgradient at yhat = 0 is -y) without the eps terms."""
    return (torch.linalg.vector_norm(forward_adjoint(problem, problem.y), dim=-1).amax() - beta).clamp_min(0)


class RobustOperators:
    """The linear maps of the split program on batches of stacked x = (u, t, r), as dense matrices."""

    def __init__(self, problem: Problem, eps: float) -> None:
        self.problem, self.eps = problem, eps
        n, d = problem.X.shape
        P, f = problem.patterns.shape[1], problem.features
        self.shapes = {"u": (2, P, d), "t": (2, P, f), "r": (n, f)}
        self.sizes = [2 * P * d, 2 * P * f, n * f]
        size = sum(self.sizes)
        if size > LARGE_SYSTEM // 4:
            warnings.warn(
                f"{CONVEX_RELU_ADV.name}: the robust ADMM builds dense {size}-column matrices; use fewer arrangements, "
                "fewer samples or solver='cvxpy'",
                stacklevel=3,
            )
        basis = torch.eye(size, dtype=problem.X.dtype, device=problem.X.device)
        self.G = self.constraints(basis).T  # (rows, size)
        self.L = self.hinge(basis).T  # (n, size)

    def unpack(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        u, t, r = x.split(self.sizes, dim=-1)
        lead = x.shape[:-1]
        return (
            u.reshape(*lead, *self.shapes["u"]),
            t.reshape(*lead, *self.shapes["t"]),
            r.reshape(*lead, *self.shapes["r"]),
        )

    def constraints(self, x: Tensor) -> Tensor:
        """Every linear inequality (>= 0) at x (..., size): robust cones, t >= |u_f|, r >= |slopes|."""
        problem, f = self.problem, self.problem.features
        u, t, r = self.unpack(x)
        cones = problem.signs * (problem.X @ u.mT) - self.eps * t.sum(-1).unsqueeze(-2)
        slopes = problem.patterns @ (u[..., 0, :, :f] - u[..., 1, :, :f])
        lead = x.shape[:-1]
        parts = [cones, t - u[..., :f], t + u[..., :f], r - slopes, r + slopes]
        return torch.cat([part.reshape(*lead, -1) for part in parts], dim=-1)

    def hinge(self, x: Tensor) -> Tensor:
        """The hinge argument less its constant 1: ``-y o F u + eps sum_j r_kj``."""
        u, _, r = self.unpack(x)
        return -self.problem.y * forward(self.problem, u[..., 0, :, :] - u[..., 1, :, :]) + self.eps * r.sum(-1)


def robust_admm_iterations(problem: Problem, *, eps: float, beta: float, rho: float, gamma: float) -> Iterator[Iterate]:
    """The ADMM of the robust program; yields (z, residual, objectives) as ``admm.admm_iterations`` does."""
    X, y = problem.X, problem.y
    operators = RobustOperators(problem, eps)
    G, L = operators.G, operators.L
    u_size = operators.sizes[0]
    shape = operators.shapes["u"]
    matrix = G.T @ G + L.T @ L
    matrix.diagonal()[:u_size] += 1
    factor, info = torch.linalg.cholesky_ex(matrix)
    if bool(info != 0):
        raise UnsupportedInputError(
            CONVEX_RELU_ADV.name, "data", "the robust ADMM system could not be factorised", "scale X to moderate values"
        )

    def select(weights: Tensor) -> Tensor:  # S^T: weights (2, P, d) into the stacked x
        return torch.cat([weights.reshape(-1), weights.new_zeros(G.shape[1] - u_size)])

    z = X.new_zeros(shape)
    lam = torch.zeros_like(z)
    slack = X.new_zeros(G.shape[0])
    nu = torch.zeros_like(slack)
    argument = X.new_zeros(y.shape[0])
    mu = torch.zeros_like(argument)
    objectives = History(robust_objective(problem, z, eps, beta))
    yield Iterate(z, zero_violation(problem, beta), {"objectives": objectives.values()})
    while True:
        rhs = select(z - lam) + G.T @ (slack - nu) + L.T @ (argument - 1 - mu)
        x = torch.cholesky_solve(rhs.unsqueeze(-1), factor).squeeze(-1)
        u = x[:u_size].reshape(shape)
        previous = z
        z = group_soft_threshold(u + lam, beta / rho)
        lam = dual_step(lam, u - z, gamma)
        image = G @ x
        previous_slack, slack = slack, torch.relu(image + nu)
        nu = dual_step(nu, image - slack, gamma)
        hinge = L @ x + 1
        previous_argument, argument = argument, positive_part_prox(hinge + mu, 1.0 / rho)
        mu = dual_step(mu, hinge - argument, gamma)
        primal = torch.stack(
            [
                torch.linalg.vector_norm(u - z),
                torch.linalg.vector_norm(image - slack),
                torch.linalg.vector_norm(hinge - argument),
            ]
        ).amax()
        change = select(z - previous) + G.T @ (slack - previous_slack) + L.T @ (argument - previous_argument)
        residual = torch.maximum(primal, rho * torch.linalg.vector_norm(change))
        yield Iterate(z, residual, {"objectives": objectives.append(robust_objective(problem, z, eps, beta))})


def cvxpy_iterations(problem: Problem, *, eps: float, beta: float) -> Iterator[Iterate]:
    """The robust program solved by cvxpy (CLARABEL): one 'iteration'; residual = robust cone violation."""
    from gradhub_convex_relu.reference import robust_program

    X = problem.X
    zero = X.new_zeros(2, problem.patterns.shape[1], X.shape[1])
    start = robust_objective(problem, zero, eps, beta).reshape(1)
    yield Iterate(zero, zero_violation(problem, beta), {"objectives": start})
    weights, _ = robust_program(X, problem.y, problem.patterns, eps=eps, beta=beta, features=problem.features)
    weights = weights.to(device=X.device, dtype=X.dtype)
    history = torch.stack([robust_objective(problem, zero, eps, beta), robust_objective(problem, weights, eps, beta)])
    yield Iterate(weights, robust_cone_violation(problem, weights, eps), {"objectives": history})


@solver(CONVEX_RELU_ADV, result=RobustReLUResult)
def convex_relu_adv(
    X: Tensor,
    y: Tensor,
    gates: Tensor | None = None,
    *,
    eps: float,
    norm: str,
    loss: str,
    n_arrangements: int,
    beta: float,
    solver: str,
    rho: float,
    gamma: float,
    max_iter: int,
    tol: float,
    include_bias: bool,
    seed: int,
    exact: bool,
) -> Iterator[Iterate]:
    """Adversarially robust convex training (§4): l-infinity radius ``eps`` on the features, hinge loss, labels +-1.

    ``X`` (n, d0), ``y`` (n,) in {-1, +1}, ``gates`` (d, k) optional gates used first. Returns a
    :class:`RobustReLUResult`: ``solution`` the weights (2, P, d), ``network()`` the robust ReLU network.
    """
    problem = prepare(
        CONVEX_RELU_ADV.name,
        X,
        y,
        loss=loss,
        include_bias=include_bias,
        n_arrangements=n_arrangements,
        seed=seed,
        exact=exact,
        gates=gates,
    )
    extras = {
        "patterns": problem.patterns,
        "gates": problem.gates,
        "include_bias": include_bias,
        "loss": loss,
        "eps": eps,
    }
    if solver == "cvxpy":
        states = cvxpy_iterations(problem, eps=eps, beta=beta)
    else:
        states = robust_admm_iterations(problem, eps=eps, beta=beta, rho=rho, gamma=gamma)
    for state in states:
        yield Iterate(state.solution, state.residual, {**state.extras, **extras})


__all__ = [
    "RobustReLUResult",
    convex_relu_adv.__name__,
    "robust_cone_violation",
    "robust_objective",
    "robust_slopes",
]
