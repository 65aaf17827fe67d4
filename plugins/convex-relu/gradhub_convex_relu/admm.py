"""``convex_relu_admm``: the convex program of a two-layer ReLU network, solved by the ADMM of §3.

Paper: "Efficient Global Optimization of Two-layer ReLU Networks: Quadratic-time Algorithms and
Adversarial Training", Yatong Bai, Tanmay Gautam, Somayeh Sojoudi, SIMODS 2023, arXiv:2201.01965
(the convex program is Pilanci & Ergen, ICML 2020). No official code was published; the first
author's unofficial cvxpy script (github.com/Bai-YT/Convex-NN-Training) states the same program.

The program (§2, with sampled patterns D_i a restriction of the exact one):

    min_{v, w}  l(sum_i D_i X (v_i - w_i), y) + beta sum_i (||v_i||_2 + ||w_i||_2)
    s.t.        (2 D_i - I) X v_i >= 0,  (2 D_i - I) X w_i >= 0.

ADMM splitting (§3): u = [v; w], z a copy of u carrying the group-lasso term, s = G u >= 0 the slack
of the cone constraints, scaled duals lambda (u = z) and nu (G u = s). One iteration:

    u <- (I + G^T G + F^T F / rho)^-1 (F^T y / rho + z - lambda + G^T (s - nu))     (squared loss)
    z <- group soft-threshold of u + lambda at beta / rho                            (prox of beta ||.||)
    s <- max(0, G u + nu)
    lambda <- lambda + gamma (u - z),  nu <- nu + gamma (G u - s)

The matrix is constant: :class:`gradhub_convex_relu.problem.ADMMSystem` factorises it once (one
d x d Cholesky factor and one of size min(n, P d)), so an iteration is a few products with X and
triangular solves, batched over all arrangements. Stopping: max(||u - z||, ||G u - s||,
rho ||(z - z_prev) + G^T (s - s_prev)||) <= tol (primal and dual residuals, Boyd et al. §3.3).

Readings chosen (README): for the logistic and hinge losses the loss is split off as one more ADMM
block, yhat = F u with dual mu (the u-update keeps the same constant matrix with F^T F in place of
F^T F / rho, and yhat <- prox_{l / rho}(F u + mu) is closed form for the hinge and a safeguarded
Newton solve per sample for the logistic loss); the paper's alternative is an inexact u-update by
a few Newton steps. The returned weights are z (exactly group-sparse), and the residual before the
first iteration is the first-order optimality violation of u = 0, max_i (||(F^T grad l(0))_i|| - beta)_+.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from gradhub.kinds.solver import Iterate, SolverResult, solver
from gradhub_convex_relu import CONVEX_RELU_ADMM
from gradhub_convex_relu.problem import (
    ADMMSystem,
    History,
    Problem,
    cone,
    cone_adjoint,
    forward,
    forward_adjoint,
    group_norms,
    group_soft_threshold,
    loss_gradient,
    loss_prox,
    loss_value,
    prepare,
)


@dataclass
class ConvexReLUResult(SolverResult):
    """``SolverResult`` whose ``solution`` is the weights (2, P, d) = [v_1..v_P; w_1..w_P], and the net's recovery."""

    objectives: Tensor
    """The convex objective l(F z) + beta sum ||z_i|| after each iteration (``iterations + 1`` entries)."""
    patterns: Tensor
    """(n, P): the arrangements D_i used (column i is the diagonal of D_i)."""
    gates: Tensor
    """(d, P): gate vectors h_i with D_i = diag(1[X h_i >= 0]) (X with its bias column)."""
    include_bias: bool
    loss: str

    def network(self) -> nn.Sequential:
        """The equivalent ReLU network ``Sequential(Linear(d0, m), ReLU(), Linear(m, 1, bias=False))`` (§2)."""
        from gradhub_convex_relu.network import recover_network

        return recover_network(self.solution, include_bias=self.include_bias)

    def predict(self, X: Tensor) -> Tensor:
        """The recovered network's output on X (n, d0) as (n,)."""
        with torch.no_grad():
            return self.network()(X).squeeze(-1)


def dual_step(dual: Tensor, violation: Tensor, gamma: float) -> Tensor:
    """Scaled dual ascent: ``dual + gamma (constraint violation)`` (§3, step 4)."""
    return dual + gamma * violation


