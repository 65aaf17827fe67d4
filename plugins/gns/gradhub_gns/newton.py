"""Gradient-regularised Newton with adaptive search (``gns_newton``) and the gradient-method baseline.

Paper: "Gradient-Normalized Smoothness for Optimization with Approximate Hessians",
Andrei Semenov, Martin Jaggi, Nikita Doikov, 2025 (ICLR 2026), arXiv:2506.13710.
Official code: https://github.com/epfml/grad-norm-smooth (``src/methods.py``:
``grad_norm_smooth`` is Algorithm 1, ``gradient_method`` the Armijo-type baseline).

Algorithm 1 with metric ``B`` (primal ``||h|| = sqrt(h^T B h)``, dual ``||g||_* = sqrt(g^T B^-1 g)``):

    lambda_k = ||g_k||_* / (gamma_k + eps)
    x+       = x_k - (H_k + lambda_k B)^-1 g_k                 (Cholesky, float64)
    accept   if f(x_k) - f(x+) >= ||grad f(x+)||_*^2 / (8 lambda_k)       (Lemma 1 progress)
             then gamma_{k+1} = max(2 gamma_k, gamma_min)
    else     gamma_k <- gamma_k / 2 and recompute (at most ``max_inner`` trials)

Readings chosen where the paper leaves the details open and the official code is not followed
(README, "Defaults and readings chosen"):

* A failed Cholesky factorisation (H_k + lambda_k B not positive definite, possible for an
  indefinite H_k) halves gamma and retries, which raises lambda_k until the system is positive
  definite. The official code ``break``s out of the search instead and then applies a stale step.
* When the search exhausts ``max_inner`` trials the iterate stays at x_k (so f(x_k) is
  non-increasing); the official code applies the last rejected trial.
* gamma is halved without a floor and floored by ``gamma_min`` after an accepted step, as in the
  official code (flooring the halving instead could make an indefinite system impossible to repair).
* The stopping test is the solver frame's ``||g_k||_* <= tol`` (official ``grad_tol``);
  ``f_star`` stopping is left to the caller, who has every f(x_k) in ``GNSResult.values``.
* ``adaptive=False`` takes x+ unconditionally with the current gamma (official
  ``adaptive_search=False``), still halving gamma while the factorisation fails.

The solver works on one vector ``x`` of d coordinates; every matrix operation is one dense
d x d factorisation (no loop over coordinates). One host sync per trial is inherent: the
acceptance test decides whether to recompute.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from gradhub.errors import UnsupportedInputError
from gradhub.kinds.inputs import require_tensor
from gradhub.kinds.solver import Iterate, SolverResult, solver
from gradhub_gns import GNS_NEWTON

Objective = Callable[[torch.Tensor], torch.Tensor]
HessianFunction = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class GNSResult(SolverResult):
    """``SolverResult`` (``residuals`` = ``||grad f(x_k)||_*``) plus the run's trace."""

    values: torch.Tensor
    """f(x_k), ``iterations + 1`` entries."""
    gammas: torch.Tensor
    """gamma_k before the first iteration and after each (float64)."""
    trials: torch.Tensor
    """Trials of the adaptive search (factorisations attempted) in each iteration (int64)."""
    accepted: torch.Tensor
    """Whether each iteration moved the iterate (bool)."""


