"""Plug-and-play PGD and ADMM: the LASSO with a soft-thresholding prox (checked by its KKT conditions), and
the two solvers agreeing on an LPN prox."""

from __future__ import annotations

import torch
from gradhub_lpn.examples import small_lpn
from gradhub_lpn.pnp import pnp_admm, pnp_pgd


def _problem(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    A = torch.randn(8, 5, generator=generator, dtype=torch.float64) / 3
    b = torch.randn(3, 8, generator=generator, dtype=torch.float64)
    return A, b


def soft(threshold: float):
    return lambda v: torch.sign(v) * (v.abs() - threshold).clamp(min=0)


def _kkt_violation(A: torch.Tensor, b: torch.Tensor, x: torch.Tensor, lam: float) -> float:
    """LASSO optimality 0 in A^T(Ax - b) + lam d||x||_1, measured entrywise."""
    gradient = (x @ A.T - b) @ A
    on = x != 0
    violation = torch.where(on, (gradient + lam * torch.sign(x)).abs(), (gradient.abs() - lam).clamp(min=0))
    return violation.max().item()


def test_lasso_by_both_solvers() -> None:
    """prox = soft-thresholding at tau: PGD (step eta) solves the LASSO with lam = tau / eta, ADMM (rho) with
    lam = rho tau; with rho = 1 / eta both find the same solution, which satisfies the KKT conditions."""
    A, b = _problem()
    eta, lam = 1 / torch.linalg.matrix_norm(A, ord=2).item() ** 2, 0.3
    pgd = pnp_pgd(b, A, soft(lam * eta), step=eta, tol=1e-12, max_iter=5000)
    admm = pnp_admm(b, A, soft(lam * eta), rho=1 / eta, tol=1e-12, max_iter=5000)
    assert pgd.converged and admm.converged
    assert _kkt_violation(A, b, pgd.solution, lam) < 1e-9
    assert _kkt_violation(A, b, admm.solution, lam) < 1e-9
    torch.testing.assert_close(pgd.solution, admm.solution, rtol=0, atol=1e-9)
    assert (pgd.solution == 0).any() and (pgd.solution != 0).any()  # a sparse, non-trivial solution


def test_wrong_threshold_fails_kkt() -> None:
    """Wrong variant: PGD with prox soft(lam) instead of soft(lam * eta) solves another problem."""
    A, b = _problem()
    eta, lam = 1 / torch.linalg.matrix_norm(A, ord=2).item() ** 2, 0.3
    wrong = pnp_pgd(b, A, soft(lam), step=eta, tol=1e-12, max_iter=5000)
    assert _kkt_violation(A, b, wrong.solution, lam) > 1e-2


def test_lpn_prox_fixed_point_shared() -> None:
    """With an LPN prox (strongly convex psi) PGD with step 1/rho and ADMM share the fixed point
    z = f(z - A^T (A z - b) / rho); both reach it, from a matrix or a callable A."""
    A, b = _problem(1)
    prox = small_lpn(5, "cpu", torch.float64, seed=3, hidden=6, layers=1, alpha=0.25)
    rho = 2.0
    pgd = pnp_pgd(b, A, prox, step=1 / rho, tol=1e-11, max_iter=500)
    admm = pnp_admm(b, A, prox, rho=rho, tol=1e-11, max_iter=500)
    assert pgd.converged and admm.converged
    torch.testing.assert_close(pgd.solution, admm.solution, rtol=0, atol=1e-9)
    with torch.no_grad():
        fixed = prox(pgd.solution - ((pgd.solution @ A.T - b) @ A) / rho)
    torch.testing.assert_close(fixed, pgd.solution, rtol=0, atol=1e-10)
    callable_a = pnp_pgd(b, lambda x: x @ A.T, prox, lambda r: r @ A, step=1 / rho, tol=1e-11, max_iter=500)
    torch.testing.assert_close(callable_a.solution, pgd.solution, rtol=0, atol=1e-12)
    assert pgd.residuals[-1] <= 1e-11 and (pgd.residuals[1:] <= pgd.residuals[:-1] * 1.0001).all()
