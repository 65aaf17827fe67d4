"""Claim check: on a Gaussian bandit, N-HARPG beats normalized PG and N-PG-IGT does not lose.

Paper: Fatkhullin et al., ICML 2023, arXiv 2302.01734 (Theorems 4.3 and 5.1: N-PG-IGT needs
O(eps^-2.5) and N-HARPG O(eps^-2) trajectories for global eps-optimality, normalized PG without
momentum more). Problem: the continuous-action Gaussian bandit, d = 10, a ~ N(theta, I), r = -||a - a*||^2 + N(0, 1),
||a*|| = 5, theta_0 = 0; J* - J(theta) = ||theta - a*||^2 exactly.

Scaled down to fit 30 s on 2 CPU cores (4000 trajectories x 4 step sizes x 5 seeds x 3 methods
take minutes here): the same trajectory budget for every method, ``BUDGET``
(N-HARPG uses two per iteration), 5 seeds, and each method's gamma_0 chosen once from
{0.5, 1, 2, 4} by :func:`select_step_sizes` (median final suboptimality over the 5 seeds;
calibration numbers in the README), not re-searched on every run.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch

from gradhub.claims import ClaimResult, single_thread
from gradhub.figures import LinePlot, Series
from gradhub_harpg import HARPG, N_HARPG, NPG_IGT
from gradhub_harpg.gpomdp import gpomdp_surrogate
from gradhub_harpg.harpg import NHARPG
from gradhub_harpg.npg_igt import NPGIGT
from gradhub_harpg.problems import GaussianBandit

__all__ = ["gaussian_bandit_sample_efficiency", "run_bandit", "select_step_sizes"]

DIMENSION = 10
BUDGET = 1000
SEEDS = (0, 1, 2, 3, 4)
GRID = (0.5, 1.0, 2.0, 4.0)
# Chosen by select_step_sizes() (see the README); filled in from the calibration run.
NPG = "npg"
"""Normalized PG without momentum, the baseline (not a registered method: N-PG-IGT with eta_t = 1)."""
STEP_SIZES = {NPG: 0.5, NPG_IGT.name: 2.0, N_HARPG.name: 0.5}


def _bandit(seed: int) -> GaussianBandit:
    generator = torch.Generator().manual_seed(10_000 + seed)
    optimum = torch.randn(DIMENSION, generator=generator, dtype=torch.float64)
    return GaussianBandit(optimum * (5.0 / optimum.norm()))


def _optimizer(
    method: str, theta: torch.Tensor, lr: float, seed: int, hessian_correction: bool
) -> torch.optim.Optimizer:
    if method == NPG:
        # Normalized PG without momentum: N-PG-IGT with eta_t = 1 (no extrapolation, d_t = g_t).
        return NPGIGT([theta], lr=lr, eta_schedule="constant", eta=1.0)
    if method == NPG_IGT.name:
        return NPGIGT([theta], lr=lr)
    variant = {"paper": NHARPG, "none": _NoCorrection, "flipped": _FlippedCorrection}[hessian_correction]
    return variant([theta], lr=lr, seed=seed)


class _NoCorrection(NHARPG):
    """A deliberately wrong N-HARPG: the Hessian correction v_t dropped (the trajectory still spent)."""

    def _hessian_correction(self, closure, entries, started):  # type: ignore[no-untyped-def]
        self.evaluate_closure(closure)
        return [None] * len(entries)


class _FlippedCorrection(NHARPG):
    """A deliberately wrong N-HARPG: d_t = (1 - eta)(d_{t-1} - v_t) + eta g_t (the correction's sign flipped)."""

    def _hessian_correction(self, closure, entries, started):  # type: ignore[no-untyped-def]
        return [None if v is None else -v for v in super()._hessian_correction(closure, entries, started)]


def run_bandit(
    method: str, lr: float, seed: int, budget: int = BUDGET, hessian_correction: str = "paper"
) -> list[float]:
    """Suboptimality ||theta - a*||^2 after each iteration of ``method`` on the bandit of ``seed``."""
    bandit = _bandit(seed)
    generator = torch.Generator().manual_seed(seed)
    theta = torch.zeros(DIMENSION, dtype=torch.float64, requires_grad=True)
    optimizer = _optimizer(method, theta, lr, seed, hessian_correction)
    paired = method == N_HARPG.name

    def closure() -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        log_probs, rewards = bandit.trajectory(theta, generator)
        loss, logp = gpomdp_surrogate(log_probs, rewards, 1.0)
        if paired:
            return loss, logp
        optimizer.zero_grad()
        loss.backward()
        return loss

    history = [float(bandit.suboptimality(theta))]
    for _ in range(budget // 2 if paired else budget):
        optimizer.step(closure)
        history.append(float(bandit.suboptimality(theta)))
    return history


def select_step_sizes(budget: int = BUDGET) -> dict[str, dict[float, float]]:
    """Median final suboptimality of every method at every gamma_0 of the grid (the calibration)."""
    return {
        method: {lr: statistics.median(run_bandit(method, lr, seed, budget)[-1] for seed in SEEDS) for lr in GRID}
        for method in STEP_SIZES
    }


def _final(
    method: str, runner: Callable[..., list[float]] = run_bandit, **kwargs: object
) -> tuple[float, list[list[float]]]:
    runs = [runner(method, STEP_SIZES[method], seed, **kwargs) for seed in SEEDS]
    return statistics.median(run[-1] for run in runs), runs


def gaussian_bandit_sample_efficiency(hessian_correction: str = "paper") -> ClaimResult:
    """N-HARPG < 0.5 x N-PG and N-PG-IGT < 0.5 x N-PG (medians over 5 seeds, equal trajectory budget)."""
    with single_thread():
        npg, npg_runs = _final(NPG)
        igt, igt_runs = _final(NPG_IGT.name)
        harpg, harpg_runs = _final(N_HARPG.name, hessian_correction=hessian_correction)
    passed = harpg < HARPG_RATIO * npg and igt < IGT_RATIO * npg
    figures = [
        LinePlot(
            title="Gaussian bandit (d = 10): suboptimality vs trajectories, seed 0",
            series=[
                Series("normalized PG (eta = 1)", list(range(len(npg_runs[0]))), npg_runs[0]),
                Series("N-PG-IGT", list(range(len(igt_runs[0]))), igt_runs[0]),
                Series("N-HARPG", [2 * i for i in range(len(harpg_runs[0]))], harpg_runs[0]),
            ],
            xlabel="trajectories sampled",
            ylabel="J* - J(theta) = ||theta - a*||^2",
            yscale="log",
        )
    ]
    return ClaimResult(
        claim=(
            "Momentum with implicit gradient transport (N-PG-IGT) and Hessian-aided recursive momentum "
            "(N-HARPG) need fewer trajectories than normalized PG for the same global suboptimality"
        ),
        criterion=(
            f"same budget of {BUDGET} trajectories, median of 5 seeds: N-HARPG < {HARPG_RATIO} x N-PG, "
            f"N-PG-IGT < {IGT_RATIO} x N-PG"
        ),
        measured={NPG: npg, NPG_IGT.name: igt, N_HARPG.name: harpg},
        passed=passed,
        methods=(NPG_IGT.name, N_HARPG.name, HARPG.name),
        details="final ||theta - a*||^2 (median over seeds); gamma_0 per method: " + str(STEP_SIZES),
        figures=figures,
    )


HARPG_RATIO = 0.5
IGT_RATIO = 0.5
