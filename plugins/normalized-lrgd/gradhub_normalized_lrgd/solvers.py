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

Solver contract (gradhub.kinds.solver): the residual is the fraction of training points
with ``m_i <= 0`` (misclassified or on the boundary); ``tol`` stops the run once it is
``<= tol`` (``tol=0``: every point strictly on its side, the paper's stopping time), and
``max_iter`` bounds the iterations. The result also carries the logistic loss and the
normalised margin ``min_i m_i / ||w||`` after each iteration. Everything is vectorised
over samples (one matrix-vector product per iteration); the stopping test reads one
number back per iteration. Loss and gradient use ``softplus`` and ``sigmoid`` so margins
of any size stay finite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import validated
from gradhub.kinds.solver import SolverResult
from gradhub.progress import ProgressCallback, tracker
from gradhub_normalized_lrgd import BatchPerceptronHyperparameters, LRGDHyperparameters

__all__ = [
    "ClassificationResult",
    "batch_perceptron",
    "logistic_gradient",
    "logistic_loss",
    "lr_gd",
    "lr_gd_step",
    "margins",
    "misclassified_fraction",
    "normalized_margin",
    "perceptron_step",
]


@dataclass
class ClassificationResult(SolverResult):
    """A :class:`SolverResult` with the logistic loss and normalised margin after each iteration."""

    losses: Tensor | None = None
    """``f(w_t)`` for t = 0..iterations (the mean logistic loss)."""
    normalized_margins: Tensor | None = None
    """``min_i y_i <w_t, x_i> / ||w_t||`` for t = 0..iterations (0 where ``w_t = 0``)."""


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


def perceptron_step(X: Tensor, y: Tensor, v: Tensor, tie: float = 0.5) -> Tensor:
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


def check_problem(method: str, X: Any, y: Any, w0: Any = None) -> tuple[Tensor, Tensor, Tensor]:
    """Validate ``X`` (n, d), labels ``y`` (n,) in {-1, +1} and ``w0`` (d,); return them in X's dtype."""
    if not isinstance(X, Tensor) or X.dim() != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        shown = f"shape {tuple(X.shape)}" if isinstance(X, Tensor) else type(X).__name__
        raise UnsupportedInputError(method, "X", shown, "X must be a 2-D tensor (n samples, d features), n, d >= 1")
    if X.dtype not in (torch.float32, torch.float64):
        raise UnsupportedInputError(method, "X dtype", X.dtype, "X must be float32 or float64")
    n, d = X.shape
    if not isinstance(y, Tensor) or y.shape != (n,):
        shown = f"shape {tuple(y.shape)}" if isinstance(y, Tensor) else type(y).__name__
        raise UnsupportedInputError(method, "y", shown, f"y must be a 1-D tensor of n={n} labels in {{-1, +1}}")
    if y.device != X.device:
        raise UnsupportedInputError(method, "y device", y.device, f"y must be on X's device ({X.device})")
    if y.dtype == torch.bool or y.is_complex() or not bool(((y == 1) | (y == -1)).all()):
        raise UnsupportedInputError(method, "y values", "labels outside {-1, +1}", "y must hold only -1 and +1")
    y = y.to(X.dtype)
    if w0 is None:
        return X, y, torch.zeros(d, device=X.device, dtype=X.dtype)
    if not isinstance(w0, Tensor) or w0.shape != (d,):
        shown = f"shape {tuple(w0.shape)}" if isinstance(w0, Tensor) else type(w0).__name__
        raise UnsupportedInputError(method, "w0", shown, f"w0 must be a 1-D tensor of d={d} weights (or None)")
    if w0.device != X.device or w0.dtype != X.dtype:
        raise UnsupportedInputError(
            method, "w0", f"{w0.dtype} on {w0.device}", f"w0 must match X ({X.dtype} on {X.device})"
        )
    return X, y, w0.detach().clone()


def _iterate(
    method: str,
    X: Tensor,
    y: Tensor,
    w: Tensor,
    update: Any,
    tol: float,
    max_iter: int,
    progress: ProgressCallback | None,
) -> ClassificationResult:
    residuals = [misclassified_fraction(X, y, w)]
    losses = [logistic_loss(X, y, w)]
    normalized = [normalized_margin(X, y, w)]
    iterations = 0
    with tracker(progress, total=max_iter, task=method) as bar:
        while iterations < max_iter and residuals[-1].item() > tol:
            w = update(w)
            iterations += 1
            residuals.append(misclassified_fraction(X, y, w))
            losses.append(logistic_loss(X, y, w))
            normalized.append(normalized_margin(X, y, w))
            bar.update(misclassified=residuals[-1], loss=losses[-1])
    history = torch.stack(residuals)
    return ClassificationResult(
        solution=w,
        converged=bool(history[-1].item() <= tol),
        iterations=iterations,
        residuals=history,
        losses=torch.stack(losses),
        normalized_margins=torch.stack(normalized),
    )


@torch.no_grad()
@validated("lr_gd", LRGDHyperparameters)
def lr_gd(
    X: Tensor,
    y: Tensor,
    w0: Tensor | None = None,
    *,
    lr: float = 1.0,
    tol: float = 0.0,
    max_iter: int = 1000,
    progress: ProgressCallback | None = None,
) -> ClassificationResult:
    """LR+GD (the paper's Eq. for ``w_{t+1} = w_t - gamma grad f(w_t)``) from ``w0`` (default 0).

    Args:
        X: (n, d) features (append a column of ones for a bias).
        y: (n,) labels in {-1, +1}.
        w0: (d,) starting point; zeros when None.
        lr: the step size gamma (> 0; any size: the paper's point is gamma -> infinity).
        tol: stop when the fraction of points with ``y_i <w, x_i> <= 0`` is ``<= tol``.
        max_iter: iteration budget.
        progress: optional progress callback.
    """
    X, y, w = check_problem("lr_gd", X, y, w0)
    return _iterate("lr_gd", X, y, w, lambda w: lr_gd_step(X, y, w, lr), tol, max_iter, progress)


@torch.no_grad()
@validated("batch_perceptron", BatchPerceptronHyperparameters)
def batch_perceptron(
    X: Tensor,
    y: Tensor,
    w0: Tensor | None = None,
    *,
    tie: float = 0.5,
    tol: float = 0.0,
    max_iter: int = 1000,
    progress: ProgressCallback | None = None,
) -> ClassificationResult:
    """The batch perceptron (the gamma -> infinity limit of LR+GD, Observation 1) from ``w0`` (default 0).

    ``v <- v + (1/n) sum_i y_i x_i c_i``, ``c_i = 1`` if ``y_i <v, x_i> < 0``, ``tie`` if it is 0.
    The arguments are those of :func:`lr_gd`, with ``tie`` in place of ``lr``.
    """
    X, y, w = check_problem("batch_perceptron", X, y, w0)
    return _iterate("batch_perceptron", X, y, w, lambda v: perceptron_step(X, y, v, tie), tol, max_iter, progress)
