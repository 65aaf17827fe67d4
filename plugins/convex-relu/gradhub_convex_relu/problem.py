"""The pieces the convex programs share: validated data, losses and their proxes, the operators F and G,
the group soft-threshold, and the ADMM linear system factorised once.

Paper: "Efficient Global Optimization of Two-layer ReLU Networks: Quadratic-time Algorithms and
Adversarial Training", Yatong Bai, Tanmay Gautam, Somayeh Sojoudi, SIMODS 2023, arXiv:2201.01965.

Notation (§2-3). X (n, d) is the data with its bias column, D (n, P) the patterns (column i the
diagonal of D_i), E = 2 D - 1 (the diagonal of 2 D_i - I). Weights are stacked as blocks of d:
``U`` (P, d) for the gated program, ``(2, P, d)`` = [v_1..v_P; w_1..w_P] for the ReLU program.

* ``F_v U = sum_i D_i X u_i``: ``(D * (X U^T)).sum(1)``, and ``F_v^T r = (D * r)^T X``; the ReLU
  program's F is [F_v, -F_v], so ``F u = F_v (V - W)``.
* ``G U = E * (X U^T)`` (n, P) per sign: the cone constraints (2 D_i - I) X u_i >= 0 of every block
  at once; ``G^T S = (E * S)^T X``. Since E_i^2 = I, ``G^T G = I_P (x) X^T X`` (block diagonal).
* Everything is batched over arrangements: one (n, d) x (d, P) product per operator, no loop.

The linear system of the ADMM u-update (§3, step 1),
``(I + G^T G + kappa F^T F) u = b`` with kappa = 1/rho (squared loss inside the update) or 1 (loss
split off), is factorised once (:class:`ADMMSystem`) and each iteration costs triangular solves:

* the ReLU program's F^T F = [[K, -K], [-K, K]] (K = F_v^T F_v) decouples in the orthonormal
  basis (v + w)/sqrt 2, (v - w)/sqrt 2 into ``B`` and ``B + 2 kappa K`` with
  B = I_P (x) (I_d + X^T X): B needs one d x d Cholesky factor for all blocks;
* ``B + tau K`` is factorised as it stands (Pd x Pd) when n > Pd, else through the Woodbury identity
  with the n x n matrix ``I/tau + (X B_d^-1 X^T) o (D D^T)`` (o: entrywise), which is F_v B^-1 F_v^T
  in closed form. Either way the factor is computed once; the cost per iteration is O(n P d) plus
  the triangular solves (quadratic in the factored dimension), the paper's quadratic-time claim.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from gradhub.errors import UnsupportedInputError
from gradhub.kinds.inputs import require_finite, require_same_device, require_tensor, require_values
from gradhub_convex_relu.arrangements import Arrangements, augment, sample_arrangements

DTYPES = (torch.float32, torch.float64)
LARGE_SYSTEM = 20_000
"""A factored dimension above this triggers a memory warning (the factor is dimension^2 numbers)."""


@dataclass
class Problem:
    """Validated data with its bias column and arrangements."""

    method: str
    X: Tensor
    """(n, d): the data with the column of ones when ``include_bias``."""
    y: Tensor
    """(n,) in X's dtype."""
    features: int
    """d0, the number of columns of the data as given."""
    include_bias: bool
    patterns: Tensor
    """(n, P) in {0, 1}."""
    gates: Tensor
    """(d, P): patterns = 1[X gates >= 0]."""
    signs: Tensor = field(init=False)
    """(n, P): E = 2 D - 1, the diagonals of 2 D_i - I."""

    def __post_init__(self) -> None:
        self.signs = 2 * self.patterns - 1


def check_data(method: str, X: Any, y: Any, loss: str) -> tuple[Tensor, Tensor]:
    """X as a finite (n, d0) float32/float64 tensor, y as a finite (n,) tensor of X's dtype (+-1 for a classifier)."""
    require_tensor(method, "X", X, dtypes=DTYPES, dim=2, nonempty=True)
    require_tensor(method, "y", y, dtype="real", dim=(1, 2), nonempty=True)
    require_same_device(method, X=X, y=y)
    if (y.dim() == 2 and y.shape[1] != 1) or y.shape[0] != X.shape[0]:
        raise UnsupportedInputError(
            method, "shapes", f"X {tuple(X.shape)}, y {tuple(y.shape)}", "y must be (n,) or (n, 1) for X of (n, d)"
        )
    if X.shape[1] == 0:
        raise UnsupportedInputError(method, "X shape", tuple(X.shape), "X must have at least one feature column")
    targets = y.reshape(-1).to(X.dtype)
    require_finite(method, "X", X)
    require_finite(method, "y", targets)
    if loss in ("logistic", "hinge"):
        require_values(method, "y", targets.abs() != 1, targets, f"labels must be -1 or +1 for loss={loss!r}")
    return X, targets


