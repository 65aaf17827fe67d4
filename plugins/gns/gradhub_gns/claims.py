"""Claim check for ``gns_newton``: with a cheap approximate Hessian it still converges fast.

The paper's claim (Sections 5-6, Figure "LogSumExp"): the gradient-regularised Newton method with
adaptive search converges from any start, with the exact Hessian and with approximations such as
the weighted Gauss-Newton matrix of LogSumExp, in far fewer iterations than first-order methods.

Set-up (LogSumExp, as in the experiments of §6): f(x) = mu log sum_i exp((a_i^T x - b_i)/mu), A in R^{200 x 50} and
b ~ N(0, 1) (torch seed 0, A then b), mu = 0.05, x0 = 0, float64. f* is the smallest value the
reference ``gns_newton`` with the exact Hessian reaches (it stops at ||grad f|| <= 1e-11).

Measured on this implementation (torch 2.13 CPU, 2 threads): exact-Hessian GNS reaches
f - f* < 1e-8 after 16 iterations, Gauss-Newton GNS after 37, gradient descent with the official
adaptive-L line search reaches 1e-4 after 586 iterations (1e-8 after 1634): 15.8x. Plain Newton
(no gradient regularisation, lambda = 0) with the exact Hessian diverges from x0 = 0
(f - f* ~ 4e12 after 100 iterations). Thresholds: 1e-8 within 100 iterations and >= 10x fewer
than GD to 1e-4, which leave a margin of 2.7x on the first and 1.6x on the second.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from gradhub.claims import ClaimResult, single_thread
from gradhub.figures import LinePlot, Series

Objective = Callable[[torch.Tensor], torch.Tensor]
Solve = Callable[..., tuple[torch.Tensor, torch.Tensor]]
"""``solve(fn, x0, hessian, max_iter) -> (f(x_k), ||grad f(x_k)||)`` histories (``hessian`` None: exact)."""

MU = 0.05
GAP = 1e-8
GD_GAP = 1e-4
MAX_OUTER = 100
GD_ITERATIONS = 2000
SPEEDUP = 10.0


def _gns(fn: Objective, x0: torch.Tensor, hessian, max_iter: int) -> tuple[torch.Tensor, torch.Tensor]:
    from gradhub_gns.newton import gns_newton

    result = gns_newton(fn, x0, hessian=hessian, max_iter=max_iter, tol=1e-11)
    return result.values, result.residuals


def _plain_newton(fn: Objective, x0: torch.Tensor, hessian, max_iter: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Newton without gradient regularisation: gamma = 1e12 fixed, so lambda_k ~ 0."""
    from gradhub_gns.newton import gns_newton

    result = gns_newton(fn, x0, hessian=hessian, max_iter=max_iter, tol=0.0, gamma0=1e12, adaptive=False)
    return result.values, result.residuals


def logsumexp_problem(seed: int = 0, n: int = 200, d: int = 50):
    generator = torch.Generator().manual_seed(seed)
    A = torch.randn(n, d, generator=generator, dtype=torch.float64)
    b = torch.randn(n, generator=generator, dtype=torch.float64)
    return A, b


def _first_below(gaps: torch.Tensor, threshold: float) -> int | None:
    hits = (gaps < threshold).nonzero().flatten()
    return int(hits[0]) if hits.numel() else None


def _curve(values: torch.Tensor) -> torch.Tensor:
    return values.clamp(min=1e-16, max=1e16)


