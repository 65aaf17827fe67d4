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

A single right-hand side (b of shape (n,)) takes its own loop: matrix-vector products, updates
in place into preallocated vectors, and dot products as (1, n) x (n,) products (``torch.mv``,
which stays on one thread for a vector where ``torch.dot`` wakes a thread pool). On the CPU its
scalars (``p^T A p``, ``r^T r``) are read to the host as they are computed, as scipy's ``cg``
does (two reads of host memory, no device sync); on an accelerator they stay on the device and
one read per iteration fetches the residual and the curvature together
(:func:`gradhub.kernels.host_formulation` chooses).

By default (``fused=None``) and with ``fused=True`` each iteration of a single right-hand side
with a dense or CSR ``A`` in float32/float64 on the CPU is one call of the hand-written kernel in
``csrc/cg.cpp`` (the product and its curvature in one pass over A, the updates of x, r and r^T r
in a second, p in a third; small systems on the calling thread, large ones on torch's threads; a
dense A is read by its upper triangle, each entry used for row i and column i, half the memory
traffic of a general product; see that file). It computes the same recurrence with dot products
accumulated in float64, so it agrees with the unfused path to round-off. It is compiled at first
use, once per machine (:func:`gradhub.kernels.native.load`, about 25 s on two cores); where it
cannot be (no compiler), ``fused=None`` runs the unfused path quietly and ``fused=True`` warns
once. ``fused=False`` always runs the unfused path, which also runs for batches, callables,
``recompute_residual=True`` and accelerators.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gradhub.errors import UnsupportedInputError
from gradhub.kernels import host_formulation, native
from gradhub.kinds.solver import Iterate, solver
from gradhub_dcdm import CG
from gradhub_dcdm.operators import SOLVE_DTYPES, LinearSystem, MatrixLike


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
    fused: bool | None,
) -> Iterator[Iterate]:
    """Solve ``A x = b`` (A SPD; dense, ``torch.sparse_csr`` or a matvec callable) by conjugate gradient.

    ``b`` is (n,) or a batch (B, n). The result's ``residuals`` are ``max_b ||r_k|| / ||r_0||``.
    """
    system = LinearSystem(CG.name, A, b, x0, dtype)
    if system.unbatched:
        kernels = _fused_kernels(system, warn=fused is True) if fused is not False and not recompute_residual else None
        if kernels is not None:
            yield from _one_rhs_fused(system, kernels)
        else:
            one = _one_rhs_on_host if host_formulation(system.device) else _one_rhs_on_device
            yield from one(system, recompute_residual)
    else:
        yield from _batch(system, tol, recompute_residual)


FUSED_SOURCE = Path(__file__).with_name("csrc") / "cg.cpp"
FUSED_GRAIN = 1 << 16
"""Multiply-adds per block of rows: a system with fewer runs on the calling thread (no pool woken)."""


def _fused_kernels(system: LinearSystem, *, warn: bool = True) -> Any | None:
    """The compiled kernel library when ``system`` is one the fused kernel takes, else None (``warn``: with a
    warning where the kernel cannot be compiled)."""
    matrix = system.operator.matrix
    if system.operator.callable or not host_formulation(system.device) or system.dtype not in SOLVE_DTYPES:
        return None
    if matrix.layout not in (torch.strided, torch.sparse_csr):
        return None
    return native.load("dcdm_cg", [FUSED_SOURCE], method=CG.name, fallback="the unfused iteration", warn=warn)


def _one_rhs_fused(system: LinearSystem, kernels: Any) -> Iterator[Iterate]:
    """One right-hand side, one kernel call per iteration (on the CPU, unless ``fused=False``)."""
    operator, b = system.operator, system.rhs[0]
    matrix = operator.matrix
    if matrix.layout == torch.sparse_csr:
        crow, col, values = matrix.crow_indices(), matrix.col_indices(), matrix.values()
        step, operands = kernels.cg_csr_step, (crow.contiguous(), col.contiguous(), values.contiguous())
    else:
        # A symmetric A's transpose holds the same matrix: a transposed view is read as it lies, not copied
        rows = matrix if matrix.is_contiguous() or not matrix.mT.is_contiguous() else matrix.mT
        step, operands = kernels.cg_dense_step, (rows.contiguous(),)
    x = system.initial[0].clone(memory_format=torch.contiguous_format)
    r = (b - operator.vector(x)).contiguous()
    rr = torch.mv(r.unsqueeze(0), r).item()
    norm = math.sqrt(rr)
    scale = norm if norm > 0 else 1.0
    p, image = r.clone(), torch.empty_like(r)
    solution = system.output(x)
    yield Iterate(solution, norm / scale)
    for iteration in itertools.count(1):
        curvature, rr = step(*operands, x, r, p, image, rr, FUSED_GRAIN)
        if not curvature > 0:  # also NaN; the kernel left x, r and p as they were
            raise _breakdown(curvature, iteration)
        yield Iterate(solution, math.sqrt(rr) / scale)


def _breakdown(curvature: float, iteration: int) -> UnsupportedInputError:
    return UnsupportedInputError(
        CG.name,
        "A",
        f"a matrix with p^T A p = {curvature:.3g} <= 0 at iteration {iteration}",
        "A must be symmetric positive definite",
    )


