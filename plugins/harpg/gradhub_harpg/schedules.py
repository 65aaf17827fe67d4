"""Step-size and momentum schedules of N-PG-IGT and (N-)HARPG.

Paper: Fatkhullin, Barakat, Kireeva, He, "Stochastic Policy Gradient Methods: Improved Sample
Complexity for Fisher-non-degenerate Policies", ICML 2023, arXiv 2302.01734. No official code.

Only the *exponents* come from the theory (Theorem 4.3 for N-PG-IGT, Theorem 5.1 for
N-HARPG): the theorems' constants involve unknown problem constants (the Fisher
non-degeneracy mu_F, gradient and Lipschitz bounds), so the base step ``lr`` = gamma_0 is a
user choice. Iterations are counted from t = 0 and every schedule gives eta_0 = 1, so
d_0 = g(tau_0, theta_0) (the paper's initialisation).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["eta_harpg_paper", "eta_igt_paper", "momentum_weight", "step_size"]


def eta_igt_paper(t: int) -> float:
    """N-PG-IGT's momentum weight eta_t = (2 / (t + 2))^(4/5) (Theorem 4.3: eta_t ~ t^(-4/5))."""
    return (2.0 / (t + 2)) ** 0.8


def eta_harpg_paper(t: int) -> float:
    """(N-)HARPG's momentum weight eta_t = 2 / (t + 2) (Theorem 5.1: eta_t ~ 1/t)."""
    return 2.0 / (t + 2)


def momentum_weight(paper: Callable[[int], float], schedule: str, eta: float, t: int) -> float:
    """eta_t under ``schedule``: the method's theory schedule ``paper`` (:func:`eta_igt_paper` or
    :func:`eta_harpg_paper`) or the constant ``eta``; always 1 at t = 0."""
    if t == 0:
        return 1.0
    if schedule == "constant":
        return eta
    return paper(t)


def step_size(schedule: str, lr: float, t: int) -> float:
    """gamma_t: ``lr * 2 / (t + 2)`` under "paper" (normalised steps of length ~ 1/t), else ``lr``."""
    return lr * 2.0 / (t + 2) if schedule == "paper" else lr
