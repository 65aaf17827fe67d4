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
batch of rows into the batch of their products, and one (n,) vector into its matrix-vector
product (:meth:`Operator.vector`, what CG runs for a single right-hand side).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from gradhub.errors import UnsupportedInputError
from gradhub.kernels import host_formulation
from gradhub.kinds.inputs import require_finite

MatrixLike = Tensor | Callable[[Tensor], Tensor]

SOLVE_DTYPES = (torch.float32, torch.float64)


def compact_indices(matrix: Tensor) -> Tensor:
    """A sparse CSR ``matrix`` with int32 indices (sharing its values), when they fit; any other tensor unchanged.

    On the CPU torch hands sparse products to MKL, whose interface takes 32-bit indices: an int64
    CSR matrix has its indices converted on every product (at n = 64^2, 25 instead of 36 us per
    matrix-vector product on one thread; the products are bit-identical). Converted once here.
    """
    if matrix.layout != torch.sparse_csr or matrix.crow_indices().dtype == torch.int32:
        return matrix
    if max(matrix.shape[0], matrix.shape[1], matrix.values().numel()) >= 2**31:
        return matrix
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            matrix.crow_indices().to(torch.int32),
            matrix.col_indices().to(torch.int32),
            matrix.values(),
            matrix.shape,
            check_invariants=False,
        )


class Operator:
    """``A`` applied to a batch of row vectors (``operator(X)`` is ``(A @ X.T).T`` for X of shape (B, n)), or to one
    vector (``operator.vector(v)`` is ``A @ v``)."""

    def __init__(self, method: str, matrix: MatrixLike, size: int, dtype: torch.dtype, unbatched: bool) -> None:
        self.method = method
        self.size = size
        self.unbatched = unbatched
        self.callable = not isinstance(matrix, Tensor)
        self.matrix = matrix if self.callable else compact_indices(matrix.to(dtype))
        self.vector_matrix = self.matrix  # what :meth:`vector` multiplies by (see :meth:`symmetric`)

    def symmetric(self) -> None:
        """Declare A symmetric (checked): :meth:`vector` may then use whichever of A and A^T multiplies faster.

        On the CPU a dense A is applied as ``A^T v``: MKL's column-major matrix-vector product (a
        strided ``A^T`` is a column-major A) streams the matrix 15-20 % faster than the row-major one
        on the machines measured. For a matrix symmetric up to rounding the two products differ by
        rounding only.
        """
        if not self.callable and self.matrix.layout == torch.strided and host_formulation(self.matrix.device):
            self.vector_matrix = self.matrix.T

    def __call__(self, rows: Tensor) -> Tensor:
        if not self.callable:
            return (self.matrix @ rows.T).T
        columns = rows[0] if self.unbatched else rows.T
        products = self._called(columns)
        return products.unsqueeze(0) if self.unbatched else products.T

    def vector(self, vector: Tensor, out: Tensor | None = None) -> Tensor:
        """``A @ v`` for one (n,) vector, into ``out`` when given (a tensor A; a callable's result is returned).

        A matrix-vector product (``torch.mv``), where the (n, 1) matrix product of :meth:`__call__`
        costs up to twice as much (a sparse A).
        """
        if not self.callable:
            return torch.mv(self.vector_matrix, vector, out=out)
        return self._called(vector)

    def _called(self, columns: Tensor) -> Tensor:
        products = self.matrix(columns)
        if not isinstance(products, Tensor) or products.shape != columns.shape:
            shape = tuple(products.shape) if isinstance(products, Tensor) else type(products).__name__
            raise UnsupportedInputError(
                self.method,
                "A (callable)",
                f"it returned {shape} for an input of shape {tuple(columns.shape)}",
                "a matvec callable must return a tensor shaped like its input",
            )
        return products.to(columns.dtype)


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


SYMMETRY_PAIRS = 2
"""How many random pairs (u, v) :func:`check_symmetric` compares."""

SYMMETRY_SEED = 0


@functools.lru_cache(maxsize=4)
def _symmetry_vectors(size: int, device: torch.device) -> Tensor:
    """(size, 2 pairs) columns ``[u_1 .. u_k, v_1 .. v_k]``, uniform in [-1, 1], from a fixed seed (constants: cached).

    Drawn on the host and moved, so every device checks with the same vectors.
    """
    generator = torch.Generator().manual_seed(SYMMETRY_SEED)
    columns = torch.rand(size, 2 * SYMMETRY_PAIRS, generator=generator, dtype=torch.float64, device="cpu")
    return columns.mul_(2).sub_(1).to(device)


