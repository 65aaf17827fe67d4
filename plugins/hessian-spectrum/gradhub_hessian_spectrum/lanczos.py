"""Lanczos with full reorthogonalisation, and stochastic Lanczos quadrature (SLQ).

Paper: "Empirical Analysis of the Hessian of Over-Parametrized Neural Networks", Sagun,
Evci, Guney, Dauphin, Bottou, 2017, arXiv:1706.04454; no official code. The spectra of
large Hessians there come from Lanczos on Hessian-vector products; the smoothed density
is stochastic Lanczos quadrature (Ubaru, Chen & Saad, SIAM J. Matrix Anal. Appl. 2017;
Ghorbani, Krishnan & Xiao, arXiv:1901.10159), as in PyHessian's ``hessian.density``
(github.com/amirgholami/PyHessian, ``pyhessian/hessian.py``).

Differences from PyHessian: the whole Lanczos basis is kept and every new vector
reorthogonalised against it (classical Gram-Schmidt against the stacked basis, a second
pass only where the first may not suffice; PyHessian's loop does one modified pass), in
the products' precision but at least float32; several start vectors run
as one batch (one vectorised matrix-vector product per step); a breakdown (an invariant
subspace found) restarts with a fresh random vector orthogonal to the basis, drawn only
then; the kernel width is relative to the spectrum's extent and the density is not
renormalised numerically, so its integral checks the quadrature weights.
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


def _reorthogonalise_(basis: Tensor, vectors: Tensor) -> None:
    """One classical Gram-Schmidt pass, in place: remove from each row of ``vectors`` (b, P) its components
    along ``basis`` (b, j, P), as two batched row-vector products against the stacked basis (``c = w B^T``,
    ``w -= c B``).

    Row vectors against the (j, P) rows keep both products on BLAS's fast gemv path for any batch size
    (``basis @ w`` as a (P, 1) column is several times slower for b > 1).
    """
    rows = vectors.unsqueeze(1)
    rows.baddbmm_(torch.bmm(rows, basis.transpose(1, 2)), basis, alpha=-1)


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
    batched product ``w = A q_j`` in ``product_dtype``, ``alpha_j = q_j . w``, the three-term
    recurrence ``w - alpha_j q_j - beta_{j-1} q_{j-1}``, then full reorthogonalisation against
    every previous ``q`` (one classical Gram-Schmidt pass, two matrix-vector products against
    the stacked basis), ``beta_j = |w|``, ``q_{j+1} = w / beta_j``. The basis is kept in
    ``promote_types(product_dtype, float32)``: float64 products keep a float64 basis, float32
    products (which carry float32 rounding whatever the basis) a float32 one, half the memory
    traffic of the reorthogonalisation.

    A second pass is made where the first may have left too much of the basis in ``w``: a pass
    over ``w`` leaves about ``eps(basis) |w| / |w'|`` of it in the result ``w'`` (Daniel, Gragg,
    Kaufman & Stewart 1976; Parlett, The Symmetric Eigenvalue Problem, §6.9: "twice is
    enough"), so the test is ``|w'| < kappa |w|`` with ``kappa = min(1/sqrt(2), 100 eps(basis) /
    eps(product_dtype))``: the classic DGKS test when the basis has the products' precision, a
    looser one for half-precision products against a float32 basis. After the three-term
    recurrence ``w`` holds little of the basis, so a second pass is rare (none on the benchmark
    problems; near a breakdown, in the tests).

    Where ``beta_j`` falls below 100 eps(product_dtype) times the largest coefficient so far,
    the Krylov space is invariant: ``beta_j`` is set to 0 and ``q_{j+1}`` is a fresh random unit
    vector (drawn from ``generator`` then, and only then) orthogonalised against the basis, so
    every row yields ``steps`` Ritz values. Each step reads its scalars (alpha_j, |w| before and
    after reorthogonalisation) to the host once, together, and decides both tests there.
    """
    require_generator("lanczos", generator, start, "start")
    rows, dim = start.shape
    device = start.device
    work = torch.promote_types(product_dtype, torch.float32)  # the basis: float32, or float64 for float64 products
    # every buffer is made once: a fresh P-sized tensor per step costs page faults on first touch
    basis = torch.empty(rows, steps, dim, dtype=work, device=device)  # row j written at step j
    basis[:, 0] = start
    copied = work != product_dtype
    residual = torch.empty(rows, dim, dtype=work, device=device) if copied else None
    low = torch.empty(rows, dim, dtype=product_dtype, device=device) if copied else None
    tolerance = 100 * torch.finfo(product_dtype).eps
    kappa = min(2**-0.5, 100 * torch.finfo(work).eps / torch.finfo(product_dtype).eps)
    # The scalars (alpha_j, the norms, beta_j) are read to the host once per step, together, and the
    # bookkeeping (the scale, the DGKS test, the breakdown test, the coefficients) is done there in floats:
    # a dozen tensor operations a step instead of thirty.
    alpha_list = [[0.0] * steps for _ in range(rows)]
    beta_list = [[0.0] * max(steps - 1, 0) for _ in range(rows)]
    scale = [0.0] * rows
    previous_beta: Tensor | None = None  # beta_{j-1} per row, in the basis dtype, on the device
    with tracker(progress, total=steps, task=task) as bar:
        for step in range(steps):
            vector = basis[:, step]
            if copied:
                residual.copy_(matvec(low.copy_(vector)))
            else:
                residual = matvec(vector)
            alpha = torch.bmm(vector.unsqueeze(1), residual.unsqueeze(-1)).view(rows)
            if step == steps - 1:
                for row, value in enumerate(alpha.tolist()):
                    alpha_list[row][step] = value
                bar.update(alpha=alpha_list[0][step])
                break
            # the three-term recurrence w -= beta_{j-1} q_{j-1} + alpha_j q_j as one product with the two rows
            recent = max(step - 1, 0)
            coefficients = torch.stack([previous_beta, alpha], -1) if previous_beta is not None else alpha[:, None]
            residual.unsqueeze(1).baddbmm_(coefficients.unsqueeze(1), basis[:, recent : step + 1], alpha=-1)
            recurrence_norm = torch.linalg.vector_norm(residual, dim=-1)
            _reorthogonalise_(basis[:, : step + 1], residual)
            beta = torch.linalg.vector_norm(residual, dim=-1)
            read = torch.stack([alpha, recurrence_norm, beta]).tolist()  # the step's one host read
            again = False
            for row in range(rows):
                alpha_list[row][step] = read[0][row]
                scale[row] = max(scale[row], abs(read[0][row]))
                again = again or read[2][row] < kappa * read[1][row]
            if again:
                _reorthogonalise_(basis[:, : step + 1], residual)
                beta = torch.linalg.vector_norm(residual, dim=-1)
                read[2] = beta.tolist()
            broken = []
            for row, value in enumerate(read[2]):
                if value <= tolerance * max(scale[row], value):  # also for value = 0
                    broken.append(row)
                else:
                    beta_list[row][step] = value
                scale[row] = max(scale[row], value)
            if rows == 1:
                torch.div(residual, max(read[2][0], 1e-300), out=basis[:, step + 1])
            else:
                torch.div(residual, beta.clamp_min(1e-300)[:, None], out=basis[:, step + 1])
            previous_beta = beta
            if broken:  # an invariant subspace: beta_j = 0 and a fresh vector, drawn only now
                index = torch.tensor(broken, device=device)
                previous_beta = beta.index_fill(0, index, 0.0)
                fresh = torch.randn(len(broken), dim, dtype=work, device=device, generator=generator)
                for _ in range(2):  # a random vector against the whole basis: twice is enough (ibid.)
                    _reorthogonalise_(basis[index, : step + 1], fresh)
                basis[index, step + 1] = fresh / torch.linalg.vector_norm(fresh, dim=-1, keepdim=True)
            bar.update(alpha=alpha_list[0][step], beta=read[2][0])
    alphas = torch.tensor(alpha_list, dtype=torch.float64, device=device).reshape(rows, steps)
    betas = torch.tensor(beta_list, dtype=torch.float64, device=device).reshape(rows, max(steps - 1, 0))
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
