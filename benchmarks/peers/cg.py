"""gradhub's ``cg`` (gradhub-dcdm) against ``scipy.sparse.linalg.cg``: one right-hand side, float64.

Systems: the 2-D 5-point Dirichlet Laplacian (``gradhub_dcdm.poisson_matrix``) on 64^2 and 256^2
grids, a torch sparse CSR tensor for gradhub and a scipy CSR array built from the same three
arrays for scipy; and a dense 2000 x 2000 SPD matrix ``Q diag(logspace(0, 4, n)) Q^T`` (condition
number 10^4, Q from the QR of a seeded Gaussian matrix, symmetrised exactly), a torch tensor for
gradhub and a numpy array for scipy. b is a seeded Gaussian vector, x_0 = 0 for both.

The same stopping rule. scipy 1.17's ``cg`` sets ``atol = max(atol, rtol * ||b||)`` and stops
at the top of an iteration when ``||r_k|| < atol`` (``_get_atol_rtol`` and the loop in
``scipy/sparse/linalg/_isolve/iterative.py``), r_k from the recurrence ``r -= alpha A p``.
gradhub's ``cg`` stops when ``||r_k|| <= tol ||r_0||`` with ``r_0 = b - A x_0``, r_k from the same
recurrence (``recompute_residual=False``, the default). With x_0 = 0 and atol = 0 the rules are
the same (r_0 = b; strict against non-strict differs only at equality), so ``tol = rtol``.
``maxiter`` is 10 n for both (scipy's default), far above what either needs.

Before timing, ``check`` runs scipy once more with a callback counting its iterations and requires gradhub's
``result.iterations`` to be the same count within 1 % (``ITERATIONS_AGREE``: the same count with the unfused
iteration, ``fused=False``; the default kernel sums in another order), both converged, each solution's true
residual ``||b - A x|| / ||b||`` at most 2 rtol, and the two solutions equal to 1e-6 relative (measured:
7e-16 at 64^2, 1e-15 at 256^2, 6e-10 dense, where the condition number 10^4 amplifies the rounding
differences between the two; they take the same iterates up to rounding). It prints the count and the
difference.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy
import scipy.sparse
import scipy.sparse.linalg
import torch
from gradhub_dcdm.operators import poisson_matrix
from kinds import Comparison

import gradhub

RTOL = 1e-6
SOLUTIONS_AGREE = 1e-6
ITERATIONS_AGREE = 0.01
"""Relative difference in iteration counts allowed: the kernel (the default on the CPU) accumulates its dot
products in float64 lanes in another order and reads a dense A by its upper triangle, which on the dense
system (condition number 10^4) can move the stopping iteration by one or two (725 against scipy's 726)."""


def _poisson(side: int) -> tuple[torch.Tensor, Any]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        matrix = poisson_matrix(side, 2, dtype=torch.float64)
    peer = scipy.sparse.csr_array(
        (matrix.values().numpy(), matrix.col_indices().numpy(), matrix.crow_indices().numpy()),
        shape=tuple(matrix.shape),
    )
    return matrix, peer


def _dense_spd(size: int, condition: float = 1e4, seed: int = 0) -> tuple[torch.Tensor, Any]:
    generator = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(size, size, generator=generator, dtype=torch.float64))
    spectrum = torch.logspace(0, float(np.log10(condition)), size, dtype=torch.float64)
    matrix = (basis * spectrum) @ basis.T
    matrix = (matrix + matrix.T) / 2
    return matrix, matrix.numpy().copy()


def _comparison(
    label: str, matrix: torch.Tensor, peer_matrix: Any, args: Any, repeats: int, fused: bool | None = None
) -> Comparison:
    size = matrix.shape[0]
    rhs = torch.randn(size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    peer_rhs = rhs.numpy().copy()
    device = torch.device(args.device)
    ours_matrix, ours_rhs = matrix.to(device), rhs.to(device)
    solve = gradhub.get("cg")
    maxiter = 10 * size

    def ours() -> Any:
        return solve(ours_matrix, ours_rhs, tol=RTOL, max_iter=maxiter, fused=fused)

    def peer() -> Any:
        return scipy.sparse.linalg.cg(peer_matrix, peer_rhs, rtol=RTOL, atol=0.0, maxiter=maxiter)

    def check(result: Any, peer_result: Any) -> None:
        solution, info = peer_result
        count = [0]

        def counted(_: Any) -> None:
            count[0] += 1

        scipy.sparse.linalg.cg(peer_matrix, peer_rhs, rtol=RTOL, atol=0.0, maxiter=maxiter, callback=counted)
        if not (result.converged and info == 0):
            raise AssertionError(f"{label}: converged: gradhub {result.converged}, scipy info {info}")
        if abs(result.iterations - count[0]) > ITERATIONS_AGREE * count[0]:
            raise AssertionError(f"{label}: gradhub took {result.iterations} iterations, scipy {count[0]}")
        ours_solution = result.solution.cpu().numpy()
        for name, x in (("gradhub", ours_solution), ("scipy", solution)):
            residual = np.linalg.norm(peer_rhs - peer_matrix @ x) / np.linalg.norm(peer_rhs)
            if residual > 2 * RTOL:
                raise AssertionError(f"{label}: {name}'s true relative residual {residual:.3g} > 2 rtol")
        difference = np.linalg.norm(ours_solution - solution) / np.linalg.norm(solution)
        if difference > SOLUTIONS_AGREE:
            raise AssertionError(f"{label}: solutions differ by {difference:.3g} (relative) > {SOLUTIONS_AGREE}")
        counts = (
            f"{count[0]} iterations each"
            if result.iterations == count[0]
            else (f"{result.iterations} iterations (gradhub) and {count[0]} (scipy)")
        )
        print(f"  {label}: {counts}, solutions differ by {difference:.2g} (relative)", flush=True)

    return Comparison(
        group="cg",
        name=f"cg{' fused=False' if fused is False else ''} vs scipy cg, {label}, float64, one b, rtol {RTOL:g}",
        ours=ours,
        peer=peer,
        check=check,
        peer_name=f"scipy {scipy.__version__}",
        repeats=repeats,
        sync=torch.cuda.synchronize if device.type == "cuda" else (lambda: None),
    )


def comparisons(args: Any) -> list[Comparison]:
    """Each system with the default (on the CPU: the kernel, ``csrc/cg.cpp``) and with ``fused=False`` (the
    unfused iteration of torch operations, what runs on an accelerator)."""
    systems = [
        ("2-D Poisson 64^2 (sparse CSR)", *_poisson(64), 10),
        ("2-D Poisson 256^2 (sparse CSR)", *_poisson(256), 3),
        ("dense SPD 2000x2000 (cond 1e4)", *_dense_spd(2000), 3),
    ]
    fused = [None, False] if torch.device(args.device).type == "cpu" else [None]
    return [
        _comparison(label, matrix, peer, args, repeats=repeats, fused=option)
        for label, matrix, peer, repeats in systems
        for option in fused
    ]