def admm_iterations(
    problem: Problem,
    *,
    signs: int,
    cones: bool,
    loss: str,
    beta: float,
    rho: float,
    gamma: float,
) -> Iterator[Iterate]:
    """The ADMM of §3 over weights (signs, P, d): the ReLU program (signs=2, cones) or the gated one (1, none).

    Yields ``Iterate(z, residual, extras)`` with ``extras["objectives"]`` the objective history so far.
    """
    X, y = problem.X, problem.y
    n, d = X.shape
    P = problem.patterns.shape[1]
    split = loss != "squared"
    kappa = 1.0 if split else 1.0 / rho
    system = ADMMSystem(problem, signs=signs, cones=cones, kappa=kappa)
    sign_vector = X.new_tensor([1.0, -1.0][:signs]).reshape(signs, 1, 1)

    def predict(weights: Tensor) -> Tensor:
        return forward(problem, weights[0] - weights[1]) if signs == 2 else forward(problem, weights[0])

    def adjoint(residual: Tensor) -> Tensor:
        return sign_vector * forward_adjoint(problem, residual)

    def objective(weights: Tensor) -> Tensor:
        return loss_value(loss, predict(weights), y) + beta * group_norms(weights)

    u = X.new_zeros(signs, P, d)
    z, lam = torch.zeros_like(u), torch.zeros_like(u)
    slack = X.new_zeros(signs, n, P) if cones else None
    nu = torch.zeros_like(slack) if cones else None
    fit = X.new_zeros(n) if split else None
    mu = torch.zeros_like(fit) if split else None
    objectives = History(objective(z))
    data_term = None if split else kappa * adjoint(y)  # F^T y / rho: constant for the squared loss
    start = torch.linalg.vector_norm(adjoint(loss_gradient_at_zero(loss, y)), dim=-1).amax()
    yield Iterate(z, (start - beta).clamp_min(0), {"objectives": objectives.values()})
    while True:
        rhs = z - lam
        if cones:
            rhs = rhs + cone_adjoint(problem, slack - nu)
        rhs = rhs + (kappa * adjoint(fit - mu) if split else data_term)
        u = system(rhs)
        previous = z
        z = group_soft_threshold(u + lam, beta / rho)
        lam = dual_step(lam, u - z, gamma)
        change = z - previous
        primal = [torch.linalg.vector_norm(u - z)]
        if cones:
            image = cone(problem, u)
            previous_slack = slack
            slack = torch.relu(image + nu)
            nu = dual_step(nu, image - slack, gamma)
            primal.append(torch.linalg.vector_norm(image - slack))
            change = change + cone_adjoint(problem, slack - previous_slack)
        if split:
            prediction = predict(u)
            previous_fit = fit
            fit = loss_prox(loss, prediction + mu, y, 1.0 / rho, start=previous_fit)
            mu = dual_step(mu, prediction - fit, gamma)
            primal.append(torch.linalg.vector_norm(prediction - fit))
            change = change + adjoint(fit - previous_fit)
        residual = torch.maximum(torch.stack(primal).amax(), rho * torch.linalg.vector_norm(change))
        yield Iterate(z, residual, {"objectives": objectives.append(objective(z))})


def loss_gradient_at_zero(loss: str, y: Tensor) -> Tensor:
    """grad l(yhat = 0): -y (squared), -y / 2 (logistic), -y (hinge: a subgradient, (1 - 0)_+ is active)."""
    if loss == "hinge":
        return -y
    return loss_gradient(loss, torch.zeros_like(y), y)


@solver(CONVEX_RELU_ADMM, result=ConvexReLUResult)
def convex_relu_admm(
    X: Tensor,
    y: Tensor,
    gates: Tensor | None = None,
    *,
    n_arrangements: int,
    beta: float,
    rho: float,
    gamma: float,
    loss: str,
    max_iter: int,
    tol: float,
    include_bias: bool,
    seed: int,
    exact: bool,
) -> Iterator[Iterate]:
    """Train a two-layer ReLU network globally: the convex program over arrangements D_i by ADMM (§3).

    ``X`` (n, d0) float32/float64, ``y`` (n,) targets (labels +-1 for the logistic and hinge losses);
    ``gates`` (d, k), optional gate vectors (d = d0 + 1 with the bias) whose patterns are used first.
    Returns a :class:`ConvexReLUResult`: ``solution`` the weights (2, P, d), ``network()`` the
    equivalent ReLU network, ``objectives`` the convex objective per iteration.
    """
    problem = prepare(
        CONVEX_RELU_ADMM.name,
        X,
        y,
        loss=loss,
        include_bias=include_bias,
        n_arrangements=n_arrangements,
        seed=seed,
        exact=exact,
        gates=gates,
    )
    extras: dict[str, Any] = {
        "patterns": problem.patterns,
        "gates": problem.gates,
        "include_bias": include_bias,
        "loss": loss,
    }
    for state in admm_iterations(problem, signs=2, cones=True, loss=loss, beta=beta, rho=rho, gamma=gamma):
        yield Iterate(state.solution, state.residual, {**state.extras, **extras})


__all__ = ["ConvexReLUResult", "admm_iterations", convex_relu_admm.__name__, "dual_step"]