class Metric:
    """The norms of Algorithm 1 for a positive definite ``B`` (None: the identity), in float64."""

    def __init__(self, method: str, B: torch.Tensor | None, like: torch.Tensor) -> None:
        d = like.numel()
        if B is None:
            self.matrix = torch.eye(d, dtype=torch.float64, device=like.device)
            self.factor = None
            return
        if not isinstance(B, torch.Tensor) or B.shape != (d, d):
            shown = tuple(B.shape) if isinstance(B, torch.Tensor) else type(B).__name__
            raise UnsupportedInputError(method, "metric B", shown, f"B must be a ({d}, {d}) tensor, like x0")
        if B.device != like.device:
            raise UnsupportedInputError(method, "metric B device", B.device, f"B must be on x0's device {like.device}")
        self.matrix = B.detach().to(torch.float64)
        if not torch.allclose(self.matrix, self.matrix.mT):
            raise UnsupportedInputError(method, "metric B", "a non-symmetric matrix", "B must be symmetric")
        factor, info = torch.linalg.cholesky_ex(self.matrix)
        if int(info) != 0:
            raise UnsupportedInputError(method, "metric B", "a matrix that is not positive definite", "B must be PD")
        self.factor = factor

    def dual_norm(self, gradient: torch.Tensor) -> torch.Tensor:
        """``||g||_* = sqrt(g^T B^-1 g)`` as a 0-d float64 tensor."""
        g = gradient.reshape(-1).to(torch.float64)
        if self.factor is None:
            return torch.linalg.vector_norm(g)
        return (g @ torch.cholesky_solve(g.unsqueeze(-1), self.factor).squeeze(-1)).clamp_min(0).sqrt()


