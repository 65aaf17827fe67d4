"""LR+GD and the batch perceptron on linearly separable data (the paper's Observation 1).

Paper: Alexander Tyurin, "From Logistic Regression to the Perceptron Algorithm: Exploring
Gradient Descent with Large Step Sizes", AAAI 2025, arXiv 2412.08424. No official code
was published; this follows the paper's formulas.

With labels y_i in {-1, +1}, margins m_i = y_i <w, x_i> and the mean logistic loss

    f(w) = (1/n) sum_i log(1 + exp(-m_i)),   grad f(w) = -(1/n) sum_i y_i x_i sigmoid(-m_i),

LR+GD is ``w_{t+1} = w_t - gamma grad f(w_t)``. Writing ``w_t = gamma v_t`` from
``w_0 = 0``, ``v_{t+1} = v_t + (1/n) sum_i y_i x_i sigmoid(-gamma m_i(v_t))``, and as
``gamma -> infinity`` ``sigmoid(-gamma m) -> 1[m < 0] + 1/2 1[m = 0]``: the batch perceptron
``v_{t+1} = v_t + (1/n) sum_i y_i x_i c_i`` with ``c_i = 1`` for ``m_i < 0``, ``tie`` (1/2)
for ``m_i = 0`` and 0 otherwise.

Both run in the core's solver frame (:func:`gradhub.kinds.solver.solver`): each is an
iteration yielding ``w_0, w_1, ...`` with its residual, the fraction of training points with
``m_i <= 0`` (misclassified or on the boundary); the frame stops once it is ``<= tol``
(``tol=0``: every point strictly on its side, the paper's stopping time) or after ``max_iter``
iterations. The result also carries the logistic loss and the normalised margin
``min_i m_i / ||w||`` of each iterate. Everything is vectorised over samples (one
matrix-vector product per iteration); the stopping test reads one number back per
iteration. Loss and gradient use ``softplus`` and ``sigmoid`` so margins of any size stay finite.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gradhub.errors import UnsupportedInputError
from gradhub.kinds.inputs import require_finite, require_same_device, require_tensor, require_values
from gradhub.kinds.solver import Iterate, SolverResult, solver
from gradhub_normalized_lrgd import BATCH_PERCEPTRON, LR_GD, BatchPerceptronHyperparameters


def margins(X: Tensor, y: Tensor, w: Tensor) -> Tensor:
    """``m_i = y_i <w, x_i>`` for every sample at once."""
    return y * (X @ w)


def logistic_loss(X: Tensor, y: Tensor, w: Tensor) -> Tensor:
    """``f(w) = (1/n) sum_i log(1 + exp(-y_i <w, x_i>))``, via softplus (finite for any margin)."""
    return torch.nn.functional.softplus(-margins(X, y, w)).mean()


def logistic_gradient(X: Tensor, y: Tensor, w: Tensor) -> Tensor:
    """``grad f(w) = -(1/n) sum_i y_i x_i sigmoid(-y_i <w, x_i>)``."""
    return -(X.T @ (y * torch.sigmoid(-margins(X, y, w)))) / X.shape[0]


def lr_gd_step(X: Tensor, y: Tensor, w: Tensor, lr: float) -> Tensor:
    """One LR+GD step, ``w - lr * grad f(w)``."""
    return w - lr * logistic_gradient(X, y, w)


PERCEPTRON = BatchPerceptronHyperparameters()
"""The batch perceptron's defaults (the model's), for :func:`perceptron_step`."""


def perceptron_step(X: Tensor, y: Tensor, v: Tensor, tie: float = PERCEPTRON.tie) -> Tensor:
    """One batch-perceptron step, ``v + (1/n) sum_i y_i x_i c_i`` (c_i = 1[m_i < 0] + tie 1[m_i = 0])."""
    m = margins(X, y, v)
    weights = (m < 0).to(X.dtype) + tie * (m == 0).to(X.dtype)
    return v + (X.T @ (y * weights)) / X.shape[0]


def misclassified_fraction(X: Tensor, y: Tensor, w: Tensor) -> Tensor:
    """The residual: the fraction of points with ``y_i <w, x_i> <= 0``."""
    return (margins(X, y, w) <= 0).to(X.dtype).mean()


def normalized_margin(X: Tensor, y: Tensor, w: Tensor) -> Tensor:
    """``min_i y_i <w, x_i> / ||w||`` (0 at ``w = 0``): positive once the data are separated."""
    norm = torch.linalg.vector_norm(w)
    smallest = margins(X, y, w).min()
    return torch.where(norm > 0, smallest / torch.where(norm > 0, norm, 1), torch.zeros_like(smallest))


@dataclass
class ClassificationResult(SolverResult):
    """A :class:`SolverResult` with the logistic loss and normalised margin after each iteration."""

    losses: Tensor | None = None
    """``f(w_t)`` for t = 0..iterations (the mean logistic loss)."""
    normalized_margins: Tensor | None = None
    """``min_i y_i <w_t, x_i> / ||w_t||`` for t = 0..iterations (0 where ``w_t = 0``)."""

    def __post_init__(self) -> None:
        # The iteration hands over its per-iterate lists (see _iterates): stacked once, here.
        if isinstance(self.losses, list):
            self.losses = torch.stack(self.losses)
        if isinstance(self.normalized_margins, list):
            self.normalized_margins = torch.stack(self.normalized_margins)


def check_problem(method: str, X: Any, y: Any, w0: Any = None) -> tuple[Tensor, Tensor, Tensor]:
    """Validate ``X`` (n, d), labels ``y`` (n,) in {-1, +1} and ``w0`` (d,), all finite; return them in X's dtype."""
    X = require_tensor(method, "X", X, dim=2, nonempty=True, what="(n samples, d features)")
    if X.dtype not in (torch.float32, torch.float64):
        raise UnsupportedInputError(method, "X dtype", X.dtype, "X must be float32 or float64")
    n, d = X.shape
    y = require_tensor(method, "y", y, dtype="real", dim=1, what="of labels in {-1, +1}")
    if y.dtype == torch.bool:
        raise UnsupportedInputError(method, "y dtype", y.dtype, "y must hold the numbers -1 and +1")
    if y.shape != (n,):
        raise UnsupportedInputError(method, "y shape", tuple(y.shape), f"y must hold n={n} labels")
    require_same_device(method, X=X, y=y)
    if w0 is not None:
        w0 = require_tensor(method, "w0", w0, dim=1, what=f"of d={d} weights (or None)")
        if w0.shape != (d,):
            raise UnsupportedInputError(method, "w0 shape", tuple(w0.shape), f"w0 must hold d={d} weights (or be None)")
        require_same_device(method, X=X, w0=w0)
        if w0.dtype != X.dtype:
            raise UnsupportedInputError(method, "w0 dtype", w0.dtype, f"w0 must have X's dtype ({X.dtype})")
    _require_finite_problem(method, X, y, w0)
    y = y.to(X.dtype)
    if w0 is None:
        return X, y, torch.zeros(d, device=X.device, dtype=X.dtype)
    return X, y, w0.detach().clone()


