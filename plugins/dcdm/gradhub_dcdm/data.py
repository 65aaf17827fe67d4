"""Training right-hand sides from Ritz vectors of A (paper §3.5; official ``src/datasetcreate.py``).

Paper: "A Deep Conjugate Direction Method for Iteratively Solving Linear Systems",
Ayano Kaneda, Osman Akar, Jingyu Chen, Victoria Kala, David Hyde, Joseph Teran, ICML 2023,
arXiv:2205.10763. Official code: https://github.com/ayano721/2023_DCDM.

Recipe, as ``datasetcreate.py`` runs it:

1. ``m`` Lanczos steps on ``A`` from the start vector ``A z``, z ~ N(0, I), *with* full
   reorthogonalisation (``lanczos_iteration_with_normalization_correction``);
2. Ritz pairs from the eigen-decomposition of the tridiagonal T (ascending Ritz values),
   Ritz vectors ``W^T Q_T``; those with Ritz value < 1e-8 are dropped (null space);
3. ``b = sum_i c_i q_i`` over the remaining vectors with ``c_i ~ N(0, 1)``, and
   ``c_i ~ 9 N(0, 1)`` for the first ``m/2 + theta`` (lowest) ones; ``b / ||b||``.

The low end of the spectrum, which CG resolves last, is over-represented. ``m`` is
capped at n (Lanczos cannot run more than n steps); reorthogonalisation runs twice per
step ("twice is enough") in float64, vectorised over the stored basis.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradhub.errors import UnsupportedInputError
from gradhub_dcdm.operators import MatrixLike, Operator, check_matrix, describe

METHOD = "ritz_rhs"


def lanczos(operator: Operator, start: Tensor, steps: int) -> tuple[Tensor, Tensor]:
    """Lanczos with full reorthogonalisation: the (k, n) orthonormal basis W and the k x k tridiagonal T."""
    size = start.numel()
    basis = start.new_zeros(steps, size)
    diagonal = start.new_zeros(steps)
    off_diagonal = start.new_zeros(steps)
    basis[0] = start / start.norm()
    count = steps
    for step in range(steps):
        w = operator(basis[step].unsqueeze(0))[0]
        diagonal[step] = basis[step] @ w
        if step == steps - 1:
            break
        known = basis[: step + 1]
        for _ in range(2):
            w = w - known.T @ (known @ w)
        norm = w.norm()
        # An invariant subspace: the Ritz pairs found so far are exact; stop there (official: tol 1e-10).
        if norm < 1e-10 * diagonal[: step + 1].abs().max():
            count = step + 1
            break
        off_diagonal[step] = norm
        basis[step + 1] = w / norm
    basis, diagonal, off_diagonal = basis[:count], diagonal[:count], off_diagonal[: count - 1]
    tridiagonal = torch.diag(diagonal) + torch.diag(off_diagonal, 1) + torch.diag(off_diagonal, -1)
    return basis, tridiagonal


def ritz_rhs(
    A: MatrixLike,
    n_samples: int,
    m: int = 10000,
    theta: int = 500,
    low_scale: float = 9.0,
    seed: int = 0,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """``n_samples`` unit-norm right-hand sides (n_samples, n) built from Ritz vectors of SPD ``A``.

    Args:
        A: dense or ``torch.sparse_csr`` (n, n), or a matvec callable (then pass n via a
            dense/CSR A or use ``device``/``dtype``; a callable must accept (n, 1) columns).
        n_samples: how many right-hand sides.
        m: Lanczos steps (official 10000), capped at n.
        theta: the first ``m/2 + theta`` Ritz vectors (lowest Ritz values) get coefficients
            scaled by ``low_scale`` (official theta=500, factor 9).
        seed: seeds a CPU ``torch.Generator`` for z and the coefficients.
        dtype, device: of the result; default A's (float64 and CPU for a callable).
    """
    size = check_matrix(METHOD, A)
    if size is None:
        raise UnsupportedInputError(
            METHOD, "A", describe(A), "ritz_rhs needs n: pass A as a dense or torch.sparse_csr tensor"
        )
    for name, value, low in (("n_samples", n_samples, 1), ("m", m, 2), ("theta", theta, 0), ("seed", seed, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise UnsupportedInputError(METHOD, name, repr(value), f"{name} must be an integer >= {low}")
    if not isinstance(low_scale, (int, float)) or isinstance(low_scale, bool) or not low_scale > 0:
        raise UnsupportedInputError(METHOD, "low_scale", repr(low_scale), "low_scale must be a number > 0")
    device = torch.device(device) if device is not None else A.device
    dtype = dtype or A.dtype
    operator = Operator(METHOD, A.to(device), size, torch.float64, unbatched=False)
    generator = torch.Generator().manual_seed(seed)  # host draws, then moved: the same data on every device
    z = torch.randn(size, generator=generator, dtype=torch.float64, device="cpu").to(device)
    start = operator(z.unsqueeze(0))[0]
    steps = min(m, size)
    basis, tridiagonal = lanczos(operator, start, steps)
    ritz_values, coordinates = torch.linalg.eigh(tridiagonal)
    ritz_vectors = (basis.T @ coordinates).T
    kept = ritz_vectors[ritz_values >= 1e-8]
    coefficients = torch.randn(n_samples, kept.shape[0], generator=generator, dtype=torch.float64, device="cpu")
    coefficients = coefficients.to(device)
    low = min(steps // 2 + theta, kept.shape[0])
    coefficients[:, :low] *= low_scale
    rhs = coefficients @ kept
    return (rhs / rhs.norm(dim=-1, keepdim=True)).to(dtype)