def value_and_gradient(method: str, fn: Objective, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """f(x) and its autograd gradient, detached; f must return a scalar tensor."""
    point = x.detach().requires_grad_(True)
    with torch.enable_grad():
        value = fn(point)
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            shown = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise UnsupportedInputError(method, "objective output", shown, "fn(x) must return a scalar tensor")
        (gradient,) = torch.autograd.grad(value.reshape(()), point, allow_unused=True)
    if gradient is None:
        gradient = torch.zeros_like(point)
    return value.detach().reshape(()), gradient.detach()


def _check_start(method: str, x0: Any) -> None:
    require_tensor(method, "x0", x0, dim=1, nonempty=True)
    if x0.dtype not in (torch.float32, torch.float64):
        raise UnsupportedInputError(method, "x0 dtype", x0.dtype, "x0 must be float32 or float64")


def _hessian_at(method: str, hessian: HessianFunction, x: torch.Tensor) -> torch.Tensor:
    matrix = hessian(x)
    d = x.numel()
    if not isinstance(matrix, torch.Tensor) or matrix.shape != (d, d):
        shown = tuple(matrix.shape) if isinstance(matrix, torch.Tensor) else type(matrix).__name__
        raise UnsupportedInputError(method, "Hessian shape", shown, f"hessian(x) must return a ({d}, {d}) tensor")
    if matrix.device != x.device:
        raise UnsupportedInputError(method, "Hessian device", matrix.device, f"hessian(x) must be on {x.device}")
    return matrix.detach().to(torch.float64)


def _trace(
    values: list[torch.Tensor], gammas: list[float], trials: list[int], accepted: list[bool], device: torch.device
) -> dict[str, Any]:
    """The :class:`GNSResult` fields beyond ``SolverResult`` so far."""
    return {
        "values": torch.stack(values),
        "gammas": torch.tensor(gammas, dtype=torch.float64, device=device),
        "trials": torch.tensor(trials, dtype=torch.int64, device=device),
        "accepted": torch.tensor(accepted, dtype=torch.bool, device=device),
    }


@solver(GNS_NEWTON, result=GNSResult)
def gns_newton(
    fn: Objective,
    x0: torch.Tensor,
    *,
    tol: float,
    max_iter: int,
    gamma0: float,
    adaptive: bool,
    gamma_min: float,
    max_inner: int,
    eps: float,
    hessian: HessianFunction | None = None,
    B: torch.Tensor | None = None,
) -> Iterator[Iterate]:
    """Minimise ``fn`` from ``x0`` with the gradient-regularised Newton method (Algorithm 1).

    ``fn(x) -> scalar`` (gradients by autograd); ``hessian(x) -> (d, d)`` an (approximate)
    Hessian, default the exact one (:func:`gradhub_gns.hessians.exact_hessian`); ``B`` the
    positive definite metric (default identity). Returns a :class:`GNSResult` whose
    ``residuals`` are the dual gradient norms ``||grad f(x_k)||_*``.
    """
    method = GNS_NEWTON.name
    _check_start(method, x0)
    if not callable(fn):
        raise UnsupportedInputError(method, "objective", type(fn).__name__, "fn must be callable: fn(x) -> scalar")
    if hessian is None:
        from gradhub_gns.hessians import exact_hessian

        hessian = exact_hessian(fn)
    elif not callable(hessian):
        raise UnsupportedInputError(method, "hessian", type(hessian).__name__, "hessian must be callable or None")
    metric = Metric(method, B, x0)

    x = x0.detach().clone()
    value, gradient = value_and_gradient(method, fn, x)
    gradient_norm = metric.dual_norm(gradient)
    gamma = float(gamma0)
    values, gammas, trials, accepted = [value], [gamma], [], []
    yield Iterate(x, gradient_norm, _trace(values, gammas, trials, accepted, x0.device))
    curvature: torch.Tensor | None = None
    while True:
        if curvature is None:  # recomputed only after the iterate moved
            curvature = _hessian_at(method, hessian, x)
        g = gradient.reshape(-1).to(torch.float64)
        moved, attempts = False, 0
        for _ in range(max_inner):
            attempts += 1
            regulariser = gradient_norm / (gamma + eps)  # Algorithm 1: lambda_k = ||g_k||_* / gamma_k
            factor, info = torch.linalg.cholesky_ex(curvature + regulariser * metric.matrix)
            if bool(info != 0):  # H_k + lambda_k B indefinite: a larger lambda_k (smaller gamma) repairs it
                gamma *= 0.5
                continue
            step = -torch.cholesky_solve(g.unsqueeze(-1), factor).squeeze(-1)
            trial = x + step.to(x.dtype)
            trial_value, trial_gradient = value_and_gradient(method, fn, trial)
            trial_norm = metric.dual_norm(trial_gradient)
            if not adaptive:
                moved = True
                break
            decrease = (value - trial_value).to(torch.float64)
            if bool(decrease >= trial_norm.square() / (8 * regulariser)):  # Lemma 1 progress test
                gamma = max(2.0 * gamma, gamma_min)
                moved = True
                break
            gamma *= 0.5
        if moved:
            x, value, gradient, gradient_norm = trial, trial_value, trial_gradient, trial_norm
            curvature = None
        values.append(value)
        gammas.append(gamma)
        trials.append(attempts)
        accepted.append(moved)
        yield Iterate(x, gradient_norm, _trace(values, gammas, trials, accepted, x0.device))


def gradient_method(
    fn: Objective,
    x0: torch.Tensor,
    *,
    max_iter: int = 1000,
    lipschitz0: float = 1.0,
    lipschitz_min: float = 1e-5,
    max_line_search: int = 30,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The paper's first-order baseline: gradient descent with an adaptive Lipschitz estimate.

    Official ``gradient_method``: ``T = x - g / L``; accept when
    ``f(T) <= f(x) + <g, T - x> + L/2 ||T - x||^2`` and halve L (floored at ``lipschitz_min``),
    else double L (at most ``max_line_search`` trials; the last trial is taken, as officially).
    Returns ``(x, f history, gradient-norm history)``, each history ``max_iter + 1`` long.
    """
    method = "gradient_method"
    _check_start(method, x0)
    x = x0.detach().clone()
    value, gradient = value_and_gradient(method, fn, x)
    lipschitz = float(lipschitz0)
    values, norms = [value], [torch.linalg.vector_norm(gradient)]
    for _ in range(max_iter):
        for _ in range(max_line_search):
            trial = x - gradient / lipschitz
            trial_value = fn(trial).detach().reshape(())
            model = value + gradient @ (trial - x) + 0.5 * lipschitz * (trial - x).square().sum()
            if bool(trial_value <= model):
                lipschitz = max(0.5 * lipschitz, lipschitz_min)
                break
            lipschitz *= 2.0
        x = trial
        value, gradient = value_and_gradient(method, fn, x)
        values.append(value)
        norms.append(torch.linalg.vector_norm(gradient))
    return x, torch.stack(values), torch.stack(norms)


# The public names, from the objects themselves: each method's name is written once, in its spec.
__all__ = [
    exported.__name__
    for exported in (
        GNSResult,
        Metric,
        gns_newton,
        gradient_method,
    )
]