def prepare(
    method: str,
    X: Any,
    y: Any,
    *,
    loss: str,
    include_bias: bool,
    n_arrangements: int,
    seed: int,
    exact: bool,
    gates: Tensor | None = None,
) -> Problem:
    """Check the data and draw (or enumerate) the arrangements; ``gates`` (d, k) are included first."""
    X, targets = check_data(method, X, y, loss)
    if gates is not None:
        require_tensor(method, "gates", gates, dtypes=DTYPES, dim=2, nonempty=True)
        require_finite(method, "gates", gates)
    arrangements: Arrangements = sample_arrangements(
        X, n_arrangements, seed, include_bias=include_bias, gates=gates, exact=exact, method=method
    )
    data = augment(X, include_bias)
    return Problem(method, data, targets, X.shape[1], include_bias, arrangements.patterns, arrangements.gates)


# -- losses (summed over samples) ------------------------------------------------------------------


def loss_value(loss: str, prediction: Tensor, y: Tensor) -> Tensor:
    """``sum_k l(yhat_k, y_k)``: squared 1/2 (yhat - y)^2, logistic log(1 + exp(-y yhat)), hinge (1 - y yhat)_+."""
    if loss == "squared":
        return 0.5 * (prediction - y).square().sum(-1)
    if loss == "logistic":
        return torch.nn.functional.softplus(-y * prediction).sum(-1)
    return torch.relu(1 - y * prediction).sum(-1)


def loss_gradient(loss: str, prediction: Tensor, y: Tensor) -> Tensor:
    """d loss / d yhat for the smooth losses (squared, logistic)."""
    if loss == "squared":
        return prediction - y
    return -y * torch.sigmoid(-y * prediction)


LOGISTIC_PROX_STEPS = 12
"""Safeguarded Newton steps of the logistic prox: the root is bracketed in an interval of width ``step``,
a step that would leave the bracket bisects it instead, and Newton converges quadratically inside
(from the previous ADMM iterate's value, which is close after the first iterations)."""


def loss_prox(loss: str, a: Tensor, y: Tensor, step: float, start: Tensor | None = None) -> Tensor:
    """``argmin_z l(z, y) + (z - a)^2 / (2 step)`` per sample (labels +-1 for logistic and hinge).

    Squared: (a + step y) / (1 + step). Hinge, in the margin m = y z: m0 + step below 1 - step, 1 in
    between, m0 above 1. Logistic: the root of -sigmoid(-m) + (m - m0)/step, in (m0, m0 + step),
    by safeguarded Newton from ``start`` (a previous solution; default m0 + step sigmoid(-m0)).
    """
    if loss == "squared":
        return (a + step * y) / (1 + step)
    margin = y * a
    if loss == "hinge":
        moved = torch.where(margin < 1 - step, margin + step, torch.where(margin <= 1, torch.ones_like(margin), margin))
        return y * moved
    low, high = margin, margin + step
    m = margin + step * torch.sigmoid(-margin) if start is None else torch.minimum(torch.maximum(y * start, low), high)
    for _ in range(LOGISTIC_PROX_STEPS):
        slope = -torch.sigmoid(-m) + (m - margin) / step
        curvature = torch.sigmoid(m) * torch.sigmoid(-m) + 1 / step
        above = slope > 0
        high = torch.where(above, m, high)
        low = torch.where(above, low, m)
        newton = m - slope / curvature
        m = torch.where((newton >= low) & (newton <= high), newton, 0.5 * (low + high))
    return y * m


def positive_part_prox(a: Tensor, step: float) -> Tensor:
    """``argmin_z (z)_+ + (z - a)^2 / (2 step)``: a - step above step, 0 in [0, step], a below 0."""
    return torch.where(a > step, a - step, torch.where(a >= 0, torch.zeros_like(a), a))


def group_soft_threshold(blocks: Tensor, threshold: float) -> Tensor:
    """The prox of ``threshold * sum_i ||u_i||_2`` over the last dimension: ``max(0, 1 - t / ||a_i||) a_i``."""
    norms = torch.linalg.vector_norm(blocks, dim=-1, keepdim=True)
    scale = (1 - threshold / norms.clamp_min(torch.finfo(blocks.dtype).tiny)).clamp_min(0)
    return scale * blocks


def group_norms(blocks: Tensor) -> Tensor:
    """``sum_i ||u_i||_2`` over every block."""
    return torch.linalg.vector_norm(blocks, dim=-1).sum()


class History:
    """Per-iteration 0-d values kept on the device (no host read): a buffer that doubles when full."""

    def __init__(self, first: Tensor) -> None:
        self.buffer = first.new_empty(64)
        self.buffer[0] = first
        self.size = 1

    def append(self, value: Tensor) -> Tensor:
        """Add ``value``; returns the history so far (a view)."""
        if self.size == self.buffer.numel():
            self.buffer = torch.cat([self.buffer, torch.empty_like(self.buffer)])
        self.buffer[self.size] = value
        self.size += 1
        return self.values()

    def values(self) -> Tensor:
        return self.buffer[: self.size]


# -- operators ------------------------------------------------------------------------------------


