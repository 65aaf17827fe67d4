"""DCDM: the Deep Conjugate Direction Method (Algorithm 1 of the paper), batched over right-hand sides.

Paper: "A Deep Conjugate Direction Method for Iteratively Solving Linear Systems",
Ayano Kaneda, Osman Akar, Jingyu Chen, Victoria Kala, David Hyde, Joseph Teran, ICML 2023,
arXiv:2205.10763. Official code: https://github.com/ayano721/2023_DCDM
(``lib/conjugate_gradient.py``, method ``dcdm``).

Algorithm 1 (paper §3.2), as the official ``dcdm`` runs it, for SPD ``A`` and ``x_0``:

    r_0 = b - A x_0
    for k = 1, 2, ...:
        q   = f(r_{k-1} / ||r_{k-1}||)                      # the model: an approximation of A^-1
        p_k = q - sum_{j = k-n_orth}^{k-1} (q^T A p_j / p_j^T A p_j) p_j
        alpha_k = p_k^T A p_k,   beta_k = p_k^T r_{k-1} / alpha_k   # exact line search in the A-norm
        x_k = x_{k-1} + beta_k p_k
        r_k = b - A x_k                                     # recomputed (official); or r_{k-1} - beta_k A p_k
        stop when ||r_k|| <= tol ||r_0||                      # official: strict <

Readings settled from the official code (``ConjugateGradientSparse.dcdm``):

* the A-orthogonalisation is *classical* Gram-Schmidt: both projection coefficients
  are computed from the model's original ``q`` (``q - p1 (q.Ap1)/alpha1 - p0 (q.Ap0)/alpha0``).
  The stored directions are mutually A-conjugate, so modified Gram-Schmidt (the
  official ``..._A_normal_general``) agrees up to round-off;
* ``tol`` is relative: the official loop stops when ``||r_k|| < tol * ||r_0||`` (strict; here
  ``<=``, the solver frame's rule: the two differ only when a residual equals ``tol`` exactly);
* the residual is recomputed as ``b - A x_k`` every iteration (one extra matvec);
  ``recompute_residual=False`` gives the recurrence of the ``_general`` variant;
* the model sees the unit-norm residual (``normalize_input``); its output scale does
  not matter (the step ``beta_k`` absorbs it).

What differs from the official code: any batch of right-hand sides is solved at once
(per-sample alpha, beta and stopping; a right-hand side that has converged is frozen);
``residuals`` in the result is the relative residual ``||r_k|| / ||r_0||`` (the maximum
over the batch), so that it is in the units of ``tol``; the iteration may run in float64
while the model runs in its own dtype; a non-positive curvature ``p^T A p <= 0`` raises
a gradhub error instead of producing NaN; ``n_orth`` is a parameter (official ``dcdm``:
2; ``n_orth=0`` is the un-orthogonalised ``..._withoutAouth`` ablation).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import validate_hyperparameters
from gradhub.kinds.solver import Iterate, SolverResult, solver
from gradhub_dcdm import DCDM as DCDM_SPEC
from gradhub_dcdm.operators import LinearSystem, MatrixLike, describe

Model = Callable[[Tensor], Tensor]


def model_dtype_and_device(model: Any) -> tuple[torch.dtype | None, torch.device | None]:
    """The dtype and device of a module's first floating parameter (None for plain callables)."""
    if isinstance(model, nn.Module):
        for tensor in (*model.parameters(), *model.buffers()):
            if tensor.is_floating_point():
                return tensor.dtype, tensor.device
    return None, None


def apply_model(
    model: Model, residuals: Tensor, grid: tuple[int, ...] | None, model_dtype: torch.dtype | None
) -> Tensor:
    """``model`` on a (B, n) batch: shaped (B, 1, *grid) when a grid is given, cast to the model's dtype and back."""
    inputs = residuals if grid is None else residuals.reshape(residuals.shape[0], 1, *grid)
    if model_dtype is not None:
        inputs = inputs.to(model_dtype)
    outputs = model(inputs)
    if not isinstance(outputs, Tensor) or outputs.numel() != residuals.numel():
        raise UnsupportedInputError(
            DCDM_SPEC.name,
            "model output",
            describe(outputs),
            f"the model must map its input of shape {tuple(inputs.shape)} to a tensor with as many entries",
        )
    if outputs.device != residuals.device:
        raise UnsupportedInputError(
            DCDM_SPEC.name,
            "model output device",
            f"{outputs.device}",
            f"the model must return tensors on {residuals.device}",
        )
    return outputs.reshape(residuals.shape).to(residuals.dtype)


def _rowwise_dot(first: Tensor, second: Tensor) -> Tensor:
    return (first * second).sum(-1)


