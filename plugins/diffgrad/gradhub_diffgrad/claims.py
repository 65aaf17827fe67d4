"""Claim check for diffGrad: on the paper's synthetic function F1 it reaches the global minimum
where Adam, with the same settings, stops in the local one.

F1 (official ``diffGrad_analytical.ipynb``; paper Section IV-A, Fig. 2): ``f(x) = x^2 + 0.6x`` for
``x <= 0`` and ``x^2 - 0.4x`` for ``x > 0``; global minimum ``x = -0.3`` (``f = -0.09``), local
minimum ``x = 0.2`` (``f = -0.04``). A scalar starts at ``x0 = -1`` and takes 299 steps with
``betas = (0.95, 0.999)``, ``eps = 1e-8`` (the notebook's settings), in float64.

Calibration (this implementation, torch 2.13, float64): final x after 299 steps

=====  ===========  ========  ===========================
 lr    diffGrad     Adam      v1 bug (xi = 0.5 = Adam lr/2)
=====  ===========  ========  ===========================
0.10   -0.30007     0.20011   -0.30030
0.14   -0.300       0.200     -0.300
0.17   -0.300       0.200      0.200
0.18   -0.300       0.200      0.200
=====  ===========  ========  ===========================

diffGrad ends in the global basin for every lr in [0.05, 0.18] (at 0.19 it too overshoots);
Adam ends in the local one for every lr in [0.09, 0.19]. A single setting at lr = 0.1
does NOT catch the original code's aliasing bug (``xi = 0.5`` always, i.e. Adam with lr/2), which
also reaches -0.3 there; at lr = 0.17 and 0.18 halving the step is no longer enough and only the
friction coefficient's early ``xi > 0.5`` phase (large gradient changes while the step is large)
keeps diffGrad in the global basin. So the criterion runs the grid LEARNING_RATES, which both the
v1 bug and plain Adam fail. Tolerance 0.01 on the final x (the iterates settle to ~1e-3 after
~150 steps; the two minima are 0.5 apart).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from gradhub.claims import ClaimResult, single_thread
from gradhub.figures import LinePlot, Series
from gradhub_diffgrad import DIFFGRAD

OptimizerFactory = Callable[[Iterable[torch.Tensor], float], torch.optim.Optimizer]
"""Builds an optimizer from parameters and a learning rate (betas and eps are the notebook's)."""

GLOBAL_MINIMUM = -0.3
LOCAL_MINIMUM = 0.2
START = -1.0
STEPS = 299
BETAS = (0.95, 0.999)
EPS = 1e-8
LEARNING_RATES = (0.10, 0.14, 0.17, 0.18)
TOLERANCE = 0.01
OURS = DIFFGRAD.name
"""diffGrad's label in the measurements and figures."""


def f1(x: torch.Tensor) -> torch.Tensor:
    """The paper's synthetic function F1: two quadratics joined at 0, global minimum at -0.3."""
    return torch.where(x <= 0, x * x + 0.6 * x, x * x - 0.4 * x)


def _diffgrad(params: Iterable[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    from gradhub_diffgrad.diffgrad import DiffGrad

    return DiffGrad(params, lr=lr, betas=BETAS, eps=EPS)


def _adam(params: Iterable[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, betas=BETAS, eps=EPS)


def trajectory(make_optimizer: OptimizerFactory, lr: float, steps: int = STEPS, start: float = START) -> torch.Tensor:
    """The iterates x_0..x_steps of minimising F1 from ``start`` (float64, one element)."""
    x = torch.nn.Parameter(torch.tensor(start, dtype=torch.float64))
    optimizer = make_optimizer([x], lr)
    iterates = [x.detach().clone()]
    for _ in range(steps):
        optimizer.zero_grad()
        f1(x).backward()
        optimizer.step()
        iterates.append(x.detach().clone())
    return torch.stack(iterates)


def synthetic_function_f1(
    diffgrad: OptimizerFactory = _diffgrad,
    adam: OptimizerFactory = _adam,
    learning_rates: tuple[float, ...] = LEARNING_RATES,
) -> ClaimResult:
    """diffGrad ends at F1's global minimum at every lr of the grid; Adam at the local one."""
    measured: dict[str, float] = {}
    curves: dict[tuple[str, float], torch.Tensor] = {}
    passed = True
    with single_thread():
        for lr in learning_rates:
            for label, factory, target in ((OURS, diffgrad, GLOBAL_MINIMUM), ("adam", adam, LOCAL_MINIMUM)):
                iterates = trajectory(factory, lr)
                curves[label, lr] = iterates
                final = float(iterates[-1])
                measured[f"{label}_final_x_lr{lr:g}"] = final
                passed = passed and abs(final - target) < TOLERANCE
    steps = list(range(STEPS + 1))
    figures: list = [
        LinePlot(
            title=f"F1 iterates x_t from x0 = {START} (global min -0.3, local min 0.2), lr = {lr:g}",
            series=[Series(label, steps, curves[label, lr]) for label in (OURS, "adam")],
            xlabel="step",
            ylabel="x",
        )
        for lr in (learning_rates[0], learning_rates[-1])
    ]
    figures.append(
        LinePlot(
            title=f"F1 loss f(x_t) - f(global min), lr = {learning_rates[0]:g}",
            series=[
                Series(label, steps, f1(curves[label, learning_rates[0]]) + 0.09 + 1e-12) for label in (OURS, "adam")
            ],
            xlabel="step",
            ylabel="f(x_t) + 0.09",
            yscale="log",
        )
    )
    grid = torch.linspace(-1.0, 0.6, 161, dtype=torch.float64)
    figures.append(
        LinePlot(
            title="F1(x)",
            series=[Series("F1", grid, f1(grid))],
            xlabel="x",
            ylabel="f(x)",
            vlines=[(GLOBAL_MINIMUM, "global min"), (LOCAL_MINIMUM, "local min")],
        )
    )
    rows = "\n".join(
        f"lr={lr:<5g} {OURS} x={measured[f'{OURS}_final_x_lr{lr:g}']:+.5f}  "
        f"adam x={measured[f'adam_final_x_lr{lr:g}']:+.5f}"
        for lr in learning_rates
    )
    return ClaimResult(
        claim=(
            "On the synthetic function F1 (paper Sec. IV-A) diffGrad reaches the global minimum x = -0.3 "
            "while Adam with the same settings overshoots into the local minimum x = 0.2."
        ),
        criterion=(
            f"after {STEPS} steps from x0 = {START} (betas {BETAS}, eps {EPS}), for every lr in {learning_rates}: "
            f"|x_diffgrad + 0.3| < {TOLERANCE} and |x_adam - 0.2| < {TOLERANCE}"
        ),
        measured=measured,
        passed=passed,
        details=rows,
        figures=figures,
    )