def forward(problem: Problem, blocks: Tensor) -> Tensor:
    """``F_v U = sum_i D_i X u_i`` for blocks (..., P, d): (..., n)."""
    return (problem.patterns * (problem.X @ blocks.mT)).sum(-1)


def forward_adjoint(problem: Problem, residual: Tensor) -> Tensor:
    """``F_v^T r``: (P, d), block i = X^T D_i r."""
    return (problem.patterns * residual.unsqueeze(-1)).mT @ problem.X


def cone(problem: Problem, blocks: Tensor) -> Tensor:
    """``G U``: (..., n, P), column i = (2 D_i - I) X u_i (>= 0 where the pattern is respected)."""
    return problem.signs * (problem.X @ blocks.mT)


def cone_adjoint(problem: Problem, slack: Tensor) -> Tensor:
    """``G^T S``: (..., P, d), block i = X^T (2 D_i - I) s_i."""
    return (problem.signs * slack).mT @ problem.X


def relu_prediction(problem: Problem, weights: Tensor) -> Tensor:
    """``F u = sum_i D_i X (v_i - w_i)`` of the ReLU program's weights (2, P, d)."""
    return forward(problem, weights[0] - weights[1])


# -- the ADMM system ------------------------------------------------------------------------------


def _factor(method: str, matrix: Tensor, what: str) -> Tensor:
    factor, info = torch.linalg.cholesky_ex(matrix)
    if bool(info != 0):
        raise UnsupportedInputError(
            method,
            "data",
            f"the {what} could not be factorised (Cholesky failed: non-finite or badly scaled data)",
            "scale X and y to moderate values",
        )
    return factor


class RidgeSolve:
    """``(B + tau F_v^T F_v)^-1`` on (P, d) blocks, B = I_P (x) B_d; factorised once (direct or Woodbury)."""

    def __init__(self, problem: Problem, base: Tensor, base_factor: Tensor, tau: float) -> None:
        n, d = problem.X.shape
        P = problem.patterns.shape[1]
        self.problem, self.base_factor = problem, base_factor
        self.woodbury = n <= P * d
        size = n if self.woodbury else P * d
        if size > LARGE_SYSTEM:
            warnings.warn(
                f"{problem.method}: the ADMM system factor is {size} x {size} ({size * size * 8 / 2**30:.1f} GiB in "
                "float64); fewer arrangements or samples keep it small",
                stacklevel=4,
            )
        if self.woodbury:
            inverse_xt = torch.cholesky_solve(problem.X.T, base_factor)  # B_d^-1 X^T (d, n)
            core = (problem.X @ inverse_xt) * (problem.patterns @ problem.patterns.T)  # F_v B^-1 F_v^T
            core.diagonal().add_(1 / tau)
            self.factor = _factor(problem.method, core, "ADMM system (Woodbury form)")
        else:
            columns = (problem.patterns.unsqueeze(-1) * problem.X.unsqueeze(1)).reshape(n, P * d)
            matrix = tau * (columns.T @ columns)
            blocks = matrix.view(P, d, P, d)
            index = torch.arange(P, device=problem.X.device)
            blocks[index, :, index, :] += base
            self.factor = _factor(problem.method, matrix, "ADMM system")

    def base_solve(self, blocks: Tensor) -> Tensor:
        """``B^-1`` on (P, d): the same d x d solve for every block."""
        return torch.cholesky_solve(blocks.T, self.base_factor).T

    def __call__(self, rhs: Tensor) -> Tensor:
        if self.woodbury:
            first = self.base_solve(rhs)
            correction = torch.cholesky_solve(forward(self.problem, first).unsqueeze(-1), self.factor).squeeze(-1)
            return first - self.base_solve(forward_adjoint(self.problem, correction))
        flat = torch.cholesky_solve(rhs.reshape(-1, 1), self.factor)
        return flat.reshape(rhs.shape)


class ADMMSystem:
    """Solves ``(I + cones G^T G + kappa F^T F) u = b`` for u of (signs, P, d); factorised at construction.

    ``signs=2``: the ReLU program (F = [F_v, -F_v]); ``signs=1``: the gated program (F = F_v).
    """

    def __init__(self, problem: Problem, *, signs: int, cones: bool, kappa: float) -> None:
        X = problem.X
        base = torch.eye(X.shape[1], dtype=X.dtype, device=X.device)
        if cones:
            base = base + X.T @ X
        self.signs = signs
        self.base_factor = _factor(problem.method, base, "ADMM block I + X^T X")
        self.ridge = RidgeSolve(problem, base, self.base_factor, kappa * signs)

    def __call__(self, rhs: Tensor) -> Tensor:
        if self.signs == 1:
            return self.ridge(rhs[0]).unsqueeze(0)
        root = 2**-0.5
        total = self.ridge.base_solve(root * (rhs[0] + rhs[1]))
        difference = self.ridge(root * (rhs[0] - rhs[1]))
        return torch.stack([root * (total + difference), root * (total - difference)])
