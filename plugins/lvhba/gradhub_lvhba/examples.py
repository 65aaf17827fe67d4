"""Seeded example for the conformance suite: a two-coordinate coupled-constraint toy that LV-HBA solves fast.

It is the claim's toy (:mod:`gradhub_lvhba.problems`) with n = 2 and c = min(a, b): then the bilevel
solution (x*, y*) = (b, min(a, b)) also minimises F (F = 0 there), so no penalty bias slows the
last digits and the run converges linearly (about 150 iterations to tol = 1e-6 in float64; the
constraint y <= x is active where a > b, and the multipliers move there).
"""

from __future__ import annotations

from typing import Any

import torch

from gradhub.kinds.solver import SolverExample
from gradhub_lvhba.problems import CoupledToy, coupled_toy

HPARAMS = {"alpha": 0.8, "beta": 1.0, "eta": 0.8, "c0": 1.0, "p": 0.1, "lam_max": 100.0, "max_iter": 300}


def small_coupled_toy(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> SolverExample:
    """LV-HBA on the consistent two-coordinate toy from x0 = y0 = 0; residual: max |(x, y) - (x*, y*)|.

    Measured (float64, seeds 0-5): 104-145 iterations to tol = 1e-6, the returned (x, y) within
    3e-7..8e-7 of the solution (the suite allows 10 tol = 1e-5). float32 uses tol = 1e-4.
    """
    data = coupled_toy((seed,), n=2, device=device, dtype=dtype)
    a, b = data.a[0], data.b[0]
    toy = CoupledToy(a=a, b=b, c=torch.minimum(a, b))
    x_star, y_star = toy.solution()
    x0 = torch.zeros_like(a)

    def residual(solution: tuple[torch.Tensor, torch.Tensor]) -> float:
        x, y = solution
        return max((x - x_star).abs().max().item(), (y - y_star).abs().max().item())

    tol = 1e-6 if dtype == torch.float64 else 1e-4
    return SolverExample(
        args=(toy.F, toy.f, toy.g, x0, x0.clone()),
        hparams={**HPARAMS, "proj_C": toy.proj_C, "tol": tol},
        residual=residual,
    )
