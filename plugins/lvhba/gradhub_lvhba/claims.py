"""Claim check for LV-HBA: on the coupled-constraint toy it converges to the bilevel solution.

The paper's claim (Theorem 4.1 and Section 5.1, the toy examples): LV-HBA, a single-loop
first-order method, converges to a solution of a bilevel problem whose lower level has
constraints coupling x and y, keeping (x, y) feasible by projecting onto C.

Set-up (the claim's toy, :mod:`gradhub_lvhba.problems`): n = 10, a, b, c ~ N(0, I) for seeds 1, 2, 3
(one row each, run as one batch of three restarts), lower level min_y 0.5 ||y - a||^2 s.t. y <= x,
upper level F = 0.5 ||x - b||^2 + 0.5 ||y - c||^2, C = {y <= x}, float64, every variable starting
at 0. Constants: alpha = 0.5, beta = 0.5, eta = 0.5, gamma1 = gamma2 = 10, c_k = 8 (k + 1)^0.45,
r = 100, 2000 iterations.

Measured (torch 2.13 CPU; the numbers are deterministic up to rounding): relative errors
||x - x*|| / ||x*|| = 0.61%, 0.39%, 0.26% and ||y - y*|| / ||y*|| = 0.72%, 0.72%, 0.48%
for seeds 1, 2, 3; y - x <= 0 at every iterate; the naive answer that ignores the coupling
(x = b, y = a) is 102%, 43%, 90% off in x. Thresholds: x < 3%, y < 6%, feasibility 1e-8 (the
claim's criterion), margins of 5x (x) and 8x (y); naive > 30% in x (10x the x bound: the criterion tells the
two apart by an order of magnitude; a 50% bound would not hold on these draws: seed 2's naive
error here is 43%).

Calibration: smaller constants (alpha = 0.05, beta = 0.01, eta = 0.1, c0 = 2, p = 0.3) need
20,000 iterations (about 10 s here) and reach 3.1%, 0.7%, 0.07% (x) and 4.1%, 3.6%, 2.7% (y) on
these seeds, so seed 1 misses the 3% bound; the constants above (p = 0.45, still inside the
theory's 0 < p < 1/2, and larger steps) reach 2.1-2.4% (x) already after 1000 iterations and
keep decreasing. With the official toy's constants (alpha = 0.008, eta = 0.01, c0 = 0.025) the
run is still 29-70% off in x after 10,000 iterations: c0 matters (README).
"""

from __future__ import annotations

from typing import Any

import torch

from gradhub.claims import ClaimResult, single_thread
from gradhub.figures import LinePlot, Series
from gradhub_lvhba.lvhba import LVHBA
from gradhub_lvhba.problems import CoupledToy, coupled_toy

SEEDS = (1, 2, 3)
N = 10
ITERATIONS = 2000
CONSTANTS = {
    "alpha": 0.5,
    "beta": 0.5,
    "eta": 0.5,
    "gamma1": 10.0,
    "gamma2": 10.0,
    "c0": 8.0,
    "p": 0.45,
    "lam_max": 100.0,
}
X_BOUND, Y_BOUND, FEASIBILITY, NAIVE_BOUND = 0.03, 0.06, 1e-8, 0.3
EVERY = 10
"""Figures keep every 10th iterate (and the last)."""


