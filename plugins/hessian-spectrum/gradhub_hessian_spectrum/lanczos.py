"""Lanczos with full reorthogonalisation, and stochastic Lanczos quadrature (SLQ).

Paper: "Empirical Analysis of the Hessian of Over-Parametrized Neural Networks", Sagun,
Evci, Guney, Dauphin, Bottou, 2017, arXiv:1706.04454; no official code. The spectra of
large Hessians there come from Lanczos on Hessian-vector products; the smoothed density
is stochastic Lanczos quadrature (Ubaru, Chen & Saad, SIAM J. Matrix Anal. Appl. 2017;
Ghorbani, Krishnan & Xiao, arXiv:1901.10159), as in PyHessian's ``hessian.density``
(github.com/amirgholami/PyHessian, ``pyhessian/hessian.py``).

Differences from PyHessian: the Lanczos basis is kept and reorthogonalised in float64
(twice, classical Gram-Schmidt) whatever the dtype of the matrix-vector products; several
start vectors run as one batch (one vectorised matrix-vector product per step); a
breakdown (an invariant subspace found) restarts with a fresh random vector orthogonal to
the basis, decided on the device without a host sync; the kernel width is relative to the
spectrum's extent and the density is not renormalised numerically, so its integral
checks the quadrature weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from gradhub.kinds.inputs import require_generator
from gradhub.progress import ProgressCallback, tracker

__all__ = ["gaussian_density", "lanczos", "rademacher", "ritz_decomposition", "slq"]

BatchedMatvec = Callable[[Tensor], Tensor]
"""(b, P) -> (b, P): one matrix-vector product per row."""


def rademacher(rows: int, dim: int, *, device: torch.device, generator: torch.Generator | None) -> Tensor:
    """``rows`` random +-1 vectors of unit norm, float64."""
    signs = torch.randint(0, 2, (rows, dim), device=device, generator=generator, dtype=torch.int8)
    return (2 * signs.double() - 1) / math.sqrt(dim)


def _project_out(basis: Tensor, vectors: Tensor) -> Tensor:
    """Remove from each row of ``vectors`` (b, P) its components along ``basis`` (b, j, P), twice."""
    for _ in range(2):  # "twice is enough" (Parlett, The Symmetric Eigenvalue Problem, §6.9)
        vectors = vectors - torch.einsum("bjp,bj->bp", basis, torch.einsum("bjp,bp->bj", basis, vectors))
    return vectors


def lanczos(
    matvec: BatchedMatvec,
    start: Tensor,
    steps: int,
    *,
    product_dtype: torch.dtype,
    generator: torch.Generator | None = None,
    progress: ProgressCallback | None = None,
    task: str = "lanczos",
) -> tuple[Tensor, Tensor]:
    """``steps`` Lanczos steps from each row of ``start`` (b, P): the tridiagonal ``(alphas, betas)``.

    Returns ``alphas`` (b, steps) and ``betas`` (b, steps - 1), float64. Each step: one
    batched product ``w = A q_j`` in ``product_dtype``, ``alpha_j = q_j . w``, ``w``
    orthogonalised against every previous ``q`` (full reorthogonalisation, float64),
    ``beta_j = |w|``, ``q_{j+1} = w / beta_j``. Where ``beta_j`` falls below
    100 eps(product_dtype) times the largest coefficient so far, the Krylov space is
    invariant: ``beta_j`` is set to 0 and ``q_{j+1}`` is a fresh random unit vector
    orthogonal to the basis, so every row yields ``steps`` Ritz values.
    """
    require_generator("lanczos", generator, start, "start")
    rows, dim = start.shape
    device = start.device
    basis = torch.zeros(rows, steps, dim, dtype=torch.float64, device=device)
    alphas = torch.zeros(rows, steps, dtype=torch.float64, device=device)
    betas = torch.zeros(rows, max(steps - 1, 0), dtype=torch.float64, device=device)
    scale = torch.zeros(rows, dtype=torch.float64, device=device)
    tolerance = 100 * torch.finfo(product_dtype).eps
    vector = start.double()
    with tracker(progress, total=steps, task=task) as bar:
        for step in range(steps):
            basis[:, step] = vector
            product = matvec(vector.to(product_dtype)).double()
            alpha = (vector * product).sum(-1)
            alphas[:, step] = alpha
            scale = torch.maximum(scale, alpha.abs())
            if step == steps - 1:
                bar.update(alpha=alpha[0])
                break
            residual = _project_out(basis[:, : step + 1], product)
            beta = torch.linalg.vector_norm(residual, dim=-1)
            scale = torch.maximum(scale, beta)
            broken = beta <= tolerance * scale
            fresh = _project_out(
                basis[:, : step + 1],
                torch.randn(rows, dim, dtype=torch.float64, device=device, generator=generator),
            )
            fresh = fresh / torch.linalg.vector_norm(fresh, dim=-1, keepdim=True)
            vector = torch.where(broken[:, None], fresh, residual / beta.clamp_min(1e-300)[:, None])
            betas[:, step] = torch.where(broken, torch.zeros_like(beta), beta)
            bar.update(alpha=alpha[0], beta=beta[0])
    return alphas, betas


def ritz_decomposition(alphas: Tensor, betas: Tensor) -> tuple[Tensor, Tensor]:
    """Eigen-decomposition of the tridiagonal matrices T (b, m, m): Ritz values ascending, eigenvectors."""
    tridiagonal = torch.diag_embed(alphas) + torch.diag_embed(betas, 1) + torch.diag_embed(betas, -1)
    return torch.linalg.eigh(tridiagonal)


def slq(
    matvec: BatchedMatvec,
    dim: int,
    *,
    n_probes: int,
    m: int,
    device: torch.device,
    product_dtype: torch.dtype,
    generator: torch.Generator | None = None,
    progress: ProgressCallback | None = None,
    task: str = "slq",
) -> tuple[Tensor, Tensor]:
    """Stochastic Lanczos quadrature: nodes and weights (n_probes, m), float64.

    For a unit start vector v, ``v^T f(A) v ~= sum_j w_j f(theta_j)`` with theta_j the
    Ritz values of the m-step tridiagonal T and w_j the squared first components of its
    eigenvectors (Gauss quadrature; Golub & Meurant). With v a normalised Rademacher
    vector, ``E[v^T f(A) v] = tr f(A) / P``, so the averaged quadratures estimate the
    spectral measure ``(1/P) sum_i delta(lambda_i)``; each probe's weights sum to 1.
    """
    start = rademacher(n_probes, dim, device=device, generator=generator)
    alphas, betas = lanczos(
        matvec, start, m, product_dtype=product_dtype, generator=generator, progress=progress, task=task
    )
    nodes, vectors = ritz_decomposition(alphas, betas)
    return nodes, vectors[:, 0, :].square()


def gaussian_density(nodes: Tensor, weights: Tensor, grid: Tensor, sigma: float | Tensor) -> Tensor:
    """``(1/n_probes) sum_probes sum_j w_j N(t; theta_j, sigma^2)`` at every grid point t (vectorised)."""
    offsets = grid[:, None, None] - nodes[None]
    kernel = torch.exp(-0.5 * (offsets / sigma).square()) / (sigma * math.sqrt(2 * math.pi))
    return (kernel * weights[None]).sum(-1).mean(-1)