def check_symmetric(method: str, matrix: Tensor, total: float | None = None) -> None:
    """A tensor A (dense or sparse CSR) must be symmetric; a callable A is checked only by its curvature while solving.

    Randomised, at the cost of one product with a few columns and one pass over A's entries
    (the exact check ``A == A^T``, a transposed read of A and n^2 temporaries, cost 48-54 ms per
    call at n = 2000, dozens of matrix-vector products): for random u, v with entries in [-1, 1], a symmetric A has
    ``u^T (A v) = v^T (A u)`` up to rounding, and a non-symmetric one ``u^T (A - A^T) v``, a
    bilinear form in u and v that vanishes only on a set of probability zero. The vectors come
    from a fixed seed, so a given matrix is always accepted or always refused.

    Everything is computed in float64 (a float32 or half A is upcast exactly). Rounding bound: a
    product ``y = A v`` summed in any order has ``|fl(y) - y| <= g_n |A| |v|``, and a dot product
    ``|fl(u^T y) - u^T y| <= g_n |u|^T |y|``, with ``g_n = n e / (1 - n e)`` and e = 2^-53
    (Higham, *Accuracy and Stability of Numerical Algorithms*, section 3.1; FMA only lowers it).
    So each computed ``u^T A v`` is within ``(2 g_n + g_n^2) |u|^T |A| |v| <= (2 g_n + g_n^2) S``
    of the exact value, ``S = sum_ij |a_ij|`` (as ``|u|, |v| <= 1``), and the two sides of a
    symmetric A differ by at most ``2 (2 g_n + g_n^2) S < 4.1 n e S`` for any n below 10^13.
    The computed S is itself within a relative ``g_nnz`` (< 10^-3) of the true sum. A is refused
    only when the gap exceeds ``8 n e S``, twice that: a symmetric A is never refused, whatever
    the scale of its entries (float32 entries up to 3.4e38 stay far from float64's overflow; a
    float64 A so large that S or a product overflows is accepted, as it cannot be checked). What
    passes unnoticed is an asymmetry of the order of that rounding (``||A - A^T||`` around
    ``n e S``), which CG cannot tell from rounding either. ``total`` is S if the caller has it
    (float64 A: the finiteness check computes it).
    """
    size = matrix.shape[0]
    columns = _symmetry_vectors(size, matrix.device)
    products, computed = _products_in_float64(matrix, columns, total is None)
    # [v_i^T A u_i for each pair, then u_i^T A v_i]: each column against its partner's product.
    sides = (columns.roll(SYMMETRY_PAIRS, dims=1) * products).sum(0)
    *sides, computed = torch.cat([sides, computed.reshape(1)]).tolist()  # one host read
    total = computed if total is None else total
    gap = max(abs(first - second) for first, second in zip(sides[:SYMMETRY_PAIRS], sides[SYMMETRY_PAIRS:]))
    if gap > 8 * size * 2.0**-53 * total:  # False for NaN: a product that overflowed cannot be checked
        raise UnsupportedInputError(
            method,
            "A",
            f"a non-symmetric matrix (max |A - A^T| = {_max_asymmetry(matrix):.3g})",
            "A must be symmetric positive definite",
        )


def _products_in_float64(matrix: Tensor, columns: Tensor, with_total: bool = True) -> tuple[Tensor, Tensor]:
    """``A @ columns`` and ``sum |a_ij|`` (NaN unless ``with_total``) in float64; a float32 A is upcast exactly."""
    nothing = columns.new_full((), math.nan)
    if matrix.layout == torch.sparse_csr:
        values = matrix.values().to(torch.float64)
        total = torch.linalg.vector_norm(values, 1) if with_total else nothing
        if matrix.dtype == torch.float64:
            return matrix @ columns, total
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            upcast = torch.sparse_csr_tensor(
                matrix.crow_indices(), matrix.col_indices(), values, matrix.shape, check_invariants=False
            )
        return upcast @ columns, total
    if matrix.dtype == torch.float64:
        return matrix @ columns, torch.linalg.vector_norm(matrix, 1) if with_total else nothing
    # Row blocks of 2^17 entries: no float64 copy of the whole matrix.
    rows = max(1, 2**17 // matrix.shape[1])
    products = columns.new_empty(matrix.shape[0], columns.shape[1])
    total = columns.new_zeros(())
    for start in range(0, matrix.shape[0], rows):
        block = matrix[start : start + rows].to(torch.float64)
        torch.mm(block, columns, out=products[start : start + rows])
        total += torch.linalg.vector_norm(block, 1)
    return products, total


def _max_asymmetry(matrix: Tensor) -> float:
    """``max |A - A^T|`` (for the error message only)."""
    if matrix.layout == torch.sparse_csr:
        entries = matrix.to_sparse_coo().double()
        difference = (entries - entries.t()).coalesce().values()
        return difference.abs().max().item() if difference.numel() else 0.0
    return (matrix.double() - matrix.double().T).abs().max().item()


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


def require_all_finite(method: str, **tensors: Tensor) -> dict[str, float]:
    """No NaN or infinity in ``tensors`` (a sparse CSR one: its stored values), or an error naming the first bad one.

    Returns each tensor's ``sum |entries|`` (in its dtype), which is how it is checked: one pass and
    no temporary per tensor, one host read for all of them. A finite sum means finite entries; a
    non-finite one (a NaN or infinity, or a sum that overflowed) is examined entry by entry. A
    callable A cannot be checked: its non-finite products make a non-finite residual, which stops
    the solver frame with ``converged=False``.
    """
    values = {
        (f"{name} (sparse CSR, stored)" if tensor.layout == torch.sparse_csr else name): (
            tensor.values() if tensor.layout == torch.sparse_csr else tensor
        )
        for name, tensor in tensors.items()
    }
    sums = torch.stack([torch.linalg.vector_norm(value, 1).double() for value in values.values()]).tolist()
    for (name, value), total in zip(values.items(), sums):
        if not math.isfinite(total):
            require_finite(method, name, value)  # raises unless the entries are finite and only their sum overflowed
    return dict(zip(tensors, sums))


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
        sums = require_all_finite(method, **operands)
        if isinstance(matrix, Tensor):
            # The matrix the iteration uses, in the solve dtype; its sum of |a_ij| is the check's when in float64.
            total = sums["A"] if self.dtype == torch.float64 else None
            check_symmetric(method, self.operator.matrix, total)
            self.operator.symmetric()

    def output(self, rows: Tensor) -> Tensor:
        """Rows shaped like the original b."""
        return rows.reshape(self.shape)