def _relative(value: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(value - target, dim=-1) / torch.linalg.vector_norm(target, dim=-1)


def run_toy(
    toy: CoupledToy, n_iter: int, stepper: type[LVHBA] = LVHBA, proj_C: Any = "toy", **constants: float
) -> dict[str, torch.Tensor]:
    """LV-HBA on ``toy`` (all restarts at once) from zero; the errors and metrics of every iterate.

    ``stepper`` and ``proj_C`` (default: the toy's projection onto C) let tests run wrong variants.
    Returns (n_iter + 1, B) histories: ``x_error``, ``y_error`` (relative to the solution),
    ``violation`` (max_i y_i - x_i), and (n_iter, B) ``stationarity`` and ``value_gap``.
    """
    x_star, y_star = toy.solution()
    zero = torch.zeros_like(toy.a)
    run = stepper(
        toy.F, toy.f, toy.g, zero, zero.clone(), proj_C=toy.proj_C if proj_C == "toy" else proj_C, **constants
    )
    xs, ys, stationarity, gaps = [run.x], [run.y], [], []
    for _ in range(n_iter):
        metrics = run.step()
        xs.append(run.x)
        ys.append(run.y)
        stationarity.append(metrics["stationarity"])
        gaps.append(metrics["value_gap"])
    x, y = torch.stack(xs), torch.stack(ys)  # (n_iter + 1, B, n): the errors in one pass, after the run
    return {
        "x_error": _relative(x, x_star),
        "y_error": _relative(y, y_star),
        "violation": (y - x).amax(-1),
        "stationarity": torch.stack(stationarity),
        "value_gap": torch.stack(gaps),
    }


def _check_toy(stepper: type[LVHBA] = LVHBA, proj_C: Any = "toy", n_iter: int = ITERATIONS) -> ClaimResult:
    toy = coupled_toy(SEEDS, N)
    trace = run_toy(toy, n_iter, stepper, proj_C, **CONSTANTS)
    x_final, y_final = trace["x_error"][-1], trace["y_error"][-1]
    violation = trace["violation"].nan_to_num(nan=float("inf")).max().item()
    naive_x, _ = toy.naive()
    x_star, _ = toy.solution()
    naive = _relative(naive_x, x_star)
    finite = bool(torch.isfinite(x_final).all() and torch.isfinite(y_final).all())
    passed = (
        finite
        and bool((x_final < X_BOUND).all() and (y_final < Y_BOUND).all())
        and violation <= FEASIBILITY
        and bool((naive > NAIVE_BOUND).all())
    )
    measured: dict[str, float] = {}
    for index, seed in enumerate(SEEDS):
        measured[f"seed {seed}: ||x - x*|| / ||x*||"] = x_final[index].item()
        measured[f"seed {seed}: ||y - y*|| / ||y*||"] = y_final[index].item()
    measured["max over iterates and seeds of max_i (y_i - x_i)"] = violation
    for index, seed in enumerate(SEEDS):
        measured[f"seed {seed}: naive (x = b, y = a) ||x - x*|| / ||x*||"] = naive[index].item()
    steps = list(range(0, n_iter + 1, EVERY))
    if steps[-1] != n_iter:
        steps.append(n_iter)
    kept = torch.tensor(steps, device="cpu")
    naive_y = _relative(toy.naive()[1], toy.solution()[1])
    figures = []
    for name, naive_values in (("x", naive), ("y", naive_y)):
        errors = trace[f"{name}_error"][kept]
        series = [Series(f"LV-HBA, seed {seed}", steps, errors[:, i], color=f"C{i}") for i, seed in enumerate(SEEDS)]
        flat = [[value] * len(steps) for value in naive_values.tolist()]
        series += [
            Series(f"naive (x = b, y = a), seed {seed}", steps, flat[i], "dashed", f"C{i}")
            for i, seed in enumerate(SEEDS)
        ]
        figures.append(
            LinePlot(
                title=f"Toy (n = {N}, y <= x coupled): ||{name}_k - {name}*|| / ||{name}*||",
                series=series,
                xlabel="iteration k",
                ylabel=f"relative distance of {name} to the bilevel solution",
                yscale="log",
            )
        )
    metric_steps = [k for k in steps if k < n_iter]
    metric_kept = torch.tensor(metric_steps, device="cpu")
    figures.append(
        LinePlot(
            title="The solver's residual parts on the toy (seed 1)",
            series=[
                Series("stationarity (scaled step length)", metric_steps, trace["stationarity"][metric_kept, 0]),
                Series("value-function gap f(x, y) - v(x, y, z)", metric_steps, trace["value_gap"][metric_kept, 0]),
            ],
            xlabel="iteration k",
            ylabel="residual part",
            yscale="log",
        )
    )
    return ClaimResult(
        claim=(
            "LV-HBA, a single-loop Hessian-free method, converges to the solution of a bilevel problem whose "
            "lower-level constraint couples x and y, keeping (x, y) feasible (Theorem 4.1, toy examples of Section 5)."
        ),
        criterion=(
            f"coupled toy (n = {N}, seeds 1-3, {n_iter} iterations): ||x - x*||/||x*|| < {X_BOUND} and "
            f"||y - y*||/||y*|| < {Y_BOUND} on every seed, y - x <= {FEASIBILITY:g} at every iterate; and the naive "
            f"answer ignoring the coupling (x = b, y = a) is > {NAIVE_BOUND} off in x"
        ),
        measured=measured,
        passed=passed,
        details=(
            "constants: "
            + ", ".join(f"{key}={value:g}" for key, value in CONSTANTS.items())
            + "; c_k = c0 (k + 1)^p; x0 = y0 = theta0 = lam0 = z0 = 0; float64"
        ),
        figures=figures,
    )


def toy_convergence() -> ClaimResult:
    """LV-HBA reaches the bilevel solution of the coupled toy (seeds 1-3), the naive answer does not."""
    with single_thread():
        return _check_toy()
