"""Exact and approximate Hessians for ``gns_newton`` (Section 5 of the paper and the official code).

Paper: "Gradient-Normalized Smoothness for Optimization with Approximate Hessians",
Andrei Semenov, Martin Jaggi, Nikita Doikov, 2025 (ICLR 2026), arXiv:2506.13710.
Official code: https://github.com/epfml/grad-norm-smooth (``src/approximations.py``:
``approx_hess_fn_logsumexp``, ``approx_hess_fn_fisher_term``, ``approx_hess_nonlinear_equations``).

Each function here builds a ``hessian(x) -> (d, d)`` callable to pass to ``gns_newton``:

* :func:`exact_hessian` -- ``torch.func.hessian`` of the objective (small problems).
* :func:`logsumexp_gauss_newton` -- for f(x) = mu log sum_i exp((a_i^T x - b_i)/mu) the weighted
  Gauss-Newton matrix (1/mu) A^T diag(pi) A, pi = softmax((Ax - b)/mu). It drops the negative
  rank-one term -(1/mu) A^T pi pi^T A of the true Hessian, so it upper-bounds it.
* :func:`fisher_term` -- for f(x) = (1/p)||u(x)||^p the rank-one "Fisher term"
  (p - 2) ||u||^{p-4} (J^T u)(J^T u)^T = (p - 2)/||u||^p grad f grad f^T (zero for p = 2).
* :func:`nonlinear_equations_hessian` -- ||u||^{p-2} J^T J + the Fisher term (the approximation the
  paper's theory uses for nonlinear equations and Rosenbrock-type problems).
* :func:`gauss_newton` -- J^T J for f(x) = 1/2 ||r(x)||^2 (NN-style Gauss-Newton, small d).

Jacobians come from ``torch.func.jacrev`` (one vectorised reverse pass, no loop over rows).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["exact_hessian", "fisher_term", "gauss_newton", "logsumexp_gauss_newton", "nonlinear_equations_hessian"]

Hessian = Callable[[torch.Tensor], torch.Tensor]


def exact_hessian(fn: Callable[[torch.Tensor], torch.Tensor]) -> Hessian:
    """The exact Hessian of ``fn`` by ``torch.func.hessian`` (forward-over-reverse, vectorised)."""
    second = torch.func.hessian(lambda x: fn(x).reshape(()))

    def hessian(x: torch.Tensor) -> torch.Tensor:
        return second(x.detach())

    return hessian


def logsumexp_gauss_newton(A: torch.Tensor, b: torch.Tensor, mu: float) -> Hessian:
    """Weighted Gauss-Newton H = (1/mu) A^T diag(softmax((Ax - b)/mu)) A (official ``approx_hess_fn_logsumexp``)."""

    def hessian(x: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax((A @ x - b) / mu, dim=0)
        return (A.mT * weights) @ A / mu

    return hessian


def _residual_and_jacobian(u_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor):
    x = x.detach()
    return u_fn(x).detach(), torch.func.jacrev(u_fn)(x).detach()


def fisher_term(u_fn: Callable[[torch.Tensor], torch.Tensor], p: float) -> Hessian:
    """(p - 2) ||u||^{p-4} (J^T u)(J^T u)^T for f = (1/p)||u(x)||^p (official ``approx_hess_fn_fisher_term``)."""

    def hessian(x: torch.Tensor) -> torch.Tensor:
        u, jacobian = _residual_and_jacobian(u_fn, x)
        if p == 2:
            return torch.zeros(x.numel(), x.numel(), dtype=x.dtype, device=x.device)
        direction = jacobian.mT @ u
        return (p - 2) * torch.linalg.vector_norm(u) ** (p - 4) * torch.outer(direction, direction)

    return hessian


def nonlinear_equations_hessian(u_fn: Callable[[torch.Tensor], torch.Tensor], p: float) -> Hessian:
    """||u||^{p-2} J^T J + (p - 2)||u||^{p-4}(J^T u)(J^T u)^T (official ``approx_hess_nonlinear_equations``).

    At u = 0 only the first term is kept (official behaviour).
    """

    def hessian(x: torch.Tensor) -> torch.Tensor:
        u, jacobian = _residual_and_jacobian(u_fn, x)
        norm = torch.linalg.vector_norm(u)
        matrix = norm ** (p - 2) * (jacobian.mT @ jacobian)
        if p != 2 and bool(norm > 0):
            direction = jacobian.mT @ u
            matrix = matrix + (p - 2) * norm ** (p - 4) * torch.outer(direction, direction)
        return matrix

    return hessian


def gauss_newton(residual_fn: Callable[[torch.Tensor], torch.Tensor]) -> Hessian:
    """J^T J, the Gauss-Newton matrix of f(x) = 1/2 ||r(x)||^2 (PSD; exact when r is affine)."""

    def hessian(x: torch.Tensor) -> torch.Tensor:
        _, jacobian = _residual_and_jacobian(residual_fn, x)
        jacobian = jacobian.reshape(-1, x.numel())
        return jacobian.mT @ jacobian

    return hessian
