"""Seeded examples for the conformance suite: tiny problems on which each solver converges in milliseconds.

Each example's ``residual`` recomputes, in float64 on the host, an optimality condition of the
returned weights from the data alone (independently of the solver's bookkeeping):

* ``convex_relu_admm``: the violation of the cone constraints ``||min(0, (2 D_i - I) X u_i)||`` of
  the returned (group-sparse) z; the ADMM residuals bound it by (1 + ||X||_2) tol;
* ``convex_relu_scp``: the gradient mapping ``L ||u - prox(u - grad f(u) / L)||`` at the returned u,
  which is zero exactly at the solution;
* ``convex_relu_adv``: the violation of the robust cone constraints.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from gradhub.kinds.solver import SolverExample
from gradhub_convex_relu.arrangements import augment, sample_arrangements
from gradhub_convex_relu.problem import Problem, forward, forward_adjoint, group_soft_threshold, loss_gradient


def _data(device: Any, dtype: torch.dtype, seed: int, n: int = 12) -> tuple[Tensor, Tensor]:
    # drawn on the host and moved: the same problem on every device
    generator = torch.Generator(device="cpu").manual_seed(seed)
    X = torch.randn(n, 2, generator=generator, dtype=torch.float64, device="cpu")
    y = torch.randn(n, generator=generator, dtype=torch.float64, device="cpu")
    return X, y


def _reference(X: Tensor, y: Tensor, P: int) -> Problem:
    """The problem in float64 on the host with the patterns the solver draws (same seed 0)."""
    arrangements = sample_arrangements(X, P, 0, include_bias=True)
    return Problem("example", augment(X, True), y, X.shape[1], True, arrangements.patterns, arrangements.gates)


def _host(solution: Tensor) -> Tensor:
    return solution.detach().to(device="cpu", dtype=torch.float64)


def small_regression(device: Any = "cpu", dtype: torch.dtype = torch.float64, seed: int = 0) -> SolverExample:
    """12 points in R^2 (+ bias), real targets, 6 sampled arrangements, beta = 0.3, rho = 0.3, squared loss.

    Measured (float64): the residual reaches 1e-6 after 128 iterations (1e-4 after 83).
    """
    X, y = _data(device, dtype, seed)
    reference = _reference(X, y, 6)

    def residual(solution: Tensor) -> float:
        weights = _host(solution)
        return torch.linalg.vector_norm(torch.relu(-reference.signs * (reference.X @ weights.mT))).item()

    tol = 1e-6 if dtype == torch.float64 else 1e-3
    hparams = {"n_arrangements": 6, "beta": 0.3, "rho": 0.3, "tol": tol, "max_iter": 400}
    return SolverExample(
        args=(X.to(device=device, dtype=dtype), y.to(device=device, dtype=dtype)), hparams=hparams, residual=residual
    )


def small_gated(device: Any = "cpu", dtype: torch.dtype = torch.float64, seed: int = 0) -> SolverExample:
    """The same data, the gated-ReLU program by FISTA, beta = 0.3 (measured: tol 1e-6 after 337 iterations)."""
    X, y = _data(device, dtype, seed)
    reference = _reference(X, y, 6)
    beta = 0.3

    def residual(solution: Tensor) -> float:
        weights = _host(solution)
        from gradhub_convex_relu.scp import lipschitz

        step = 1 / lipschitz(reference, "squared")
        gradient = forward_adjoint(reference, loss_gradient("squared", forward(reference, weights), y))
        moved = group_soft_threshold(weights - step * gradient, beta * step)
        return (torch.linalg.vector_norm(weights - moved) / step).item()

    tol = 1e-6 if dtype == torch.float64 else 1e-3
    hparams = {"n_arrangements": 6, "beta": beta, "tol": tol, "max_iter": 600}
    return SolverExample(
        args=(X.to(device=device, dtype=dtype), y.to(device=device, dtype=dtype)), hparams=hparams, residual=residual
    )


def small_robust(device: Any = "cpu", dtype: torch.dtype = torch.float64, seed: int = 0) -> SolverExample:
    """6 points in R^2 (+ bias), labels sign(x_1 x_2), 4 sampled arrangements, eps = 0.05, beta = 1, rho = 0.3,
    gamma = 1.6. Measured (float64): the residual reaches 1e-5 after 352 iterations (3 non-zero blocks)."""
    X, _ = _data(device, dtype, seed, n=6)
    labels = torch.where(X[:, 0] * X[:, 1] >= 0, 1.0, -1.0).to(torch.float64)
    reference = _reference(X, labels, 4)
    eps = 0.05

    def residual(solution: Tensor) -> float:
        from gradhub_convex_relu.adversarial import robust_cone_violation

        return robust_cone_violation(reference, _host(solution), eps).item()

    tol = 1e-5 if dtype == torch.float64 else 1e-3
    hparams = {"eps": eps, "n_arrangements": 4, "beta": 1.0, "rho": 0.3, "gamma": 1.6, "tol": tol, "max_iter": 600}
    args = (X.to(device=device, dtype=dtype), labels.to(device=device, dtype=dtype))
    return SolverExample(args=args, hparams=hparams, residual=residual)
