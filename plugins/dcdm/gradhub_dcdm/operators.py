"""Linear operators for DCDM and CG: dense, ``torch.sparse_csr`` or matvec callables; the Poisson matrix.

Paper: "A Deep Conjugate Direction Method for Iteratively Solving Linear Systems",
Ayano Kaneda, Osman Akar, Jingyu Chen, Victoria Kala, David Hyde, Joseph Teran, ICML 2023,
arXiv:2205.10763; official code https://github.com/ayano721/2023_DCDM (TensorFlow/SciPy).

The official code reads its matrices from files (fluid pressure Laplacians); here
:func:`poisson_matrix` builds the model problem of the claim check instead: the 5-point
(2-D) or 7-point (3-D) Laplacian with homogeneous Dirichlet conditions on an N^d grid of
interior nodes, unscaled (2d on the diagonal, -1 to each neighbour; the scale of A changes
neither DCDM's nor CG's iterates). Nodes are numbered row-major, so a vector reshaped to
(N, N[, N]) is the grid the network sees.

Conventions shared by every function taking an operator ``A``:

* a dense (n, n) tensor or a ``torch.sparse_csr`` (n, n) tensor: products are ``A @ X``;
* a callable: it is called with the vectors to multiply as the *columns* of an (n, B)
  matrix, or with one (n,) vector when the right-hand side is a single vector, and must
  return a tensor of the same shape (``lambda v: M @ v`` works for both).

Vectors are kept as rows of a (B, n) batch inside the solvers; :class:`Operator` turns a
batch of rows into the batch of their products.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from gradhub.errors import UnsupportedInputError
from gradhub.kinds.inputs import require_finite

MatrixLike = Tensor | Callable[[Tensor], Tensor]

SOLVE_DTYPES = (torch.float32, torch.float64)


class Operator:
    """``A`` applied to a batch of row vectors: ``operator(X)`` is ``(A @ X.T).T`` for X of shape (B, n)."""

    def __init__(self, method: str, matrix: MatrixLike, size: int, dtype: torch.dtype, unbatched: bool) -> None:
        self.method = method
        self.size = size
        self.unbatched = unbatched
        self.callable = not isinstance(matrix, Tensor)
        self.matrix = matrix if self.callable else matrix.to(dtype)

    def __call__(self, rows: Tensor) -> Tensor:
        if not self.callable:
            return (self.matrix @ rows.T).T
        columns = rows[0] if self.unbatched else rows.T
        products = self.matrix(columns)
        if not isinstance(products, Tensor) or products.shape != columns.shape:
            shape = tuple(products.shape) if isinstance(products, Tensor) else type(products).__name__
            raise UnsupportedInputError(
                self.method,
                "A (callable)",
                f"it returned {shape} for an input of shape {tuple(columns.shape)}",
                "a matvec callable must return a tensor shaped like its input",
            )
        products = products.to(rows.dtype)
        return products.unsqueeze(0) if self.unbatched else products.T


def describe(value: Any) -> str:
    if isinstance(value, Tensor):
        layout = "" if value.layout == torch.strided else f" {value.layout}"
        return f"tensor of shape {tuple(value.shape)} ({value.dtype}{layout}, {value.device})"
    return type(value).__name__


def check_matrix(method: str, matrix: Any, parameter: str = "A") -> int | None:
    """Validate a dense/CSR matrix (square, floating, 2-D); return its size, or None for a callable."""
    if isinstance(matrix, Tensor):
        if matrix.layout not in (torch.strided, torch.sparse_csr):
            raise UnsupportedInputError(
                method,
                parameter,
                describe(matrix),
                "A must be dense (strided) or torch.sparse_csr; use .to_sparse_csr()",
            )
        if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
            raise UnsupportedInputError(
                method, parameter, describe(matrix), "A must be a square (n, n) matrix (DCDM/CG need SPD A)"
            )
        if not matrix.dtype.is_floating_point:
            raise UnsupportedInputError(
                method, parameter, describe(matrix), "A must be a real floating-point tensor (float32 or float64)"
            )
        return int(matrix.shape[0])
    if callable(matrix):
        return None
    raise UnsupportedInputError(
        method, parameter, describe(matrix), "A must be a dense or torch.sparse_csr tensor, or a matvec callable"
    )


def check_symmetric(method: str, matrix: Tensor) -> None:
    """A dense A must be symmetric (the methods need SPD A); sparse and callable A are checked during the solve."""
    if matrix.layout != torch.strided:
        return
    scale = matrix.abs().max()
    if not torch.allclose(
        matrix, matrix.T, rtol=0, atol=float(1e-6 * scale if matrix.dtype == torch.float32 else 1e-12 * scale)
    ):
        asymmetry = (matrix - matrix.T).abs().max().item()
        raise UnsupportedInputError(
            method,
            "A",
            f"a non-symmetric matrix (max |A - A^T| = {asymmetry:.3g})",
            "A must be symmetric positive definite",
        )


def solve_dtype(method: str, matrix: Any, rhs: Tensor, dtype: Any) -> torch.dtype:
    """The precision the iteration runs in: ``dtype`` if given, else the common dtype of A and b."""
    if dtype is not None:
        resolved = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        if resolved not in SOLVE_DTYPES:
            raise UnsupportedInputError(
                method, "dtype", repr(dtype), "dtype must be torch.float32, torch.float64 or None"
            )
        return resolved
    if not rhs.dtype.is_floating_point:
        raise UnsupportedInputError(method, "b", describe(rhs), "b must be a real floating-point tensor")
    if isinstance(matrix, Tensor) and matrix.dtype != rhs.dtype:
        raise UnsupportedInputError(
            method,
            "dtype",
            f"A is {matrix.dtype} but b is {rhs.dtype}",
            "give A and b one dtype, or pass dtype=torch.float64 (or float32) to solve in that precision",
        )
    if rhs.dtype not in SOLVE_DTYPES:
        raise UnsupportedInputError(
            method,
            "dtype",
            f"b is {rhs.dtype}",
            "the iteration runs in float32 or float64; pass dtype=torch.float32 (or float64) to cast A and b",
        )
    return rhs.dtype


def require_all_finite(method: str, **tensors: Tensor) -> None:
    """No NaN or infinity in ``tensors`` (a sparse CSR one: its stored values), or an error naming the first bad one.

    One host read for all of them. A callable A cannot be checked: its non-finite products make a
    non-finite residual, which stops the solver frame with ``converged=False``.
    """
    values = {
        (f"{name} (sparse CSR, stored)" if tensor.layout == torch.sparse_csr else name): (
            tensor.values() if tensor.layout == torch.sparse_csr else tensor
        )
        for name, tensor in tensors.items()
    }
    finite = torch.stack([torch.isfinite(value).all() for value in values.values()]).tolist()
    for (name, value), ok in zip(values.items(), finite):
        if not ok:
            require_finite(method, name, value)


def check_device(method: str, what: str, tensor: Tensor, device: torch.device) -> None:
    if tensor.device != device:
        raise UnsupportedInputError(
            method,
            f"{what} device",
            f"{what} is on {tensor.device} but b is on {device}",
            "put A, b, x0 and the model on one device",
        )


def as_rows(method: str, rhs: Any, size: int | None, grid: tuple[int, ...] | None) -> tuple[Tensor, bool, int]:
    """``b`` as a (B, n) batch of rows; also whether it was a single vector, and n.

    Accepted shapes: (n,) or (B, n); with ``grid`` also grid-shaped ``grid`` or (B, *grid).
    """
    if not isinstance(rhs, Tensor) or rhs.layout != torch.strided:
        raise UnsupportedInputError(method, "b", describe(rhs), "b must be a dense tensor of shape (n,) or (B, n)")
    if grid is not None:
        cells = 1
        for extent in grid:
            cells *= extent
        if size is not None and cells != size:
            raise UnsupportedInputError(
                method, "grid", repr(grid), f"the grid must have n = {size} cells (A is {size} x {size})"
            )
        if tuple(rhs.shape) == tuple(grid):
            return rhs.reshape(1, cells), True, cells
        if rhs.dim() == len(grid) + 1 and tuple(rhs.shape[1:]) == tuple(grid):
            return rhs.reshape(rhs.shape[0], cells), False, cells
        size = cells
    if rhs.dim() not in (1, 2) or rhs.shape[-1] == 0 or (size is not None and rhs.shape[-1] != size):
        wanted = f"n = {size}" if size is not None else "n"
        grid_text = f", {tuple(grid)} or (B, *{tuple(grid)})" if grid is not None else ""
        raise UnsupportedInputError(
            method, "b", describe(rhs), f"b must have shape (n,) or (B, n) with {wanted}{grid_text}"
        )
    if rhs.dim() == 1:
        return rhs.unsqueeze(0), True, int(rhs.shape[0])
    if rhs.shape[0] == 0:
        raise UnsupportedInputError(method, "b", describe(rhs), "a batch of right-hand sides must not be empty")
    return rhs, False, int(rhs.shape[1])


def poisson_matrix(
    n: int,
    dim: int = 2,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    layout: str = "csr",
) -> Tensor:
    """The (n^dim, n^dim) 5-point (dim=2) / 7-point (dim=3) Dirichlet Laplacian, sparse CSR or dense.

    ``2 dim`` on the diagonal and -1 between grid neighbours (row-major numbering); SPD with
    eigenvalues ``sum_i 4 sin^2(pi k_i / (2 (n + 1)))``, k_i = 1..n, so its condition number
    grows like n^2 and CG's iteration count like n.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise UnsupportedInputError("poisson_matrix", "n", repr(n), "n must be an integer >= 1 (nodes per side)")
    if dim not in (2, 3):
        raise UnsupportedInputError("poisson_matrix", "dim", repr(dim), "dim must be 2 or 3")
    if layout not in ("csr", "dense"):
        raise UnsupportedInputError("poisson_matrix", "layout", repr(layout), "layout must be 'csr' or 'dense'")
    size = n**dim
    index = torch.arange(size, device=device).reshape((n,) * dim)
    rows = [index.reshape(-1)]
    cols = [index.reshape(-1)]
    values = [torch.full((size,), 2.0 * dim, dtype=dtype, device=device)]
    for axis in range(dim):
        low = index.narrow(axis, 0, n - 1).reshape(-1)
        high = index.narrow(axis, 1, n - 1).reshape(-1)
        rows += [low, high]
        cols += [high, low]
        values += [torch.full((low.numel(),), -1.0, dtype=dtype, device=device)] * 2
    indices = torch.stack([torch.cat(rows), torch.cat(cols)])
    matrix = torch.sparse_coo_tensor(
        indices, torch.cat(values), (size, size), device=device, check_invariants=False
    ).coalesce()
    if layout == "dense":
        return matrix.to_dense()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return matrix.to_sparse_csr()


