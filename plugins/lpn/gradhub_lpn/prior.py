"""The learned prior of an LPN: invert the proximal map, then read R_theta off the potential (paper Sec. 3.2).

Paper: "What's in a Prior? Learned Proximal Networks for Inverse Problems", Zhenghan Fang, Sam Buchanan,
Jeremias Sulam, ICLR 2024, arXiv:2310.14344. Official code:
https://github.com/ZhenghanFang/learned-proximal-networks (``lpn/utils/prior.py`` ``evaluate_prior``,
``lpn/utils/invert_model/invert_cvx_gd.py``).

f_theta = grad psi is the prox of R_theta, and for x = f_theta(y) (Prop. 3.1 / Thm. A.1):

    R_theta(x) = <x, y> - ||x||^2 / 2 - psi(y)          (up to an additive constant)

To evaluate R at a given x the map is inverted: y* = argmin_y psi(y) - <x, y>, a smooth convex problem
whose gradient is f(y) - x, so f(y*) = x exactly at its minimiser. The residual is ``max_b ||f(y_b) - x_b||``
(absolute, L2 over a sample's entries); ``converged`` means every sample reached ``tol``. x must lie in the
range of f: with alpha > 0 that is everywhere, with alpha = 0 f is bounded and an x outside its range is
reported as not converged (the residual stalls), never as a value.

The minimisation, a choice of this implementation: gradient descent with a Barzilai-Borwein step per sample
(BB1 = s^T s / s^T d; the secant Newton step in 1-D), safeguarded by backtracking until the step is not too
long: <g_new, g> >= -(1 - 2c) ||g||^2 with c = 1e-4, the Armijo condition written with the trapezoid rule
on gradients only (exact on quadratics), so it can be checked at float32 precision where objective values
no longer resolve the decrease. All samples step in parallel; a sample that reached ``tol`` stops moving.
The official code runs Adam (lr 1e-2, 2000 iterations, from y = 0) with no stopping test; y0 = 0 is kept.
(The official ``evaluate_prior`` also returns ``model(x)`` where ``model(y)`` was meant; not copied.)
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gradhub.errors import UnsupportedInputError
from gradhub.kinds.inputs import require_finite, require_tensor
from gradhub.kinds.solver import Iterate, SolverResult, solver
from gradhub_lpn import LPN_PRIOR
from gradhub_lpn.networks import _ProximalNetwork, potential_and_gradient

ARMIJO = 1e-4
MAX_HALVINGS = 60
"""Backtracking halvings per iteration; ~1e-18 of the trial step, where g_new = g to round-off."""


@dataclass
class PriorResult(SolverResult):
    """``solution`` is y* (shaped like x) with f(y*) = x; ``prior`` is R_theta(x), shape (B,)."""

    prior: Tensor | None = None
    potential: Tensor | None = None
    """psi(y*), shape (B,)."""


def check_model(method: str, model: object) -> nn.Module:
    """A module with ``scalar(y) -> (B, 1)`` (an LPN, a ConvLPN or an official LPN network)."""
    if not isinstance(model, nn.Module) or not callable(getattr(model, "scalar", None)):
        raise UnsupportedInputError(
            method,
            "model",
            type(model).__name__,
            "model must be an nn.Module with scalar(y) -> (B, 1), the convex potential (an LPN or ConvLPN)",
        )
    return model


def check_points(method: str, model: nn.Module, name: str, x: Tensor) -> None:
    """``x`` is a batch the model accepts (its own input checks), finite, on its device and in its dtype."""
    require_tensor(method, name, x, min_dim=2, nonempty=True, what="(a batch, shaped like the model's input)")
    if isinstance(model, _ProximalNetwork):
        try:
            model._check(x)
        except UnsupportedInputError as error:
            raise UnsupportedInputError(method, f"{name} ({error.what})", error.value, error.allowed) from None
        return
    require_finite(method, name, x)


def _rowwise_dot(first: Tensor, second: Tensor) -> Tensor:
    return (first * second).sum(1)


@solver(LPN_PRIOR, result=PriorResult)
def lpn_prior(model: nn.Module, x: Tensor, y0: Tensor | None = None, *, tol: float, max_iter: int) -> Iterator[Iterate]:
    """Evaluate the learned prior R_theta at ``x`` by inverting the LPN ``model``'s proximal map.

    Args:
        model: an LPN or ConvLPN (any module with ``scalar(y) -> (B, 1)``); left unchanged.
        x: (B, ...) points shaped like the model's input, in its dtype and on its device.
        y0: starting point shaped like ``x`` (default 0, as the official code).
        progress: optional callback; one update per iteration with the residual.

    Returns:
        ``PriorResult``: ``solution`` = y* with f(y*) = x, ``prior`` = R_theta(x) (B,) up to a constant,
        ``potential`` = psi(y*), ``residuals`` = max_b ||f(y_b) - x_b|| before and after each iteration.
    """
    method = LPN_PRIOR.name
    check_model(method, model)
    check_points(method, model, "x", x)
    if y0 is not None:
        check_points(method, model, "y0", y0)
        if y0.shape != x.shape:
            raise UnsupportedInputError(
                method, "y0 shape", tuple(y0.shape), f"y0 must be shaped like x {tuple(x.shape)}"
            )
    shape, batch = x.shape, x.shape[0]
    target = x.reshape(batch, -1)
    y = torch.zeros_like(target) if y0 is None else y0.reshape(batch, -1).clone()

    def evaluate(points: Tensor) -> tuple[Tensor, Tensor]:
        psi, gradient = potential_and_gradient(model, points.reshape(shape), create_graph=False)
        return psi, gradient.reshape(batch, -1) - target  # grad of psi(y) - <x, y>

    def iterate(points: Tensor, psi: Tensor, norms: Tensor) -> Iterate:
        prior = _rowwise_dot(target, points) - 0.5 * _rowwise_dot(target, target) - psi
        extras = {"prior": prior, "potential": psi}
        return Iterate(points.reshape(shape), norms.max(), extras)

    psi, g = evaluate(y)
    norms = g.norm(dim=1)
    step = torch.ones_like(norms)  # f is 1-Lipschitz when R is convex: a unit step is the natural first try
    yield iterate(y, psi, norms)
    while True:
        active = norms > tol
        trial_step = step
        accepted = ~active
        new_y, new_psi, new_g = y, psi, g
        for _ in range(MAX_HALVINGS + 1):
            candidate = torch.where(accepted.unsqueeze(1), new_y, y - trial_step.unsqueeze(1) * g)
            cand_psi, cand_g = evaluate(candidate)
            # The step is short enough: <g_new, g> >= -(1 - 2c)||g||^2 (gradient-only Armijo, see the docstring).
            ok = _rowwise_dot(cand_g, g) >= -(1 - 2 * ARMIJO) * _rowwise_dot(g, g)
            ok = ok & torch.isfinite(cand_g).all(dim=1) & torch.isfinite(cand_psi)
            newly = ok & ~accepted
            new_y = torch.where(newly.unsqueeze(1), candidate, new_y)
            new_psi = torch.where(newly, cand_psi, new_psi)
            new_g = torch.where(newly.unsqueeze(1), cand_g, new_g)
            accepted = accepted | ok
            if bool(accepted.all()):
                break
            trial_step = torch.where(accepted, trial_step, trial_step / 2)
        moved = accepted & active
        s, d = new_y - y, new_g - g
        curvature = _rowwise_dot(s, d)
        # BB1 step s^T s / s^T d where the secant curvature is positive; otherwise double the accepted step.
        bb = _rowwise_dot(s, s) / torch.where(curvature > 0, curvature, torch.ones_like(curvature))
        step = torch.where(moved, torch.where(curvature > 0, bb, 2 * trial_step), step).clamp(1e-12, 1e12)
        y, psi, g = new_y, new_psi, new_g  # samples that did not move kept theirs (accepted from the start)
        norms = g.norm(dim=1)
        yield iterate(y, psi, norms)


def solve_or_warn(model: nn.Module, x: Tensor, options: Mapping[str, object]) -> PriorResult:
    """:func:`lpn_prior` for ``LPN.invert`` / ``LPN.prior``: a RuntimeWarning when it did not converge."""
    result = lpn_prior(model, x, **options)
    if not result.converged:
        warnings.warn(
            f"{LPN_PRIOR.name}: the inversion did not reach tol in {result.iterations} iterations (residual "
            f"{result.residuals[-1].item():.3g}); x may lie outside the range of the learned prox (alpha = 0)",
            RuntimeWarning,
            stacklevel=3,
        )
    return result