def logsumexp_approximate_hessian(solve: Solve = _gns, seed: int = 0) -> ClaimResult:
    """GNS with the exact and the weighted Gauss-Newton Hessian vs gradient descent on LogSumExp.

    Pass: ``solve`` with the exact Hessian and with the Gauss-Newton approximation each reach
    f - f* < 1e-8 within 100 outer iterations, and the approximate run needs at least 10x fewer
    iterations to 1e-8 than gradient descent needs to 1e-4.
    """
    from gradhub_gns.hessians import logsumexp_gauss_newton
    from gradhub_gns.newton import gradient_method
    from gradhub_gns.problems import logsumexp

    with single_thread():
        A, b = logsumexp_problem(seed)
        fn = logsumexp(A, b, MU)
        x0 = torch.zeros(A.shape[1], dtype=torch.float64)
        f_star = _gns(fn, x0, None, 200)[0].min()
        exact, exact_norms = solve(fn, x0, None, MAX_OUTER)
        approximate, approx_norms = solve(fn, x0, logsumexp_gauss_newton(A, b, MU), MAX_OUTER)
        _, gd_values, gd_norms = gradient_method(fn, x0, max_iter=GD_ITERATIONS)
        plain, plain_norms = _plain_newton(fn, x0, None, 30)
        exact, approximate, gd, plain = exact - f_star, approximate - f_star, gd_values - f_star, plain - f_star

    exact_hit, approx_hit = _first_below(exact, GAP), _first_below(approximate, GAP)
    gd_hit, gd_hit_tight = _first_below(gd, GD_GAP), _first_below(gd, GAP)
    missing = float(GD_ITERATIONS + 1)
    speedup = (gd_hit if gd_hit is not None else missing) / max(approx_hit or missing, 1)
    passed = exact_hit is not None and approx_hit is not None and gd_hit is not None and speedup >= SPEEDUP
    measured = {
        "gns_exact_iterations_to_1e-8": float(exact_hit) if exact_hit is not None else float("nan"),
        "gns_gauss_newton_iterations_to_1e-8": float(approx_hit) if approx_hit is not None else float("nan"),
        "gd_iterations_to_1e-4": float(gd_hit) if gd_hit is not None else float("nan"),
        "gd_iterations_to_1e-8": float(gd_hit_tight) if gd_hit_tight is not None else float("nan"),
        "speedup_vs_gd": speedup,
        "plain_newton_gap_after_30": float(plain[-1]),
    }
    iterations = torch.arange
    figures = [
        LinePlot(
            title="LogSumExp (200 x 50, mu = 0.05): f(x_k) - f*",
            series=[
                Series("GNS, exact Hessian", iterations(exact.numel()), _curve(exact)),
                Series("GNS, weighted Gauss-Newton", iterations(approximate.numel()), _curve(approximate)),
                Series("gradient method (adaptive L)", iterations(gd.numel()), _curve(gd), style="dashed"),
                Series("plain Newton (lambda = 0)", iterations(plain.numel()), _curve(plain), style="points"),
            ],
            xlabel="outer iteration",
            ylabel="f - f*",
            xscale="symlog",
            yscale="log",
            vlines=[(float(MAX_OUTER), "100 iterations")],
        ),
        LinePlot(
            title="LogSumExp: gradient norm ||grad f(x_k)||",
            series=[
                Series("GNS, exact Hessian", iterations(exact_norms.numel()), _curve(exact_norms)),
                Series("GNS, weighted Gauss-Newton", iterations(approx_norms.numel()), _curve(approx_norms)),
                Series("gradient method (adaptive L)", iterations(gd_norms.numel()), _curve(gd_norms), style="dashed"),
                Series(
                    "plain Newton (lambda = 0)", iterations(plain_norms.numel()), _curve(plain_norms), style="points"
                ),
            ],
            xlabel="outer iteration",
            xscale="symlog",
            ylabel="||grad f(x_k)||",
            yscale="log",
        ),
    ]
    details = (
        f"f* = {float(f_star):.12f}\n"
        f"iterations to f - f* < 1e-8: GNS exact {exact_hit}, GNS Gauss-Newton {approx_hit}, GD {gd_hit_tight}\n"
        f"GD to 1e-4: {gd_hit}; plain Newton after 30 iterations: f - f* = {float(plain[-1]):.3g}"
    )
    return ClaimResult(
        claim=(
            "Gradient-regularised Newton with adaptive search converges globally and fast with the exact and "
            "with an approximate (weighted Gauss-Newton) Hessian, far ahead of gradient descent"
        ),
        criterion=(
            "on LogSumExp (A 200x50, mu=0.05, x0=0): exact and Gauss-Newton GNS reach f-f* < 1e-8 within "
            "100 outer iterations, and Gauss-Newton GNS needs >= 10x fewer iterations (to 1e-8) than "
            "gradient descent needs to 1e-4"
        ),
        measured=measured,
        passed=passed,
        details=details,
        figures=figures,
    )