class LinearSystem:
    """A validated problem ``A x = b`` as (B, n) rows in the solve dtype, and how to shape the answer back."""

    def __init__(
        self,
        method: str,
        matrix: Any,
        rhs: Any,
        initial: Any,
        dtype: Any,
        grid: tuple[int, ...] | None = None,
    ) -> None:
        size = check_matrix(method, matrix)
        rows, self.unbatched, size = as_rows(method, rhs, size, grid)
        self.shape = tuple(rhs.shape)
        self.device = rhs.device
        self.dtype = solve_dtype(method, matrix, rhs, dtype)
        if isinstance(matrix, Tensor):
            check_device(method, "A", matrix, self.device)
        self.size = size
        self.operator = Operator(method, matrix, size, self.dtype, self.unbatched)
        self.rhs = rows.to(self.dtype)
        if initial is None:
            self.initial = torch.zeros_like(self.rhs)
        else:
            if not isinstance(initial, Tensor) or initial.layout != torch.strided:
                raise UnsupportedInputError(
                    method, "x0", describe(initial), "x0 must be None or a dense tensor shaped like b"
                )
            check_device(method, "x0", initial, self.device)
            if tuple(initial.shape) != self.shape or not initial.dtype.is_floating_point:
                raise UnsupportedInputError(
                    method, "x0", describe(initial), f"x0 must be a real floating tensor shaped like b {self.shape}"
                )
            self.initial = initial.reshape(self.rhs.shape).to(self.dtype)
        # In the solve dtype: what the iteration uses (a cast can overflow to inf).
        operands = {"b": self.rhs} | ({} if initial is None else {"x0": self.initial})
        if isinstance(matrix, Tensor):
            operands["A"] = self.operator.matrix
        require_all_finite(method, **operands)
        if isinstance(matrix, Tensor):
            check_symmetric(method, matrix)

    def output(self, rows: Tensor) -> Tensor:
        """Rows shaped like the original b."""
        return rows.reshape(self.shape)