def _one_rhs_on_host(system: LinearSystem, recompute_residual: bool) -> Iterator[Iterate]:
    """One right-hand side, scalars read to the host (the CPU formulation)."""
    operator, b = system.operator, system.rhs[0]
    x = system.initial[0].clone()
    r = b - operator.vector(x)  # also for x_0 = 0: a callable A's non-finite product shows at iteration 0
    image = torch.empty_like(b)  # A p
    rr = torch.mv(r.unsqueeze(0), r).item()  # r^T r
    norm = math.sqrt(rr)
    scale = norm if norm > 0 else 1.0  # r_0 = 0: solved already (relative residual 0)
    p = r.clone()
    p_row, r_row = p.unsqueeze(0), r.unsqueeze(0)  # dot products as (1, n) x (n,) products
    solution = system.output(x)  # a view: x is updated in place
    yield Iterate(solution, norm / scale)
    for iteration in itertools.count(1):
        image = operator.vector(p, out=image)
        curvature = torch.mv(p_row, image).item()
        if not curvature > 0:  # also NaN
            raise _breakdown(curvature, iteration)
        step = rr / curvature
        x.add_(p, alpha=step)
        if recompute_residual:
            torch.sub(b, operator.vector(x), out=r)
        else:
            r.add_(image, alpha=-step)
        rr_new = torch.mv(r_row, r).item()
        ratio = rr_new / rr if rr > 0 else 0.0
        rr = rr_new
        torch.add(r, p, alpha=ratio, out=p)  # p = r + ratio p
        yield Iterate(solution, math.sqrt(rr) / scale)


def _one_rhs_on_device(system: LinearSystem, recompute_residual: bool) -> Iterator[Iterate]:
    """One right-hand side, scalars kept on the device: one host read per iteration (the accelerator formulation)."""
    operator, b = system.operator, system.rhs[0]
    x = system.initial[0].clone()
    r = b - operator.vector(x)
    image = torch.empty_like(b)
    # Two slots [r^T r, p^T A p], alternating between iterations, so that the previous r^T r stays readable.
    slots = b.new_empty(2, 2)
    rr = slots[0, :1]  # iteration 1 writes slot 1
    torch.mv(r.unsqueeze(0), r, out=rr)
    norm = math.sqrt(rr.item())
    scale = norm if norm > 0 else 1.0
    p = r.clone()
    p_row, r_row = p.unsqueeze(0), r.unsqueeze(0)
    solution = system.output(x)
    yield Iterate(solution, norm / scale)
    for iteration in itertools.count(1):
        slot = slots[iteration % 2]
        rr_new, curvature = slot[:1], slot[1:]
        image = operator.vector(p, out=image)
        torch.mv(p_row, image, out=curvature)
        step = rr / curvature  # a non-positive curvature raises below, after this iteration's read
        x.addcmul_(step, p)
        if recompute_residual:
            torch.sub(b, operator.vector(x), out=r)
        else:
            r.addcmul_(step, image, value=-1)
        torch.mv(r_row, r, out=rr_new)
        ratio = torch.where(rr > 0, rr_new / rr, 0.0)
        rr = rr_new
        torch.addcmul(r, ratio, p, out=p)  # p = r + ratio p
        squared_norm, curvature_value = slot.tolist()  # the one host read: residual and curvature together
        if not curvature_value > 0:
            raise _breakdown(curvature_value, iteration)
        yield Iterate(solution, math.sqrt(squared_norm) / scale)


def _batch(system: LinearSystem, tol: float, recompute_residual: bool) -> Iterator[Iterate]:
    """A batch (B, n) of right-hand sides, each with its own step sizes, frozen once it has converged.

    Bit-identical to gradhub-dcdm 0.4.0 (products ``step * p`` rounded before they are added, no
    fused multiply-add), with the redundant operations gone.
    """
    apply_a, rhs = system.operator, system.rhs
    x = system.initial.clone()
    r = rhs - apply_a(x)
    initial_norm = torch.linalg.vector_norm(r, dim=-1)
    scale = torch.where(initial_norm > 0, initial_norm, 1.0)  # r_0 = 0: solved already
    relative = (initial_norm / scale).double()  # float64, as the frame compares it with tol
    active = relative > tol  # a right-hand side is frozen once ||r_k|| <= tol ||r_0||
    p = r.clone()
    rr = torch.linalg.vecdot(r, r)
    solution = system.output(x)  # a view: x is updated in place
    yield Iterate(solution, relative.max())
    for iteration in itertools.count(1):
        image = apply_a(p)
        curvature = torch.linalg.vecdot(p, image)
        positive = curvature > 0
        bad_curvature = active & ~positive
        step = torch.where(active & positive, rr / curvature, 0.0).unsqueeze(-1)
        x.add_(step * p)
        if recompute_residual:
            r = rhs - apply_a(x)
        else:
            r.sub_(step * image)
        rr_new = torch.linalg.vecdot(r, r)
        ratio = torch.where(active & (rr > 0), rr_new / rr, 0.0).unsqueeze(-1)
        p = torch.where(active.unsqueeze(-1), r + ratio * p, p)
        rr = torch.where(active, rr_new, rr)
        relative = (torch.linalg.vector_norm(r, dim=-1) / scale).double()
        active &= relative > tol
        # One host sync per iteration: the residual and the breakdown flag together.
        residual, nonpositive = torch.stack([relative.max(), bad_curvature.any().double()]).tolist()
        if nonpositive:
            raise _breakdown(curvature[bad_curvature].min().item(), iteration)
        yield Iterate(solution, residual)
