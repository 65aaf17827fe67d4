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

import itertools
from collections.abc import Iterator

import torch
from torch import Tensor

from gradhub.errors import UnsupportedInputError
from gradhub.kinds.solver import Iterate, solver
from gradhub_dcdm import CG
from gradhub_dcdm.operators import LinearSystem, MatrixLike


@solver(CG)
def cg(
    A: MatrixLike,
    b: Tensor,
    x0: Tensor | None = None,
    *,
    tol: float,
    max_iter: int,
    recompute_residual: bool,
    dtype: str | torch.dtype | None,
) -> Iterator[Iterate]:
    """Solve ``A x = b`` (A SPD; dense, ``torch.sparse_csr`` or a matvec callable) by conjugate gradient.

    ``b`` is (n,) or a batch (B, n). The result's ``residuals`` are ``max_b ||r_k|| / ||r_0||``.
    """
    system = LinearSystem(CG.name, A, b, x0, dtype)
    apply_a, rhs = system.operator, system.rhs
    x = system.initial.clone()
    r = rhs - apply_a(x)
    initial_norm = r.norm(dim=-1)
    scale = torch.where(initial_norm > 0, initial_norm, torch.ones_like(initial_norm))  # r_0 = 0: solved already
    relative = (initial_norm / scale).double()  # float64, as the frame compares it with tol
    active = relative > tol  # a right-hand side is frozen once ||r_k|| <= tol ||r_0||
    p = r.clone()
    rr = (r * r).sum(-1)
    yield Iterate(system.output(x), relative.max())
    for iteration in itertools.count(1):
        image = apply_a(p)
        curvature = (p * image).sum(-1)
        bad_curvature = active & ~(curvature > 0)
        step = torch.where(active & (curvature > 0), rr / torch.where(curvature > 0, curvature, 1.0), 0.0)
        x = x + step.unsqueeze(-1) * p
        r = rhs - apply_a(x) if recompute_residual else r - step.unsqueeze(-1) * image
        rr_new = (r * r).sum(-1)
        ratio = torch.where(active & (rr > 0), rr_new / torch.where(rr > 0, rr, 1.0), 0.0)
        p = torch.where(active.unsqueeze(-1), r + ratio.unsqueeze(-1) * p, p)
        rr = torch.where(active, rr_new, rr)
        relative = (r.norm(dim=-1) / scale).double()
        active = active & (relative > tol)
        # One host sync per iteration: the residual and the breakdown flag together.
        residual, nonpositive = torch.stack([relative.max(), bad_curvature.any().double()]).tolist()
        if nonpositive:
            worst = curvature[bad_curvature].min().item()
            raise UnsupportedInputError(
                CG.name,
                "A",
                f"a matrix with p^T A p = {worst:.3g} <= 0 at iteration {iteration}",
                "A must be symmetric positive definite",
            )
        yield Iterate(system.output(x), residual)
