"""Plain conjugate gradient (Hestenes & Stiefel 1952), the DCDM paper's baseline, batched over right-hand sides.

Paper (where it is the baseline): "A Deep Conjugate Direction Method for Iteratively
Solving Linear Systems", Ayano Kaneda, Osman Akar, Jingyu Chen, Victoria Kala, David Hyde,
Joseph Teran, ICML 2023, arXiv:2205.10763. Official code: https://github.com/ayano721/2023_DCDM
(``lib/conjugate_gradient.py``, ``cg_normal``).

Textbook CG: ``alpha_k = r^T r / p^T A p``, ``x += alpha p``, ``r -= alpha A p``,
``p = r + (r_new^T r_new / r^T r) p``. The official ``cg_normal`` recomputes ``r = b - A x``
every iteration (``recompute_residual=True`` here); the default is the textbook recurrence.
``tol`` is relative to ``||r_0||`` as for :func:`gradhub_dcdm.dcdm.dcdm` (the official
``cg_normal`` uses an absolute tolerance; the paper compares relative residuals).
Each right-hand side of a batch has its own alpha and beta and is frozen once converged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import validate_hyperparameters
from gradhub.kinds.solver import SolverResult
from gradhub.progress import ProgressCallback, tracker
from gradhub_dcdm import CGHyperparameters
from gradhub_dcdm.operators import LinearSystem, MatrixLike, reject_unknown

METHOD = "cg"


@torch.no_grad()
def cg(
    A: MatrixLike,
    b: Tensor,
    x0: Tensor | None = None,
    *,
    tol: float = 1e-6,
    max_iter: int = 1000,
    recompute_residual: bool = False,
    dtype: str | torch.dtype | None = None,
    progress: ProgressCallback | None = None,
    **unknown: Any,
) -> SolverResult:
    """Solve ``A x = b`` (A SPD; dense, ``torch.sparse_csr`` or a matvec callable) by conjugate gradient.

    ``b`` is (n,) or a batch (B, n). The result's ``residuals`` are ``max_b ||r_k|| / ||r_0||``.
    """
    reject_unknown(METHOD, CGHyperparameters, unknown)
    params = validate_hyperparameters(
        METHOD,
        CGHyperparameters,
        dict(
            tol=tol,
            max_iter=max_iter,
            recompute_residual=recompute_residual,
            dtype=str(dtype).removeprefix("torch.") if isinstance(dtype, torch.dtype) else dtype,
        ),
    )
    system = LinearSystem(METHOD, A, b, x0, params["dtype"])
    return _iterate(system, params, progress)


def _iterate(system: LinearSystem, params: dict[str, Any], progress: ProgressCallback | None) -> SolverResult:
    tol, max_iter = params["tol"], params["max_iter"]
    apply_a, rhs = system.operator, system.rhs
    x = system.initial.clone()
    r = rhs - apply_a(x)
    initial_norm = r.norm(dim=-1)
    safe_initial = torch.where(initial_norm > 0, initial_norm, torch.ones_like(initial_norm))
    relative = initial_norm / safe_initial
    active = (relative >= tol) & (initial_norm > 0)
    history = [relative.max()]
    p = r.clone()
    rr = (r * r).sum(-1)
    iterations = 0
    any_active = bool(active.any())
    with tracker(progress, total=max_iter, task=METHOD) as bar:
        while any_active and iterations < max_iter:
            image = apply_a(p)
            curvature = (p * image).sum(-1)
            bad_curvature = active & ~(curvature > 0)
            step = torch.where(active & (curvature > 0), rr / torch.where(curvature > 0, curvature, 1.0), 0.0)
            x = x + step.unsqueeze(-1) * p
            r = rhs - apply_a(x) if params["recompute_residual"] else r - step.unsqueeze(-1) * image
            rr_new = (r * r).sum(-1)
            ratio = torch.where(active & (rr > 0), rr_new / torch.where(rr > 0, rr, 1.0), 0.0)
            p = torch.where(active.unsqueeze(-1), r + ratio.unsqueeze(-1) * p, p)
            rr = torch.where(active, rr_new, rr)
            relative = r.norm(dim=-1) / safe_initial
            active = active & (relative >= tol)
            iterations += 1
            history.append(relative.max())
            bar.update(relative_residual=history[-1])
            any_active, nonpositive = torch.stack([active.any(), bad_curvature.any()]).tolist()
            if nonpositive:
                worst = curvature[bad_curvature].min().item()
                raise UnsupportedInputError(
                    METHOD,
                    "A",
                    f"a matrix with p^T A p = {worst:.3g} <= 0 at iteration {iterations}",
                    "A must be symmetric positive definite",
                )
    residuals = torch.stack(history)
    converged = bool((residuals[-1] < tol).item()) or bool((initial_norm == 0).all().item())
    return SolverResult(system.output(x), converged, iterations, residuals)