@solver(DCDM_SPEC)
def dcdm(
    A: MatrixLike,
    b: Tensor,
    model: Model,
    x0: Tensor | None = None,
    *,
    tol: float,
    max_iter: int,
    n_orth: int,
    normalize_input: bool,
    recompute_residual: bool,
    grid: tuple[int, ...] | None,
    dtype: str | torch.dtype | None,
) -> Iterator[Iterate]:
    """Solve ``A x = b`` (A SPD) with search directions proposed by ``model`` (Algorithm 1).

    Args:
        A: dense or ``torch.sparse_csr`` (n, n) SPD matrix, or a matvec callable (see
            :mod:`gradhub_dcdm.operators` for the calling convention).
        b: (n,) or a batch (B, n); with ``grid`` also ``grid``-shaped or (B, *grid).
        model: a callable (a trained :class:`~gradhub_dcdm.network.DCDMNet`, or any function)
            mapping a (B, n) batch of residuals, or (B, 1, *grid) with ``grid``, to
            approximations of ``A^-1 r``; run without gradients, in its own dtype.
        x0: initial guess shaped like ``b`` (default zero).
        progress: optional callback; one update per iteration with the relative residual.

    Returns:
        ``SolverResult`` with the solution shaped like ``b`` (in the solve dtype),
        ``converged`` (every right-hand side reached ``tol``), ``iterations`` and
        ``residuals``: ``max_b ||r_k|| / ||r_0||`` for k = 0..iterations (1-D).
    """
    method = DCDM_SPEC.name
    if not callable(model):
        raise UnsupportedInputError(method, "model", describe(model), "model must be a callable (e.g. a DCDMNet)")
    system = LinearSystem(method, A, b, x0, dtype, grid)
    model_dtype, model_device = model_dtype_and_device(model)
    if model_device is not None and model_device != system.device:
        raise UnsupportedInputError(
            method,
            "model device",
            f"the model is on {model_device} but b is on {system.device}",
            "move the model to b's device",
        )
    apply_a, rhs = system.operator, system.rhs
    batch, size = rhs.shape
    x = system.initial.clone()
    r = rhs - apply_a(x)
    initial_norm = r.norm(dim=-1)
    # A right-hand side with r_0 = 0 is solved already: relative residual 0, never active.
    scale = torch.where(initial_norm > 0, initial_norm, torch.ones_like(initial_norm))
    relative = (initial_norm / scale).double()  # float64, as the frame compares it with tol
    active = relative > tol  # a right-hand side is frozen once ||r_k|| <= tol ||r_0||
    # The last n_orth directions p_j, their images A p_j and curvatures p_j^T A p_j (1 while empty).
    directions = rhs.new_zeros(n_orth, batch, size)
    images = rhs.new_zeros(n_orth, batch, size)
    curvatures = rhs.new_ones(n_orth, batch)
    yield Iterate(system.output(x), relative.max())
    for iteration in itertools.count(1):
        norms = r.norm(dim=-1, keepdim=True)
        inputs = r / torch.where(norms > 0, norms, torch.ones_like(norms)) if normalize_input else r
        q = apply_model(model, inputs, grid, model_dtype)  # Algorithm 1: q = f(r_{k-1} / ||r_{k-1}||)
        nonfinite_output = active & ~torch.isfinite(q).all(dim=-1)
        # Classical Gram-Schmidt in the A-inner product, coefficients from the original q (official dcdm).
        coefficients = torch.einsum("bn,jbn->jb", q, images) / curvatures
        p = q - torch.einsum("jb,jbn->bn", coefficients, directions)
        p = torch.where(active.unsqueeze(-1), p, torch.zeros_like(p))
        image = apply_a(p)
        curvature = _rowwise_dot(p, image)  # alpha_k = p_k^T A p_k
        zero_direction = active & (p.abs().amax(dim=-1) == 0)
        bad_curvature = active & ~zero_direction & ~(curvature > 0)
        safe_curvature = torch.where(active & (curvature > 0), curvature, torch.ones_like(curvature))
        step = torch.where(active, _rowwise_dot(p, r) / safe_curvature, torch.zeros_like(curvature))  # beta_k
        x = x + step.unsqueeze(-1) * p
        r = rhs - apply_a(x) if recompute_residual else r - step.unsqueeze(-1) * image
        if n_orth:
            directions = torch.cat([directions[1:], p.unsqueeze(0)])
            images = torch.cat([images[1:], image.unsqueeze(0)])
            curvatures = torch.cat([curvatures[1:], safe_curvature.unsqueeze(0)])
        relative = (r.norm(dim=-1) / scale).double()
        active = active & (relative > tol)
        # One host sync per iteration: the residual and the breakdown flags together.
        flags = torch.stack([nonfinite_output.any(), zero_direction.any(), bad_curvature.any()]).double()
        residual, nonfinite, zero, nonpositive = torch.cat([relative.max().unsqueeze(0), flags]).tolist()
        if nonfinite:
            raise UnsupportedInputError(
                method,
                "model output",
                f"non-finite values at iteration {iteration}",
                "the model must return finite tensors",
            )
        if nonpositive:
            worst = curvature[bad_curvature].min().item()
            raise UnsupportedInputError(
                method,
                "A",
                f"a matrix with p^T A p = {worst:.3g} <= 0 for the search direction of iteration {iteration}",
                "A must be symmetric positive definite (DCDM's step size p^T r / p^T A p needs p^T A p > 0)",
            )
        if zero:
            raise UnsupportedInputError(
                method,
                "model output",
                f"a direction with no component A-orthogonal to the last {n_orth} directions at iteration {iteration}",
                "the model must propose directions outside the span of the previous ones (DCDM breaks down)",
            )
        yield Iterate(system.output(x), residual)


class DCDM:
    """The object form ``DCDM(model, n_orth=2, tol=1e-6, max_iter=100).solve(A, b, x0=None)``.

    A thin wrapper over :func:`dcdm`, which is what ``gradhub.get`` returns for the method; the
    hyperparameters are checked here, when the object is built.
    """

    def __init__(self, model: Model, **hparams: Any) -> None:
        validate_hyperparameters(
            DCDM_SPEC.name, DCDM_SPEC.params, {k: v for k, v in hparams.items() if k != "progress"}
        )
        self.model = model
        self.hparams = hparams

    def solve(self, A: MatrixLike, b: Tensor, x0: Tensor | None = None) -> SolverResult:
        return dcdm(A, b, self.model, x0, **self.hparams)
