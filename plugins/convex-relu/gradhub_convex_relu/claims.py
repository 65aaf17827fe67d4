"""Claim check for ``convex_relu_admm``: the convex program's network is at or below what SGD reaches.

The paper's claim (§1, §3, §5): training the two-layer ReLU network through its convex program by
ADMM finds the global optimum of the weight-decayed non-convex objective (over the arrangements
used), which gradient methods on the non-convex network reach only from some initialisations
(they "can become stuck at spurious local minima and are sensitive to initialisations"), and the
first ADMM iterations already give a network of high prediction accuracy.

Set-up (the claim's setting): two interleaved half-moons, n = 60 points in R^2 (noise 0.1, seed 0), labels
+-1 as regression targets, bias column (d = 3), P = 300 sampled arrangements (171 distinct,
non-zero), beta = 1e-3, squared loss. ADMM with rho = 3e-3 (tuned on this problem, as the paper
tunes rho per dataset) for 1500 iterations. Baseline: the same network (width = the recovered
network's neurons, at most n + 1 = 61, which suffices for the global optimum (Pilanci & Ergen,
Theorem 1: m* <= n + 1)) with weight decay beta/2 (||U||^2 + ||alpha||^2), trained by Adam
(lr 1e-2, full batch, 3000 steps) from 10 seeds.

Criterion: (a) the ADMM residual max(||u - z||, ||G u - s||, rho ||dz + G^T ds||) falls by at least
50x from the first iteration; (b) the recovered network's non-convex objective is <= the best of
the 10 Adam runs x (1 + 1e-2); (c) its training sign accuracy after 20 ADMM iterations is >= 95% of
the final one. The number of Adam runs ending >= 5% above the convex network is reported (the
paper's "spurious local minima" remark, §1; it does not decide the verdict).

A stricter form of (a), residuals < 1e-5 and the objective within 1e-4 of a reference, is not used: this ADMM does
not get there in seconds on this problem (its residual decays roughly like 1/k: measured 8.8e-3
after 1500 iterations, 2.6e-3 after 3000; the recovered network's objective 1.2% and 0.4% above
CLARABEL's optimum of the same program): the plugin's tests compare the claim's ADMM objective
with CLARABEL's (cvxpy, a test dependency) instead. Measured values: README.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch

from gradhub.claims import ClaimResult, single_thread
from gradhub.figures import LinePlot, Series

N_SAMPLES = 60
NOISE = 0.1
N_ARRANGEMENTS = 300
BETA = 1e-3
RHO = 3e-3
ADMM_ITERATIONS = 1500
EARLY = 20
SEEDS = tuple(range(10))
ADAM_STEPS = 3000
ADAM_LR = 1e-2
RESIDUAL_DROP = 50.0
SLACK = 1e-2
EARLY_FRACTION = 0.95
WORSE = 0.05

Solve = Callable[..., Any]
"""``solve(X, y, max_iter=...) -> ConvexReLUResult`` (the claim's hyperparameters bound)."""


def _admm(X: torch.Tensor, y: torch.Tensor, *, max_iter: int) -> Any:
    from gradhub_convex_relu.admm import convex_relu_admm

    return convex_relu_admm(
        X, y, n_arrangements=N_ARRANGEMENTS, beta=BETA, rho=RHO, tol=1e-5, max_iter=max_iter, seed=0
    )


@functools.lru_cache(maxsize=4)
def _adam_runs(width: int) -> Any:
    """The 10 Adam runs at ``width`` (deterministic: kept for a second call with the same width)."""
    from gradhub_convex_relu.data import half_moons
    from gradhub_convex_relu.network import train_relu_network

    X, y = half_moons(N_SAMPLES, noise=NOISE, seed=0)
    return train_relu_network(X, y, width, beta=BETA, seeds=SEEDS, steps=ADAM_STEPS, lr=ADAM_LR)


def _accuracy(network: torch.nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (torch.sign(network(X).squeeze(-1)) == y).double().mean().item()


def global_optimum_vs_sgd(solve: Solve = _admm, sgd: Any | None = None) -> ClaimResult:
    """The convex program's network (ADMM) against Adam on the non-convex objective, 10 seeds.

    ``solve`` replaces the solver (tests pass deliberately wrong ADMMs); ``sgd`` reuses Adam runs
    (:class:`gradhub_convex_relu.network.TrainingRuns`) instead of training them again.
    """
    from gradhub_convex_relu.data import half_moons
    from gradhub_convex_relu.network import network_objective

    with single_thread():
        X, y = half_moons(N_SAMPLES, noise=NOISE, seed=0)
        result = solve(X, y, max_iter=ADMM_ITERATIONS)
        network = result.network()
        convex = network_objective(network, X, y, beta=BETA).item()
        width = max(1, min(network[0].weight.shape[0], N_SAMPLES + 1))
        early = solve(X, y, max_iter=EARLY).network()
        if sgd is None:
            sgd = _adam_runs(width)
    residuals = result.residuals
    finite = bool(torch.isfinite(residuals).all()) and residuals.numel() > 1
    drop = residuals[1].item() / residuals[-1].item() if finite and residuals[-1].item() > 0 else float("inf")
    if not finite:
        drop = 0.0
    best = sgd.objectives.min().item()
    worse = int((sgd.objectives > (1 + WORSE) * convex).sum())
    final_accuracy, early_accuracy = _accuracy(network, X, y), _accuracy(early, X, y)
    converged = drop >= RESIDUAL_DROP
    optimal = convex <= (1 + SLACK) * best
    accurate = early_accuracy >= EARLY_FRACTION * final_accuracy
    measured = {
        "convex_network_objective": convex,
        "convex_program_objective": result.objectives[-1].item(),
        "best_adam_objective": best,
        "median_adam_objective": sgd.objectives.median().item(),
        "convex_over_best_adam": convex / best,
        "adam_runs_5pct_worse": float(worse),
        "admm_residual_first": residuals[1].item() if residuals.numel() > 1 else float("nan"),
        "admm_residual_final": residuals[-1].item(),
        "admm_residual_drop": drop,
        "recovered_neurons": float(network[0].weight.shape[0]),
        "adam_width": float(width),
        "accuracy_after_20_iterations": early_accuracy,
        "final_accuracy": final_accuracy,
    }
    iterations = torch.arange(result.objectives.numel())
    steps = torch.arange(sgd.history.shape[0])
    curves = [
        Series("convex program (ADMM iterate z)", iterations, result.objectives.clamp(1e-6, 1e6), color="black"),
        *[
            Series(f"Adam seed {seed}", steps, sgd.history[:, index].clamp(1e-6, 1e6), style="dashed")
            for index, seed in enumerate(SEEDS)
        ],
    ]
    figures = [
        LinePlot(
            title="Half-moons (n = 60, beta = 1e-3): objective vs ADMM iteration / Adam step",
            series=curves,
            xlabel="ADMM iteration or Adam step",
            ylabel="objective",
            xscale="symlog",
            yscale="log",
        ),
        LinePlot(
            title="ADMM residual max(||u - z||, ||Gu - s||, rho ||dz + G^T ds||)",
            series=[Series("residual", torch.arange(residuals.numel()), residuals.clamp(1e-12, 1e12))],
            xlabel="ADMM iteration",
            ylabel="residual",
            xscale="symlog",
            yscale="log",
        ),
    ]
    details = (
        f"recovered network objective {convex:.6f} (convex program at z: {result.objectives[-1].item():.6f}); "
        f"Adam (width {width}) final objectives: {', '.join(f'{v:.4f}' for v in sgd.objectives.tolist())}\n"
        f"ADMM residual {residuals[1].item():.3g} -> {residuals[-1].item():.3g} in {result.iterations} iterations; "
        f"accuracy after {EARLY} iterations {early_accuracy:.3f}, final {final_accuracy:.3f}; "
        f"{worse} of {len(SEEDS)} Adam runs end >= 5% above the convex network"
    )
    return ClaimResult(
        claim=(
            "Training the two-layer ReLU network through its convex program by ADMM reaches a network whose "
            "non-convex objective is at or below what gradient training of the same network reaches from "
            "random initialisations, and the first ADMM iterations already classify accurately"
        ),
        criterion=(
            "half-moons n=60, P=300 sampled arrangements, beta=1e-3, squared loss: ADMM residual falls >= 50x "
            "in 1500 iterations; recovered network objective <= min over 10 Adam runs (3000 steps) x 1.01; "
            "sign accuracy after 20 ADMM iterations >= 95% of the final"
        ),
        measured=measured,
        passed=converged and optimal and accurate,
        details=details,
        figures=figures,
    )
