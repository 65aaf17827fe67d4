"""Plug-and-play solvers with a learned proximal network as the prior's prox (paper Sec. 4, App. C).

Paper: "What's in a Prior? Learned Proximal Networks for Inverse Problems", Zhenghan Fang, Sam Buchanan,
Jeremias Sulam, ICLR 2024, arXiv:2310.14344. Official code:
https://github.com/ZhenghanFang/learned-proximal-networks (``lpn/utils/admm.py``, scico-based ADMM).

For min_x 0.5 ||A x - b||^2 + R_theta(x), with f = f_theta = prox_{R_theta} an LPN (any callable prox works):

    PnP-PGD:   x_{k+1} = f(x_k - eta A^T (A x_k - b))
    PnP-ADMM:  x_{k+1} = argmin_x 0.5 ||A x - b||^2 + (rho / 2) ||x - z_k + u_k||^2
                       = (A^T A + rho I)^{-1} (A^T b + rho (z_k - u_k))        (Cholesky, factored once)
               z_{k+1} = f(x_{k+1} + u_k)
               u_{k+1} = u_k + x_{k+1} - z_{k+1}

Because f is an exact prox (of a possibly nonconvex R_theta), these iterate a well-defined objective; the
paper gives convergence conditions (Thm. 4.1-4.2). Residuals (absolute, L2 per sample, max over the batch):
PGD's is the fixed-point residual ``||T(x_k) - x_k||`` of the returned iterate (T the PGD map, evaluated one
step ahead); ADMM's is ``max(||x_k - z_k||, ||z_k - z_{k-1}||)`` (before the first iteration,
``||x_1 - z_0||``), and ADMM returns z (the prox's output, where R_theta is defined).

What differs from the official code: the official ADMM runs scico's solver for a fixed number of iterations;
here the data step is a dense closed form (``A`` a matrix) and both loops stop at ``tol``. PGD also takes
``A`` as a callable with its adjoint ``At``. Objective traces (with :func:`gradhub_lpn.prior.lpn_prior`) are
left to the caller: each costs an inversion per iterate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from gradhub.errors import UnsupportedInputError
from gradhub.kinds.inputs import require_finite, require_same_device, require_tensor
from gradhub.kinds.solver import Iterate, solver
from gradhub_lpn import LPN_PNP_ADMM, LPN_PNP_PGD

Operator = Tensor | Callable[[Tensor], Tensor]


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)} ({value.dtype})"
    return type(value).__name__


def _apply_prox(method: str, prox: Callable[[Tensor], Tensor], v: Tensor) -> Tensor:
    out = prox(v)
    if not isinstance(out, Tensor) or out.shape != v.shape:
        raise UnsupportedInputError(
            method, "prox output", _describe(out), f"prox must map its input of shape {tuple(v.shape)} to that shape"
        )
    return out.detach()


def _norms(values: Tensor) -> Tensor:
    return values.reshape(values.shape[0], -1).norm(dim=1)


def _check_common(method: str, b: Tensor, prox: Any, x0: Tensor | None) -> None:
    require_tensor(method, "b", b, min_dim=2, what="(a batch of measurements, (B, m))")
    require_finite(method, "b", b)
    if not callable(prox):
        raise UnsupportedInputError(method, "prox", _describe(prox), "prox must be a callable (e.g. an LPN)")
    if x0 is not None:
        require_tensor(method, "x0", x0, min_dim=2)
        require_same_device(method, b=b, x0=x0)
        require_finite(method, "x0", x0)
        if x0.shape[0] != b.shape[0] or x0.dtype != b.dtype:
            raise UnsupportedInputError(
                method, "x0", _describe(x0), f"x0 must hold {b.shape[0]} samples in {b.dtype}, like b"
            )


def _check_matrix(method: str, A: Tensor, b: Tensor) -> None:
    require_tensor(method, "A", A, dim=2, what="(an (m, n) matrix)")
    require_same_device(method, A=A, b=b)
    if A.dtype != b.dtype:
        raise UnsupportedInputError(method, "A dtype", A.dtype, f"A must be {b.dtype} like b")
    if b.dim() != 2 or b.shape[1] != A.shape[0]:
        raise UnsupportedInputError(
            method, "b shape", tuple(b.shape), f"b must be (B, {A.shape[0]}) for A of shape {tuple(A.shape)}"
        )
    require_finite(method, "A", A)


@solver(LPN_PNP_PGD)
def pnp_pgd(
    b: Tensor,
    A: Operator,
    prox: Callable[[Tensor], Tensor],
    At: Callable[[Tensor], Tensor] | None = None,
    x0: Tensor | None = None,
    *,
    step: float,
    tol: float,
    max_iter: int,
) -> Iterator[Iterate]:
    """PnP proximal gradient for 0.5 ||A x - b||^2 + R(x), with ``prox`` = prox_R (an LPN).

    Args:
        b: (B, m) measurements (or (B, ...) with a callable ``A``).
        A: an (m, n) matrix acting on flattened samples, or a callable ``A(x)`` with its adjoint ``At``.
        prox: the learned prox, a callable on (B, ...) batches shaped like x (an LPN: (B, n)).
        At: the adjoint of a callable ``A`` (required then; unused for a matrix).
        x0: starting point (default 0, shaped like ``A^T b``).
        progress: optional callback; one update per iteration with the residual.
    """
    method = LPN_PNP_PGD.name
    _check_common(method, b, prox, x0)
    if isinstance(A, Tensor):
        _check_matrix(method, A, b)
        shape = x0.shape if x0 is not None else (b.shape[0], A.shape[1])
        if x0 is not None and x0[0].numel() != A.shape[1]:
            raise UnsupportedInputError(
                method, "x0 shape", tuple(x0.shape), f"x0 must hold {A.shape[1]} entries per sample"
            )

        def forward(x: Tensor) -> Tensor:
            return x.reshape(x.shape[0], -1) @ A.T

        def adjoint(r: Tensor) -> Tensor:
            return (r @ A).reshape(shape)
    elif callable(A):
        if not callable(At):
            raise UnsupportedInputError(method, "At", _describe(At), "a callable A needs its adjoint At (a callable)")
        forward, adjoint = A, At
        shape = x0.shape if x0 is not None else adjoint(b).shape
    else:
        raise UnsupportedInputError(method, "A", _describe(A), "A must be an (m, n) matrix or a callable")

    def pgd_map(x: Tensor) -> Tensor:
        residual = forward(x) - b
        if residual.shape != b.shape:
            raise UnsupportedInputError(
                method, "A (callable)", _describe(residual), f"A(x) must be shaped like b {tuple(b.shape)}"
            )
        return _apply_prox(method, prox, x - step * adjoint(residual))

    x = torch.zeros(shape, dtype=b.dtype, device=b.device) if x0 is None else x0.clone()
    following = pgd_map(x)
    yield Iterate(x, _norms(following - x).max())
    while True:
        x, following = following, pgd_map(following)
        yield Iterate(x, _norms(following - x).max())


@solver(LPN_PNP_ADMM)
def pnp_admm(
    b: Tensor,
    A: Tensor,
    prox: Callable[[Tensor], Tensor],
    x0: Tensor | None = None,
    *,
    rho: float,
    tol: float,
    max_iter: int,
) -> Iterator[Iterate]:
    """PnP-ADMM for 0.5 ||A x - b||^2 + R(x), with ``prox`` = prox_R (an LPN) and a dense ``A``.

    Args:
        b: (B, m) measurements.
        A: the (m, n) forward matrix; the data step solves (A^T A + rho I) x = A^T b + rho (z - u) by one
            Cholesky factorisation.
        prox: the learned prox, a callable on (B, n) batches (an LPN).
        x0: the starting z (default 0), (B, n).
        progress: optional callback; one update per iteration with the residual.

    Returns ``SolverResult`` with ``solution`` = z_k (B, n).
    """
    method = LPN_PNP_ADMM.name
    _check_common(method, b, prox, x0)
    if not isinstance(A, Tensor):
        raise UnsupportedInputError(
            method, "A", _describe(A), "A must be an (m, n) matrix (the data step is solved in closed form)"
        )
    _check_matrix(method, A, b)
    n = A.shape[1]
    if x0 is not None and tuple(x0.shape) != (b.shape[0], n):
        raise UnsupportedInputError(method, "x0 shape", tuple(x0.shape), f"x0 must be ({b.shape[0]}, {n})")
    factor = torch.linalg.cholesky(A.T @ A + rho * torch.eye(n, dtype=A.dtype, device=A.device))
    data = b @ A  # A^T b per sample

    def data_step(v: Tensor) -> Tensor:  # argmin 0.5||Ax - b||^2 + rho/2 ||x - v||^2
        return torch.cholesky_solve((data + rho * v).T, factor).T

    z = torch.zeros(b.shape[0], n, dtype=b.dtype, device=b.device) if x0 is None else x0.clone()
    u = torch.zeros_like(z)
    x = data_step(z - u)
    yield Iterate(z, _norms(x - z).max())
    while True:
        previous = z
        z = _apply_prox(method, prox, x + u)
        u = u + x - z
        residual = torch.maximum(_norms(x - z), _norms(z - previous)).max()
        yield Iterate(z, residual)
        x = data_step(z - u)
