"""Test objectives of the paper's experiments (Section 6), as torch functions of a vector x.

Paper: "Gradient-Normalized Smoothness for Optimization with Approximate Hessians",
Andrei Semenov, Martin Jaggi, Nikita Doikov, 2025, arXiv:2506.13710; official code
https://github.com/epfml/grad-norm-smooth (``src/oracles.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["logsumexp", "rosenbrock"]


def logsumexp(A: torch.Tensor, b: torch.Tensor, mu: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """f(x) = mu log sum_i exp((a_i^T x - b_i) / mu), a smooth maximum of the affine pieces."""

    def objective(x: torch.Tensor) -> torch.Tensor:
        return mu * torch.logsumexp((A @ x - b) / mu, dim=0)

    return objective


def rosenbrock(x: torch.Tensor) -> torch.Tensor:
    """Chained Rosenbrock sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2 (non-convex; minimum 0 at x = 1)."""
    return (100 * (x[1:] - x[:-1].square()).square() + (1 - x[:-1]).square()).sum()
