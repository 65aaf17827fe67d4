"""The convex programs written in cvxpy: the reference the ADMM and FISTA solvers are checked against.

Paper: "Efficient Global Optimization of Two-layer ReLU Networks: Quadratic-time Algorithms and
Adversarial Training", Yatong Bai, Tanmay Gautam, Somayeh Sojoudi, SIMODS 2023, arXiv:2201.01965
(§2 the ReLU and gated programs, §4 the robust program). cvxpy is optional (``pip install cvxpy``,
in this plugin's ``test`` and ``cvxpy`` extras); it is imported only when a function here is called.

Every function takes the data with its bias column ``X`` (n, d), targets ``y`` (n,) and patterns
``D`` (n, P) as tensors, solves in float64 on the host, and returns ``(weights, optimal value)``
with the weights as a float64 tensor on the host: (2, P, d) = [v; w] or (P, d) for the gated program.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from gradhub.errors import UnsupportedInputError

SOLVER = "CLARABEL"


def _cvxpy(method: str) -> Any:
    try:
        import cvxpy
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise UnsupportedInputError(
            method, "solver", "'cvxpy' (cvxpy is not installed)", "pip install cvxpy, or use solver='admm'"
        ) from error
    return cvxpy


def _arrays(X: Tensor, y: Tensor, D: Tensor) -> tuple[Any, Any, Any]:
    return (t.detach().to(device="cpu", dtype=torch.float64).numpy() for t in (X, y, D))


def _loss(cp: Any, loss: str, prediction: Any, y: Any) -> Any:
    if loss == "squared":
        return 0.5 * cp.sum_squares(prediction - y)
    if loss == "logistic":
        return cp.sum(cp.logistic(-cp.multiply(y, prediction)))
    return cp.sum(cp.pos(1 - cp.multiply(y, prediction)))


def _solve(cp: Any, method: str, objective: Any, constraints: list[Any], solver: str) -> float:
    problem = cp.Problem(cp.Minimize(objective), constraints)
    problem.solve(solver=solver)
    if problem.status not in ("optimal", "optimal_inaccurate"):
        raise UnsupportedInputError(method, "cvxpy status", problem.status, "the reference program must be solvable")
    return float(problem.value)


def _weights(*variables: Any) -> Tensor:
    """cvxpy variables (d, P) as a tensor (k, P, d)."""
    return torch.stack([torch.as_tensor(variable.value.T.copy(), device="cpu") for variable in variables])


def relu_program(
    X: Tensor,
    y: Tensor,
    D: Tensor,
    *,
    beta: float,
    loss: str = "squared",
    cones: bool = True,
    solver: str = SOLVER,
) -> tuple[Tensor, float]:
    """``min l(sum_i D_i X (v_i - w_i), y) + beta sum (||v_i|| + ||w_i||)`` s.t. (2 D_i - I) X v_i, w_i >= 0."""
    cp = _cvxpy("relu_program")
    X, y, D = _arrays(X, y, D)
    d, P = X.shape[1], D.shape[1]
    V, W = cp.Variable((d, P)), cp.Variable((d, P))
    prediction = cp.sum(cp.multiply(D, X @ (V - W)), axis=1)
    penalty = cp.sum(cp.norm(V, 2, axis=0)) + cp.sum(cp.norm(W, 2, axis=0))
    E = 2 * D - 1
    constraints = [cp.multiply(E, X @ V) >= 0, cp.multiply(E, X @ W) >= 0] if cones else []
    value = _solve(cp, "relu_program", _loss(cp, loss, prediction, y) + beta * penalty, constraints, solver)
    return _weights(V, W), value


def gated_program(
    X: Tensor, y: Tensor, D: Tensor, *, beta: float, loss: str = "squared", solver: str = SOLVER
) -> tuple[Tensor, float]:
    """``min l(sum_i D_i X u_i, y) + beta sum ||u_i||`` (no constraints): the gated-ReLU program."""
    cp = _cvxpy("gated_program")
    X, y, D = _arrays(X, y, D)
    U = cp.Variable((X.shape[1], D.shape[1]))
    prediction = cp.sum(cp.multiply(D, X @ U), axis=1)
    objective = _loss(cp, loss, prediction, y) + beta * cp.sum(cp.norm(U, 2, axis=0))
    value = _solve(cp, "gated_program", objective, [], solver)
    return _weights(U)[0], value


def robust_program(
    X: Tensor,
    y: Tensor,
    D: Tensor,
    *,
    eps: float,
    beta: float,
    features: int,
    solver: str = SOLVER,
) -> tuple[Tensor, float]:
    """The l-infinity robust hinge program (§4) with the first ``features`` columns of X perturbed.

    ``min sum_k (1 - y_k sum_i d_ik x_k^T (v_i - w_i) + eps ||sum_i d_ik (v_i - w_i)_f||_1)_+
    + beta sum (||v_i|| + ||w_i||)`` s.t. ``(2 d_ik - 1) x_k^T v_i >= eps ||(v_i)_f||_1`` (and for w_i).
    """
    cp = _cvxpy("robust_program")
    X, y, D = _arrays(X, y, D)
    n, d = X.shape
    P = D.shape[1]
    V, W = cp.Variable((d, P)), cp.Variable((d, P))
    prediction = cp.sum(cp.multiply(D, X @ (V - W)), axis=1)
    slopes = D @ (V - W)[:features, :].T  # (n, features): the gradient of each sample's prediction
    worst = cp.pos(1 - cp.multiply(y, prediction) + eps * cp.sum(cp.abs(slopes), axis=1))
    penalty = cp.sum(cp.norm(V, 2, axis=0)) + cp.sum(cp.norm(W, 2, axis=0))
    E = 2 * D - 1
    ones = torch.ones(n, 1, dtype=torch.float64, device="cpu").numpy()
    constraints = [
        cp.multiply(E, X @ block)
        >= eps * ones @ cp.reshape(cp.sum(cp.abs(block[:features, :]), axis=0), (1, P), order="C")
        for block in (V, W)
    ]
    value = _solve(cp, "robust_program", cp.sum(worst) + beta * penalty, constraints, solver)
    return _weights(V, W), value