def _require_finite_problem(method: str, X: Tensor, y: Tensor, w0: Tensor | None) -> None:
    """Finite ``X`` and ``w0``, labels in {-1, +1}: one host read for all three, then the error for the first bad one.

    A NaN in ``X`` must be caught here: its margin ``NaN <= 0`` is False, so the residual would count
    that point (and, once ``w`` is NaN, every point) as classified.
    """
    bad_labels = (y != 1) & (y != -1)  # NaN and +-inf included
    flags = [~torch.isfinite(X).all(), bad_labels.any()]
    if w0 is not None:
        flags.append(~torch.isfinite(w0).all())
    bad_x, bad_y, *bad_w0 = torch.stack(flags).tolist()
    if bad_x:
        require_finite(method, "X", X)
    if bad_y:
        require_values(method, "y", bad_labels, y, "y must hold only -1 and +1")
    if w0 is not None and bad_w0[0]:
        require_finite(method, "w0", w0)


def _iterates(X: Tensor, y: Tensor, w: Tensor, update: Callable[[Tensor], Tensor]) -> Iterator[Iterate]:
    """``w_0 = w`` and ``w_{t+1} = update(w_t)``, each with its residual, loss and normalised margin."""
    losses: list[Tensor] = []
    normalized: list[Tensor] = []
    while True:
        losses.append(logistic_loss(X, y, w))
        normalized.append(normalized_margin(X, y, w))
        yield Iterate(w, misclassified_fraction(X, y, w), {"losses": losses, "normalized_margins": normalized})
        w = update(w)


@solver(LR_GD, result=ClassificationResult)
def lr_gd(X: Tensor, y: Tensor, w0: Tensor | None = None, *, lr: float, tol: float, max_iter: int) -> Iterator[Iterate]:
    """LR+GD (the paper's Eq. for ``w_{t+1} = w_t - gamma grad f(w_t)``) from ``w0`` (default 0).

    Args:
        X: (n, d) features (append a column of ones for a bias).
        y: (n,) labels in {-1, +1}.
        w0: (d,) starting point; zeros when None.
    """
    X, y, w = check_problem(LR_GD.name, X, y, w0)
    yield from _iterates(X, y, w, lambda w: lr_gd_step(X, y, w, lr))


@solver(BATCH_PERCEPTRON, result=ClassificationResult)
def batch_perceptron(
    X: Tensor, y: Tensor, w0: Tensor | None = None, *, tie: float, tol: float, max_iter: int
) -> Iterator[Iterate]:
    """The batch perceptron (the gamma -> infinity limit of LR+GD, Observation 1) from ``w0`` (default 0).

    ``v <- v + (1/n) sum_i y_i x_i c_i``, ``c_i = 1`` if ``y_i <v, x_i> < 0``, ``tie`` if it is 0.
    The arguments are those of :func:`lr_gd`, with ``tie`` in place of ``lr``.
    """
    X, y, v = check_problem(BATCH_PERCEPTRON.name, X, y, w0)
    yield from _iterates(X, y, v, lambda v: perceptron_step(X, y, v, tie))


# The public names, from the objects themselves: each method's name is written once, in its spec.
__all__ = [
    exported.__name__
    for exported in (
        ClassificationResult,
        batch_perceptron,
        logistic_gradient,
        logistic_loss,
        lr_gd,
        lr_gd_step,
        margins,
        misclassified_fraction,
        normalized_margin,
        perceptron_step,
    )
]
