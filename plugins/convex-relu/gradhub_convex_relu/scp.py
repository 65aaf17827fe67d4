"""``convex_relu_scp``: the gated-ReLU sampled convex program (§2.2), by FISTA or by the ADMM of §3.

Paper: "Efficient Global Optimization of Two-layer ReLU Networks: Quadratic-time Algorithms and
Adversarial Training", Yatong Bai, Tanmay Gautam, Somayeh Sojoudi, SIMODS 2023, arXiv:2201.01965.
No official code was published; pilancilab/scnn solves the same gated-ReLU formulation with other
algorithms (R-FISTA, augmented Lagrangian).

Dropping the cone constraints leaves an unconstrained group lasso,

    min_u  l(sum_i D_i X u_i, y) + beta sum_i ||u_i||_2,

whose solution is the gated-ReLU predictor f(x) = sum_i 1[x^T h_i >= 0] x^T u_i with the gates
fixed to the sampled h_i. ``solver="fista"`` (smooth losses): accelerated proximal gradient with
step 1/L, L = ||F_v||_2^2 (squared) or ||F_v||_2^2 / 4 (logistic), the group soft-threshold as the
prox, and the gradient restart of O'Donoghue & Candes (2015) (our addition: momentum is reset when
it points against the step; FISTA's rate is unchanged and the iterates stop oscillating). Residual:
the gradient mapping ||L (y_k - x_k+1)||, zero exactly at a solution. ``solver="admm"``: the ADMM of
:mod:`gradhub_convex_relu.admm` without the cone block (every loss, the hinge included).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from gradhub.errors import UnsupportedInputError
from gradhub.kinds.inputs import require_tensor
from gradhub.kinds.solver import Iterate, SolverResult, solver
from gradhub_convex_relu import CONVEX_RELU_SCP
from gradhub_convex_relu.admm import admm_iterations
from gradhub_convex_relu.arrangements import augment, patterns_of
from gradhub_convex_relu.problem import (
    DTYPES,
    History,
    Problem,
    forward,
    forward_adjoint,
    group_norms,
    group_soft_threshold,
    loss_gradient,
    loss_value,
    prepare,
)


@dataclass
class GatedReLUResult(SolverResult):
    """``SolverResult`` whose ``solution`` is the gated-ReLU weights (P, d), with the gates that define the model."""

    objectives: Tensor
    """l(F_v u) + beta sum ||u_i|| after each iteration (``iterations + 1`` entries)."""
    patterns: Tensor
    """(n, P) training patterns D_i."""
    gates: Tensor
    """(d, P) the fixed gates h_i of the predictor."""
    include_bias: bool
    loss: str

    def predict(self, X: Tensor) -> Tensor:
        """``f(x) = sum_i 1[x^T h_i >= 0] x^T u_i`` on X (n, d0), as (n,)."""
        return gated_prediction(X, self.solution, self.gates, include_bias=self.include_bias)


def gated_prediction(X: Tensor, weights: Tensor, gates: Tensor, *, include_bias: bool) -> Tensor:
    """The gated-ReLU predictor with fixed gates (d, P) and weights (P, d) on X (n, d0)."""
    require_tensor(CONVEX_RELU_SCP.name, "X", X, dtypes=DTYPES, dim=2)
    data = augment(X, include_bias)
    if data.shape[1] != gates.shape[0]:
        columns = gates.shape[0] - int(include_bias)
        raise UnsupportedInputError(
            CONVEX_RELU_SCP.name, "X shape", tuple(X.shape), f"X must have {columns} columns, like the training data"
        )
    return (patterns_of(data, gates) * (data @ weights.mT)).sum(-1)


def lipschitz(problem: Problem, loss: str) -> Tensor:
    """L of the smooth part: ||F_v||_2^2 (squared) or ||F_v||_2^2 / 4 (logistic), from the smaller Gram matrix.

    F_v F_v^T = (X X^T) o (D D^T) (n x n); F_v^T F_v (Pd x Pd) when that is smaller.
    """
    X, D = problem.X, problem.patterns
    n, d = X.shape
    P = D.shape[1]
    if n <= P * d:
        gram = (X @ X.T) * (D @ D.T)
    else:
        columns = (D.unsqueeze(-1) * X.unsqueeze(1)).reshape(n, P * d)
        gram = columns.T @ columns
    largest = torch.linalg.eigvalsh(gram)[-1].clamp_min(torch.finfo(X.dtype).tiny)
    return largest if loss == "squared" else largest / 4


def fista_iterations(problem: Problem, *, loss: str, beta: float) -> Iterator[Iterate]:
    """FISTA with gradient restart on the gated program; yields (x_k, ||L (y_k - x_k+1)||, objectives)."""
    X, y = problem.X, problem.y
    P, d = problem.patterns.shape[1], X.shape[1]
    step = 1 / lipschitz(problem, loss)

    def gradient(weights: Tensor) -> Tensor:
        return forward_adjoint(problem, loss_gradient(loss, forward(problem, weights), y))

    def objective(weights: Tensor) -> Tensor:
        return loss_value(loss, forward(problem, weights), y) + beta * group_norms(weights)

    x = X.new_zeros(P, d)
    extrapolated = x
    t = X.new_ones(())
    objectives = History(objective(x))
    start = torch.linalg.vector_norm(x - group_soft_threshold(x - step * gradient(x), beta * step)) / step
    yield Iterate(x, start, {"objectives": objectives.values()})
    while True:
        following = group_soft_threshold(extrapolated - step * gradient(extrapolated), beta * step)
        residual = torch.linalg.vector_norm(extrapolated - following) / step
        t_next = (1 + torch.sqrt(1 + 4 * t * t)) / 2
        restart = ((extrapolated - following) * (following - x)).sum() > 0
        momentum = torch.where(restart, torch.zeros_like(t), (t - 1) / t_next)
        t = torch.where(restart, torch.ones_like(t), t_next)
        extrapolated = following + momentum * (following - x)
        x = following
        yield Iterate(x, residual, {"objectives": objectives.append(objective(x))})


@solver(CONVEX_RELU_SCP, result=GatedReLUResult)
def convex_relu_scp(
    X: Tensor,
    y: Tensor,
    gates: Tensor | None = None,
    *,
    n_arrangements: int,
    beta: float,
    loss: str,
    solver: str,
    max_iter: int,
    tol: float,
    rho: float,
    include_bias: bool,
    seed: int,
    exact: bool,
) -> Iterator[Iterate]:
    """Fit the gated-ReLU model: the group lasso over sampled arrangements (§2.2), by FISTA or ADMM.

    ``X`` (n, d0), ``y`` (n,) (labels +-1 for logistic and hinge), ``gates`` (d, k) optional gates
    used first. Returns a :class:`GatedReLUResult`: ``solution`` the weights (P, d), ``gates`` the
    fixed gates, ``predict(X)`` the gated-ReLU predictor.
    """
    problem = prepare(
        CONVEX_RELU_SCP.name,
        X,
        y,
        loss=loss,
        include_bias=include_bias,
        n_arrangements=n_arrangements,
        seed=seed,
        exact=exact,
        gates=gates,
    )
    extras = {"patterns": problem.patterns, "gates": problem.gates, "include_bias": include_bias, "loss": loss}
    if solver == "admm":
        states = admm_iterations(problem, signs=1, cones=False, loss=loss, beta=beta, rho=rho, gamma=1.0)
        for state in states:
            yield Iterate(state.solution[0], state.residual, {**state.extras, **extras})
    else:
        for state in fista_iterations(problem, loss=loss, beta=beta):
            yield Iterate(state.solution, state.residual, {**state.extras, **extras})


__all__ = ["GatedReLUResult", convex_relu_scp.__name__, "fista_iterations", "gated_prediction", "lipschitz"]
