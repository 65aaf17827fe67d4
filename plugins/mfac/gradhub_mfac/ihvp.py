"""Inverse-Fisher vector products (IHVPs) with the M-FAC static and dynamic algorithms.

Paper: Elias Frantar, Eldar Kurtic, Dan Alistarh, "M-FAC: Efficient Matrix-Free
Approximations of Second-Order Information", NeurIPS 2021, arXiv 2107.03356 (§3 static
algorithm, §4 dynamic algorithm). Official code: https://github.com/IST-DASLab/M-FAC
(``prun.py``: ``HInvFastBatch`` static/blocked; ``optim.py``: ``HInvFastUpMulti`` dynamic).

Both algorithms give products with the inverse of the damped empirical Fisher of ``m``
gradients ``g_1..g_m`` (rows of ``G``, ``m x d``)::

    F = damp * I + G^T G / m                                     (paper Eq. 2 with damping)
    F^{-1} x = (x - G^T (m*damp*I + G G^T)^{-1} G x) / damp       (Woodbury identity)

What differs from the official code (same numbers, different arithmetic):

* Static (§3, Eq. 4-6): the official code runs the Sherman-Morrison recursion
  ``v_i = F_{i-1}^{-1} g_i``, ``c_i = m + g_i^T v_i`` as a Python loop over the m gradients.
  That recursion is exactly the Cholesky factorisation of ``A = m*damp*I + G G^T``:
  with ``A = L L^T`` and ``W = L^{-1} G`` one has ``v_i v_i^T / c_i = w_i w_i^T / damp``,
  so ``F^{-1} = (I - W^T W) / damp``. We compute ``G G^T`` (O(d m^2)), its Cholesky factor
  (O(m^3), float64) and ``W`` by one triangular solve (O(d m^2)): no loop over gradients.
  Products cost O(d m), the diagonal O(d m), one entry O(m). The tests check ``W``
  against the official recursion.
* Dynamic (§4): the official code keeps ``G G^T``, a pivot-free LU of
  ``G G^T / damp + m I`` and a triangular coefficient matrix, refactored (O(m^3)) after each
  replacement, and applies them with a sequential loop over the m rows (O(m^2)). We keep
  ``G G^T`` up to date with one O(d m) product per replacement, refactor the m x m matrix
  by Cholesky (float64, O(m^3), no loop) and answer a product with two matrix-vector
  products over the window (O(d m)) and one Cholesky solve (O(m^2)). Update order follows
  ``HInvFastUpMulti.update_mul``: replace the oldest row, then multiply, so the new
  gradient is already in the window that preconditions it.
* The window starts as m zero rows (as in the official optimizer); ``m`` in ``F`` is
  always the window size, not the number of gradients pushed so far.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from gradhub.errors import HyperparameterError, UnsupportedInputError
from gradhub.hyperparameters import validate_hyperparameters, validated
from gradhub.kinds.inputs import require_tensor
from gradhub.kinds.solver import SolverResult
from gradhub.progress import ProgressCallback, tracker
from gradhub_mfac import (
    MFAC_IHVP_DYNAMIC,
    MFAC_IHVP_STATIC,
    DynamicIHVPHyperparameters,
    PruneHyperparameters,
    StaticIHVPHyperparameters,
)

__all__ = [
    "SlidingWindowIHVP",
    "StaticIHVP",
    "dynamic_ihvp",
    "static_ihvp",
    "woodbury_solve",
]


def woodbury_solve(gram: Tensor, rhs: Tensor, ngrads: int, damp: float) -> Tensor:
    """``(m*damp*I + G G^T)^{-1} rhs`` from ``gram = G G^T`` (float64, batched over leading dims).

    A Cholesky factorisation: the matrix is symmetric positive definite for ``damp > 0``.
    ``cholesky_ex`` does not synchronise with the device to check for failure.
    """
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    factor = torch.linalg.cholesky_ex(gram + (ngrads * damp) * eye)[0]
    return torch.cholesky_solve(rhs.unsqueeze(-1), factor).squeeze(-1)


def _check_tensor(method: str, name: str, value: object, dims: int | Sequence[int]) -> Tensor:
    value = require_tensor(method, name, value, dim=dims)
    if value.dtype not in (torch.float32, torch.float64):
        raise UnsupportedInputError(method, f"{name} dtype", value.dtype, f"{name} must be float32 or float64")
    return value


# The models' defaults, for the classes' signatures (the official pruner's block size for ``blocked``).
STATIC, DYNAMIC, PRUNING = StaticIHVPHyperparameters(), DynamicIHVPHyperparameters(), PruneHyperparameters()


class StaticIHVP:
    """The static M-FAC algorithm (§3) over a fixed set of gradients, optionally blocked.

    Args:
        grads: ``m x d`` gradients, or ``b x m x d``: b independent blocks of d weights each
            (a block-diagonal Fisher, as ``HInvFastBatch``), or use :meth:`blocked`.
        damp: the damping ``lambda`` (official default 1e-5).

    Setup is O(b d m^2); :meth:`mul` and :meth:`diag` are O(b d m); :meth:`entry` O(m).
    """

    method = MFAC_IHVP_STATIC.name

    def __init__(self, grads: Tensor, damp: float = STATIC.damp) -> None:
        grads = _check_tensor(self.method, "grads", grads, (2, 3))
        self.damp = validate_hyperparameters(self.method, StaticIHVPHyperparameters, {"damp": damp})["damp"]
        self.batched = grads.dim() == 3
        blocks = grads if self.batched else grads.unsqueeze(0)
        self.blocks, self.ngrads, self.blocksize = blocks.shape
        self.numel = self.blocks * self.blocksize
        self.dtype = grads.dtype
        gram = (blocks @ blocks.transpose(-1, -2)).double()
        eye = torch.eye(self.ngrads, dtype=torch.float64, device=grads.device)
        factor = torch.linalg.cholesky_ex(gram + (self.ngrads * self.damp) * eye)[0]
        # W = L^{-1} G, so that F^{-1} = (I - W^T W) / damp.
        self.factors = torch.linalg.solve_triangular(factor.to(grads.dtype), blocks, upper=False)
        self._grads = blocks

    @classmethod
    def blocked(cls, grads: Tensor, blocksize: int | None = PRUNING.blocksize, damp: float = STATIC.damp) -> StaticIHVP:
        """Split ``m x d`` gradients into consecutive blocks of ``blocksize`` weights (the last
        one zero-padded; padding has zero gradient, so it decouples) and build a blocked IHVP.
        :meth:`mul` and :meth:`diag` then take and return flat length-d vectors. ``blocksize=None``:
        one block (``cls(grads, damp)``)."""
        grads = _check_tensor(cls.method, "grads", grads, 2)
        values = {"blocksize": blocksize, "damp": damp}
        blocksize = validate_hyperparameters(cls.method, StaticIHVPHyperparameters, values)["blocksize"]
        if blocksize is None:
            return cls(grads, damp)
        ngrads, numel = grads.shape
        blocks = -(-numel // blocksize)
        padded = torch.nn.functional.pad(grads, (0, blocks * blocksize - numel))
        self = cls(padded.reshape(ngrads, blocks, blocksize).transpose(0, 1).contiguous(), damp)
        self.numel = numel
        self.batched = False
        return self

    def _split(self, x: Tensor) -> Tensor:
        x = _check_tensor(self.method, "x", x, (1, 2))
        if x.device != self.factors.device:
            raise UnsupportedInputError(self.method, "x", f"device {x.device}", f"device {self.factors.device}")
        if x.dim() == 2 and x.shape == (self.blocks, self.blocksize) and self.batched:
            return x.to(self.dtype)
        if x.dim() != 1 or x.numel() != self.numel:
            raise UnsupportedInputError(
                self.method, "x", f"shape {tuple(x.shape)}", f"a vector of {self.numel} entries"
            )
        padded = torch.nn.functional.pad(x.to(self.dtype), (0, self.blocks * self.blocksize - self.numel))
        return padded.reshape(self.blocks, self.blocksize)

    def _join(self, y: Tensor, like: Tensor) -> Tensor:
        if like.dim() == 2:
            return y
        return y.reshape(-1)[: self.numel]

    def mul(self, x: Tensor) -> Tensor:
        """``F^{-1} x = (x - W^T (W x)) / damp`` (Eq. 6), O(d m)."""
        blocks = self._split(x)
        coefficients = (self.factors @ blocks.unsqueeze(-1)).squeeze(-1)
        result = (blocks - (coefficients.unsqueeze(-2) @ self.factors).squeeze(-2)) / self.damp
        return self._join(result, x)

    def diag(self) -> Tensor:
        """``[F^{-1}]_kk = (1 - sum_j W_jk^2) / damp``, O(d m); flat unless built from b x m x d."""
        result = (1 - self.factors.square().sum(-2)) / self.damp
        return result if self.batched else result.reshape(-1)[: self.numel]

    def entry(self, row: Tensor | int, column: Tensor | int) -> Tensor:
        """``[F^{-1}]_kl = (delta_kl - W_:k . W_:l) / damp`` for flat indices (ints or index tensors), O(m) each.

        Entries in different blocks are 0 (the blocked Fisher is block-diagonal).
        """
        row = torch.as_tensor(row, device=self.factors.device)
        column = torch.as_tensor(column, device=self.factors.device)
        for name, index in (("row", row), ("column", column)):
            if index.is_floating_point() or bool(((index < 0) | (index >= self.numel)).any()):
                raise UnsupportedInputError(self.method, name, index.tolist(), f"integer indices in [0, {self.numel})")
        row, column = torch.broadcast_tensors(row, column)
        row_block, row_offset = row // self.blocksize, row % self.blocksize
        column_block, column_offset = column // self.blocksize, column % self.blocksize
        left = self.factors[row_block, :, row_offset]
        right = self.factors[column_block, :, column_offset]
        same = (row == column).to(self.dtype)
        value = (same - (left * right).sum(-1)) / self.damp
        return torch.where(row_block == column_block, value, torch.zeros_like(value))

    def fisher_mul(self, x: Tensor) -> Tensor:
        """``F x = damp * x + G^T (G x) / m`` (for residuals), O(d m)."""
        blocks = self._split(x)
        products = (self._grads @ blocks.unsqueeze(-1)).squeeze(-1)
        result = self.damp * blocks + (products.unsqueeze(-2) @ self._grads).squeeze(-2) / self.ngrads
        return self._join(result, x)


class SlidingWindowIHVP:
    """The dynamic M-FAC algorithm (§4): a ring buffer of the last m gradients.

    Args:
        d: number of weights.
        m: window size (``ngrads``).
        damp: the damping ``lambda``.
        dtype, device: of the stored window (the m x m algebra is float64).

    :meth:`update` replaces the oldest gradient (O(d m) + an O(m^3) refactorisation of an
    m x m matrix); :meth:`mul` is O(d m + m^2); :meth:`update_mul` does both, reusing ``G g``.
    """

    method = MFAC_IHVP_DYNAMIC.name

    def __init__(
        self,
        d: int,
        m: int,
        damp: float = DYNAMIC.damp,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        for name, value in (("d", d), ("m", m)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise HyperparameterError(self.method, name, value, "an int >= 1")
        self.damp = validate_hyperparameters(self.method, DynamicIHVPHyperparameters, {"damp": damp})["damp"]
        self.d, self.m = d, m
        self.grads = torch.zeros(m, d, dtype=dtype, device=device)
        self.gram = torch.zeros(m, m, dtype=torch.float64, device=self.grads.device)
        self.last = 0

    def _check(self, name: str, x: Tensor) -> Tensor:
        x = _check_tensor(self.method, name, x, 1)
        if x.shape != (self.d,):
            raise UnsupportedInputError(self.method, name, f"shape {tuple(x.shape)}", f"shape ({self.d},)")
        if x.device != self.grads.device:
            raise UnsupportedInputError(self.method, name, f"device {x.device}", f"device {self.grads.device}")
        return x.to(self.grads.dtype)

    def update(self, g: Tensor) -> Tensor:
        """Replace the oldest gradient by ``g``; returns ``G g`` (float64) for reuse."""
        g = self._check("g", g)
        self.grads[self.last] = g
        products = (self.grads @ g).double()
        self.gram[self.last, :] = products
        self.gram[:, self.last] = products
        self.last = (self.last + 1) % self.m
        return products

    def mul(self, x: Tensor, products: Tensor | None = None) -> Tensor:
        """``F^{-1} x`` for the current window by the Woodbury closed form, O(d m + m^3)."""
        x = self._check("x", x)
        if products is None:
            products = (self.grads @ x).double()
        coefficients = woodbury_solve(self.gram, products, self.m, self.damp).to(self.grads.dtype)
        return (x - coefficients @ self.grads) / self.damp

    def update_mul(self, g: Tensor) -> Tensor:
        """Replace the oldest gradient by ``g``, then return ``F^{-1} g`` (``HInvFastUpMulti.update_mul``)."""
        return self.mul(g, self.update(g))

    def fisher_mul(self, x: Tensor) -> Tensor:
        """``F x = damp * x + G^T (G x) / m`` for the current window (for residuals), O(d m)."""
        return self.damp * x + ((self.grads @ x) @ self.grads) / self.m


def _direct_result(solution: Tensor, fisher_solution: Tensor, x: Tensor, tol: float) -> SolverResult:
    """A direct solve as one iteration: the relative residual ``||F u - x|| / ||x||`` before it
    (``u = 0``: 1) and after it; converged when the latter is at most ``tol`` (never when NaN)."""
    residual = (fisher_solution - x).norm() / x.norm().clamp_min(torch.finfo(x.dtype).tiny)
    return SolverResult(solution, bool(residual <= tol), 1, torch.stack([torch.ones_like(residual), residual]))


@validated(MFAC_IHVP_STATIC)
def static_ihvp(
    grads: Tensor, x: Tensor, *, damp: float, blocksize: int | None, tol: float, max_iter: int
) -> SolverResult:
    """Solve ``F u = x`` for the damped empirical Fisher of ``grads`` (m x d) with the static algorithm (§3).

    A direct method, not an iteration (so not the solver frame's loop): one "iteration" is the
    whole factorisation and product, and ``max_iter`` (>= 1) changes nothing; ``residuals``
    holds the relative residual ``||F u - x|| / ||x||`` before (1) and after it, and ``converged``
    says whether the latter is at most ``tol``. ``blocksize`` (None: one block) makes ``F``
    block-diagonal as in the official pruner.
    """
    method = MFAC_IHVP_STATIC.name
    grads = _check_tensor(method, "grads", grads, 2)
    x = _check_tensor(method, "x", x, 1)
    if x.shape != grads.shape[1:] or x.device != grads.device or x.dtype != grads.dtype:
        raise UnsupportedInputError(
            method,
            "x",
            f"shape {tuple(x.shape)}, {x.dtype} on {x.device}",
            f"shape ({grads.shape[1]},), {grads.dtype} on {grads.device} (like a row of grads)",
        )
    ihvp = StaticIHVP.blocked(grads, blocksize, damp)
    solution = ihvp.mul(x)
    return _direct_result(solution, ihvp.fisher_mul(solution), x, tol)


@validated(MFAC_IHVP_DYNAMIC)
def dynamic_ihvp(
    grads: Tensor,
    x: Tensor,
    *,
    ngrads: int,
    damp: float,
    tol: float,
    max_iter: int,
    progress: ProgressCallback | None = None,
) -> SolverResult:
    """Push the rows of ``grads`` (n x d) in order through a window of ``ngrads``, then solve ``F u = x`` (§4).

    ``F`` is the damped empirical Fisher of the window: the last ``min(n, ngrads)`` rows
    (and zero rows while fewer than ``ngrads`` were pushed). A direct method, as
    :func:`static_ihvp`; ``progress`` counts the pushed gradients.
    """
    method = MFAC_IHVP_DYNAMIC.name
    grads = _check_tensor(method, "grads", grads, 2)
    window = SlidingWindowIHVP(grads.shape[1], ngrads, damp, dtype=grads.dtype, device=grads.device)
    x = window._check("x", x)
    with tracker(progress, total=grads.shape[0], task=method) as bar:
        for g in grads:
            window.update(g)
            bar.update()
    solution = window.mul(x)
    return _direct_result(solution, window.fisher_mul(solution), x, tol)
