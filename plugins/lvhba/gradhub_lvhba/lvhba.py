"""LV-HBA: a single-loop, Hessian-free method for constrained bilevel optimisation.

Paper: Wei Yao, Chengming Yu, Shangzhi Zeng, Jin Zhang, "Constrained Bi-Level Optimization:
Proximal Lagrangian Value Function Approach and Hessian-free Algorithm", ICLR 2024,
arXiv:2401.16164. Official code: https://github.com/SUSTech-Optimization/LV-HBA (NumPy/torch
scripts with hand-written gradients per problem; ``Toy-example/LLC/LV-HBA.py`` is the reference
for the update order and the defaults).

The problem (Section 2)::

    min_{x in X, y in Y} F(x, y)   s.t.  y in S(x) = argmin_{y' in Y} { f(x, y') : g(x, y') <= 0 },

f(x, .) and g(x, .) convex, g(x, y) in R^m (m constraints, coupled in x and y). The proximal
Lagrangian value function (Eq. 4) is the value of a strongly-convex-strongly-concave min-max,

    v(x, y, z) = min_{theta in Y} max_{lam >= 0} f(x, theta) + <lam, g(x, theta)>
                                                 + ||theta - y||^2 / (2 gamma1) - ||lam - z||^2 / (2 gamma2),

and the problem is reformulated as ``min F(x, y) s.t. f(x, y) - v(x, y, z) <= 0, (x, y) in C,
z >= 0`` with C = {x in X, y in Y, g(x, y) <= 0}. LV-HBA (Algorithm 1) runs, with the penalty
``c_k = c0 (k + 1)^p`` (0 < p < 1/2), on phi_k = F / c_k + f - v:

    (3a) theta^{k+1} = Proj_Y(theta^k - eta [grad_y f(x^k, theta^k) + J_y g(x^k, theta^k)^T lam^k
                                              + (theta^k - y^k) / gamma1])
         lam^{k+1}   = Proj_[0, r](lam^k + eta [g(x^k, theta^k) - (lam^k - z^k) / gamma2])
    (3b) d_x = grad_x F(x^k, y^k) / c_k + grad_x f(x^k, y^k) - grad_x f(x^k, theta^{k+1})
               - J_x g(x^k, theta^{k+1})^T lam^{k+1}
         d_y = grad_y F(x^k, y^k) / c_k + grad_y f(x^k, y^k) - (y^k - theta^{k+1}) / gamma1
         d_z = (z^k - lam^{k+1}) / gamma2
    (3c) (x^{k+1}, y^{k+1}) = Proj_C((x^k, y^k) - alpha (d_x, d_y)),   z^{k+1} = Proj_[0, r](z^k - beta d_z)

(3b) is Danskin's theorem at the surrogate saddle point (theta^{k+1}, lam^{k+1}): grad v is
(grad_x f + J_x g^T lam, (y - theta) / gamma1, (lam - z) / gamma2) there, so no Hessian and no
second-order autograd is ever used: every J^T lam is one backward pass of <lam, g>. An iteration
evaluates f and g at (x^k, theta^k) and at (x^k, theta^{k+1}) and F and f at (x^k, y^k), with two
backward passes (the two gradients at the old iterate share one).

Readings (README, "Readings chosen"): the inner step uses the old (theta^k, lam^k) and the outer
step the new (theta^{k+1}, lam^{k+1}), as in the official code; lambda and z live in [0, r]^m (the
paper) or [-r, r]^m with ``constraint="equality"`` (the official LLC toy, whose constraint is an
equality); theta^0 = Proj_Y(y^0), lam^0 = z^0 = 0 unless given; the starting point is projected
(x^0, y^0 onto C, lam^0 and z^0 onto the box), as the official script projects its start; the
solver's residual is max(stationarity, |f - v|) (below).

Restarts run as a batch where the math allows: with 2-D ``x0`` (B, d_x) and ``y0`` (B, d_y) each row
is an independent run (F, f return (B,), g returns (B, m), projections act row by row); one
autograd pass of the summed values gives every row's gradient because the rows do not interact.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import validated
from gradhub.kinds.inputs import require_same_device, require_tensor
from gradhub.kinds.solver import Iterate, SolverResult, solver
from gradhub.progress import ProgressCallback, tracker
from gradhub_lvhba import LV_HBA, LVHBAStepHyperparameters
from gradhub_lvhba.projections import PairProjection, Projection, identity, product

Objective = Callable[[Tensor, Tensor], Tensor]
"""``F(x, y)`` or ``f(x, y)``: a scalar (one run) or a (B,) vector (B restarts)."""
Constraint = Callable[[Tensor, Tensor], Tensor]
"""``g(x, y)``: (m,) constraint values, g <= 0 feasible (or (B, m) for B restarts)."""

METHOD = LV_HBA.name
FLOATS = (torch.float32, torch.float64)


def _shown(value: Any) -> Any:
    return tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__


def _sq(t: Tensor) -> Tensor:
    """||t||^2 per run: over the last dimension (a scalar for one run, (B,) for a batch)."""
    return t.square().sum(-1)


def _gradients(total: Tensor, inputs: list[Tensor]) -> list[Tensor]:
    """First-order autograd gradients of ``total`` (no ``create_graph``); zeros where it does not depend."""
    if not total.requires_grad:
        return [torch.zeros_like(t) for t in inputs]
    grads = torch.autograd.grad(total, inputs, allow_unused=True)
    return [torch.zeros_like(t) if grad is None else grad for t, grad in zip(inputs, grads)]


class _Functions:
    """The user's F, f, g with their outputs checked (shape and type, no host sync) and named in errors."""

    def __init__(self, F: Objective, f: Objective, g: Constraint | None, batch: int | None) -> None:
        for name, fn in (("F", F), ("f", f)):
            if not callable(fn):
                raise UnsupportedInputError(METHOD, name, type(fn).__name__, f"{name} must be callable: {name}(x, y)")
        if g is not None and not callable(g):
            raise UnsupportedInputError(METHOD, "g", type(g).__name__, "g must be callable, g(x, y) -> (m,), or None")
        self.F, self.f, self.g, self.batch = F, f, g, batch
        self.count: int | None = None  # m, the number of constraints, fixed by the first call of g

    def value(self, name: str, fn: Objective, x: Tensor, y: Tensor) -> Tensor:
        out = fn(x, y)
        if self.batch is None:
            if not isinstance(out, Tensor) or out.numel() != 1:
                raise UnsupportedInputError(
                    METHOD, f"{name} output", _shown(out), f"{name}(x, y) must return a scalar tensor"
                )
            out = out.reshape(())
        elif not isinstance(out, Tensor) or tuple(out.shape) != (self.batch,):
            raise UnsupportedInputError(
                METHOD,
                f"{name} output",
                _shown(out),
                f"with {self.batch} restarts (2-D x0, y0), {name}(x, y) must return one value per row: shape "
                f"({self.batch},)",
            )
        if not out.is_floating_point():
            raise UnsupportedInputError(METHOD, f"{name} output dtype", out.dtype, f"{name} must return floats")
        return out

    def upper(self, x: Tensor, y: Tensor) -> Tensor:
        return self.value("F", self.F, x, y)

    def lower(self, x: Tensor, y: Tensor) -> Tensor:
        return self.value("f", self.f, x, y)

    def constraint(self, x: Tensor, y: Tensor) -> Tensor:
        assert self.g is not None
        out = self.g(x, y)
        if not isinstance(out, Tensor):
            raise UnsupportedInputError(METHOD, "g output", _shown(out), "g(x, y) must return a tensor")
        if self.batch is None:
            if out.dim() == 0:
                out = out.reshape(1)
            if out.dim() != 1 or out.numel() == 0:
                raise UnsupportedInputError(
                    METHOD, "g output", tuple(out.shape), "g(x, y) must return a 1-D tensor of m >= 1 constraint values"
                )
        elif out.dim() != 2 or out.shape[0] != self.batch or out.shape[1] == 0:
            raise UnsupportedInputError(
                METHOD,
                "g output",
                tuple(out.shape),
                f"with {self.batch} restarts, g(x, y) must return ({self.batch}, m) constraint values, m >= 1",
            )
        if not out.is_floating_point():
            raise UnsupportedInputError(METHOD, "g output dtype", out.dtype, "g must return floats")
        if self.count is None:
            self.count = out.shape[-1]
        elif out.shape[-1] != self.count:
            raise UnsupportedInputError(
                METHOD, "g output", tuple(out.shape), f"g returned {self.count} constraints before; m must not change"
            )
        return out


def _checked_projection(name: str, project: Callable[..., Any]) -> Callable[..., Any]:
    if not callable(project):
        raise UnsupportedInputError(METHOD, name, type(project).__name__, f"{name} must be callable or None")
    return project


def _same_tensor(name: str, out: Any, like: Tensor) -> Tensor:
    if not isinstance(out, Tensor) or out.shape != like.shape or out.dtype != like.dtype or out.device != like.device:
        shown = f"{tuple(out.shape)} {out.dtype} on {out.device}" if isinstance(out, Tensor) else type(out).__name__
        raise UnsupportedInputError(
            METHOD,
            f"{name} output",
            shown,
            f"{name} must return a tensor like its input: {tuple(like.shape)} {like.dtype} on {like.device}",
        )
    return out


@validated(LV_HBA, LVHBAStepHyperparameters)
class LVHBA:
    """LV-HBA's iteration as an object: ``step()`` applies one iteration (Algorithm 1, steps 3a-3c).

    Args:
        F: upper-level objective ``F(x, y)`` (a scalar; (B,) for B restarts).
        f: lower-level objective ``f(x, y)``, convex in y (a scalar; (B,)).
        g: lower-level constraints ``g(x, y)`` -> (m,) with g <= 0 feasible ((B, m)); None: no constraint.
        x0, y0: starting points, 1-D (one run) or 2-D (B, d) (B independent restarts); float32 or float64.
        proj_C: ``proj_C(x, y) -> (x, y)``, the projection onto C = {x in X, y in Y, g(x, y) <= 0}.
            None: (x, y) is projected onto X x Y with ``proj_X``, ``proj_Y`` and g is not enforced on
            (x, y) (a warning says so when g is given).
        proj_X: ``proj_X(x)`` onto X, used only when ``proj_C`` is None (identity when None).
        proj_Y: ``proj_Y(theta)`` onto Y for the inner variable theta (identity when None).
        lam0, z0: starting multipliers (m,) or (B, m); zeros when None.

    Attributes ``x``, ``y``, ``z``, ``theta``, ``lam`` hold the current iterate, ``k`` the number
    of iterations done. All gradients are first order (autograd, no ``create_graph``).
    """

    def __init__(
        self,
        F: Objective,
        f: Objective,
        g: Constraint | None,
        x0: Tensor,
        y0: Tensor,
        *,
        proj_C: PairProjection | None = None,
        proj_X: Projection | None = None,
        proj_Y: Projection | None = None,
        lam0: Tensor | None = None,
        z0: Tensor | None = None,
        alpha: float,
        beta: float,
        eta: float,
        gamma1: float,
        gamma2: float,
        c0: float,
        p: float,
        lam_max: float,
        constraint: str,
    ) -> None:
        x0 = require_tensor(METHOD, "x0", x0, dtypes=FLOATS, dim=(1, 2), nonempty=True, what="(d_x,) or (B, d_x)")
        y0 = require_tensor(METHOD, "y0", y0, dtypes=FLOATS, dim=(1, 2), nonempty=True, what="(d_y,) or (B, d_y)")
        require_same_device(METHOD, x0=x0, y0=y0)
        if y0.dim() != x0.dim() or (x0.dim() == 2 and y0.shape[0] != x0.shape[0]):
            raise UnsupportedInputError(
                METHOD,
                "x0, y0 shapes",
                f"{tuple(x0.shape)} and {tuple(y0.shape)}",
                "x0 and y0 must both be 1-D (one run) or both 2-D with the same number of rows (restarts)",
            )
        if y0.dtype != x0.dtype:
            raise UnsupportedInputError(METHOD, "y0 dtype", y0.dtype, f"y0 must have x0's dtype ({x0.dtype})")
        self.batch = x0.shape[0] if x0.dim() == 2 else None
        self.functions = _Functions(F, f, g, self.batch)
        if proj_C is not None and proj_X is not None:
            raise UnsupportedInputError(
                METHOD, "proj_X", "given with proj_C", "proj_X is used only without proj_C (C = X x Y); give one"
            )
        self.proj_Y = _checked_projection("proj_Y", proj_Y) if proj_Y is not None else identity
        self.proj_C = (
            _checked_projection("proj_C", proj_C)
            if proj_C is not None
            else product(_checked_projection("proj_X", proj_X) if proj_X is not None else identity, self.proj_Y)
        )
        self.alpha, self.beta, self.eta = alpha, beta, eta
        self.gamma1, self.gamma2, self.c0, self.p = gamma1, gamma2, c0, p
        self.lam_max, self.constraint = lam_max, constraint
        self.lam_min = 0.0 if constraint == "inequality" else -lam_max

        # The start, projected (the paper's (x^0, y^0) lies in C); copies, so the caller's tensors stay as given.
        self.x, self.y = self.project_pair(x0.detach().clone(), y0.detach().clone())
        self.theta = self.project_theta(self.y.clone())
        self.k = 0
        self._check_start(proj_C is None)
        count = self.functions.count or 0
        self.lam = self._multipliers("lam0", lam0, count)
        self.z = self._multipliers("z0", z0, count)

    # -- projections -------------------------------------------------------------------------------

    def project_pair(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Proj_C(x, y), its output checked (shapes, dtype, device)."""
        out = self.proj_C(x, y)
        if not isinstance(out, tuple | list) or len(out) != 2:
            raise UnsupportedInputError(METHOD, "proj_C output", type(out).__name__, "proj_C(x, y) must return (x, y)")
        return _same_tensor("proj_C (x)", out[0], x), _same_tensor("proj_C (y)", out[1], y)

    def project_theta(self, theta: Tensor) -> Tensor:
        """Proj_Y(theta), its output checked."""
        return _same_tensor("proj_Y", self.proj_Y(theta), theta)

    def project_multiplier(self, lam: Tensor) -> Tensor:
        """Proj onto [0, r]^m (inequalities) or [-r, r]^m (equalities)."""
        return lam.clamp(self.lam_min, self.lam_max)

    def penalty(self, k: int | None = None) -> float:
        """c_k = c0 (k + 1)^p (k: this iteration's index when None)."""
        return self.c0 * ((self.k if k is None else k) + 1) ** self.p

    # -- set-up checks -------------------------------------------------------------------------------

    def _check_start(self, no_proj_C: bool) -> None:
        """F, f, g at the projected start: right shapes (checked on call) and finite (one host read)."""
        fns = self.functions
        values = {"F": fns.upper(self.x, self.y), "f": fns.lower(self.x, self.y)}
        if fns.g is not None:
            values["g"] = fns.constraint(self.x, self.y)
        bad = torch.stack([~torch.isfinite(v).all() for v in values.values()]).tolist()
        for (name, value), is_bad in zip(values.items(), bad):
            if is_bad:
                raise UnsupportedInputError(
                    METHOD,
                    f"{name} value",
                    f"non-finite at the (projected) starting point: {value.flatten()[:4].tolist()}",
                    f"{name}(x0, y0) must be finite",
                )
        if fns.g is None:
            return
        if no_proj_C:
            warnings.warn(
                f"{METHOD}: proj_C is None, so (x, y) is projected onto X x Y only and the lower-level constraint "
                "g(x, y) <= 0 is not enforced on (x, y); the paper keeps (x, y) in C = {x in X, y in Y, g(x, y) <= 0} "
                "and LV-HBA can diverge without it: pass proj_C",
                UserWarning,
                stacklevel=4,
            )
            return
        g = values["g"]
        violation = (g.abs() if self.constraint == "equality" else g.clamp_min(0)).max()
        allowed = torch.finfo(g.dtype).eps ** 0.5 * (1 + g.abs().max())
        if bool(violation > allowed):
            warnings.warn(
                f"{METHOD}: after proj_C the start violates the lower-level constraint by {float(violation):.3g} "
                f"(g(x0, y0) {'!= 0' if self.constraint == 'equality' else '> 0'}): proj_C does not map into the "
                "lower-level feasible set, or C is empty (infeasible constraints)",
                UserWarning,
                stacklevel=4,
            )

    def _multipliers(self, name: str, given: Tensor | None, count: int) -> Tensor:
        shape = (count,) if self.batch is None else (self.batch, count)
        if given is None:
            return self.x.new_zeros(shape)
        given = require_tensor(METHOD, name, given, dtypes=FLOATS)
        if tuple(given.shape) != shape:
            raise UnsupportedInputError(
                METHOD, f"{name} shape", tuple(given.shape), f"{name} must have shape {shape} (m = {count} constraints)"
            )
        require_same_device(METHOD, x0=self.x, **{name: given})
        return self.project_multiplier(given.detach().to(self.x.dtype).clone())

    # -- the iteration ---------------------------------------------------------------------------------

    def _inner_objective(self, theta: Tensor, lam: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:
        """(f(x, theta) + <lam, g(x, theta)> summed over restarts, g(x, theta), theta's leaf); under enable_grad."""
        fns = self.functions
        leaf = theta.detach().requires_grad_(True)
        total = fns.lower(self.x, leaf).sum()
        g_value = None
        if fns.g is not None:
            g_value = fns.constraint(self.x, leaf)
            total = total + (lam * g_value).sum()
        return total, g_value, leaf

    def _inner_step(self, theta: Tensor, lam: Tensor, grad: Tensor, g_value: Tensor | None) -> tuple[Tensor, Tensor]:
        """Step 3a given grad_theta [f(x, theta) + <lam, g(x, theta)>] and g(x, theta)."""
        theta_next = self.project_theta(theta - self.eta * (grad + (theta - self.y) / self.gamma1))
        if g_value is None:
            return theta_next, lam
        return theta_next, self.project_multiplier(lam + self.eta * (g_value.detach() - (lam - self.z) / self.gamma2))

    def inner_update(self, theta: Tensor, lam: Tensor) -> tuple[Tensor, Tensor]:
        """Step 3a at the current (x, y, z): one projected gradient descent-ascent step from (theta, lam).

        theta - eta [grad_y f(x, theta) + J_y g(x, theta)^T lam + (theta - y) / gamma1] onto Y, and
        lam + eta [g(x, theta) - (lam - z) / gamma2] onto the multiplier box.
        """
        with torch.enable_grad():
            total, g_value, leaf = self._inner_objective(theta, lam)
            (grad,) = _gradients(total, [leaf])
        return self._inner_step(theta, lam, grad, g_value)

    def value_function_gradient(self, theta: Tensor, lam: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """grad v(x, y, z) by Danskin's theorem with (theta, lam) as the saddle point, and v's estimate there.

        (grad_x f(x, theta) + J_x g(x, theta)^T lam, (y - theta) / gamma1, (lam - z) / gamma2) and
        f(x, theta) + <lam, g(x, theta)> + ||theta - y||^2 / (2 gamma1) - ||lam - z||^2 / (2 gamma2);
        one forward-backward pass of the Lagrangian in x (no second-order term).
        """
        fns, x, y, z = self.functions, self.x, self.y, self.z
        with torch.enable_grad():
            xp = x.detach().requires_grad_(True)
            lagrangian = fns.lower(xp, theta)
            if fns.g is not None:
                lagrangian = lagrangian + (lam * fns.constraint(xp, theta)).sum(-1)
            (grad_x,) = _gradients(lagrangian.sum(), [xp])
        value = lagrangian.detach() + _sq(theta - y) / (2 * self.gamma1) - _sq(lam - z) / (2 * self.gamma2)
        return grad_x, (y - theta) / self.gamma1, (lam - z) / self.gamma2, value

    def _penalised_objective(self, c: float) -> tuple[Tensor, Tensor, Tensor, list[Tensor]]:
        """(F(x, y) / c + f(x, y) summed over restarts, F, f, the [x, y] leaves); call under enable_grad."""
        leaves = [self.x.detach().requires_grad_(True), self.y.detach().requires_grad_(True)]
        upper, lower = self.functions.upper(*leaves), self.functions.lower(*leaves)
        return (upper / c + lower).sum(), upper, lower, leaves

    def _directions(
        self, theta: Tensor, lam: Tensor, grad_x: Tensor, grad_y: Tensor, upper: Tensor, lower: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
        """Step 3b given grad (F / c + f) at (x, y): subtract grad v at the surrogate saddle point (theta, lam)."""
        grad_x_v, grad_y_v, grad_z_v, value = self.value_function_gradient(theta, lam)
        return grad_x - grad_x_v, grad_y - grad_y_v, -grad_z_v, {"F": upper.detach(), "f": lower.detach(), "v": value}

    def directions(
        self, theta: Tensor, lam: Tensor, c: float | None = None
    ) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
        """Step 3b: (d_x, d_y, d_z) = grad [F / c + f - v] at (x, y, z), with (theta, lam) as v's saddle point.

        Also returns the values ``F`` = F(x, y), ``f`` = f(x, y) and ``v``, the estimate of v(x, y, z).
        ``c`` defaults to c_k of this iteration.
        """
        with torch.enable_grad():
            total, upper, lower, leaves = self._penalised_objective(self.penalty() if c is None else c)
            grad_x, grad_y = _gradients(total, leaves)
        return self._directions(theta, lam, grad_x, grad_y, upper, lower)

    def step(self) -> dict[str, Tensor]:
        """One LV-HBA iteration (3a, 3b, 3c); returns the metrics of the iterate it started from.

        ``stationarity``: sqrt(||dx||^2 / alpha^2 + ||dy||^2 / alpha^2 + ||dz||^2 / beta^2
        + ||dtheta||^2 / eta^2 + ||dlam||^2 / eta^2) of this step (zero exactly at a fixed point of the
        iteration: a stationary point of phi_k with (theta, lam) the inner saddle point);
        ``value_gap``: f(x, y) - v(x, y, z) with v estimated at (theta^{k+1}, lam^{k+1}) (>= 0 and
        zero iff y solves the lower level, for the exact v); ``residual``: max(stationarity,
        |value_gap|); ``upper_value``: F(x, y); ``penalty``: c_k. Each is a scalar tensor (one
        run) or (B,) (restarts).

        It is :meth:`inner_update`, then :meth:`directions` at the new (theta, lam), then the projected
        steps; the two gradients taken at the old iterate (3a's in theta, grad (F / c + f) in (x, y))
        share one backward pass, so an iteration costs two.
        """
        with torch.no_grad():
            c = self.penalty()
            with torch.enable_grad():
                inner, g_value, theta_leaf = self._inner_objective(self.theta, self.lam)
                penalised, upper, lower, leaves = self._penalised_objective(c)
                grad_theta, grad_x, grad_y = _gradients(inner + penalised, [theta_leaf, *leaves])
            theta, lam = self._inner_step(self.theta, self.lam, grad_theta, g_value)
            d_x, d_y, d_z, values = self._directions(theta, lam, grad_x, grad_y, upper, lower)
            x, y = self.project_pair(self.x - self.alpha * d_x, self.y - self.alpha * d_y)
            z = self.project_multiplier(self.z - self.beta * d_z)
            moved = (
                (_sq(x - self.x) + _sq(y - self.y)) / self.alpha**2
                + _sq(z - self.z) / self.beta**2
                + (_sq(theta - self.theta) + _sq(lam - self.lam)) / self.eta**2
            )
            stationarity = moved.sqrt()
            gap = values["f"] - values["v"]
            self.x, self.y, self.z, self.theta, self.lam = x, y, z, theta, lam
            self.k += 1
        return {
            "residual": torch.maximum(stationarity, gap.abs()),
            "stationarity": stationarity,
            "value_gap": gap,
            "upper_value": values["F"],
            "penalty": torch.full_like(values["F"], c),
        }

    def run(self, n_iter: int, *, progress: ProgressCallback | None = None) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """``n_iter`` iterations; returns (x, y, history), history[name] the metrics of each step stacked."""
        if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 0:
            raise UnsupportedInputError(METHOD, "n_iter", n_iter, "n_iter must be an int >= 0")
        history: dict[str, list[Tensor]] = {}
        with tracker(progress, total=n_iter, task=METHOD) as bar:
            for _ in range(n_iter):
                metrics = self.step()
                for name, value in metrics.items():
                    history.setdefault(name, []).append(value)
                bar.update(residual=metrics["residual"].max())
        return self.x, self.y, {name: torch.stack(values) for name, values in history.items()}


@dataclass
class LVHBAResult(SolverResult):
    """A :class:`SolverResult` whose ``solution`` is ``(x, y)``, with the rest of the iterate and its trace.

    History fields hold one entry per iterate 0..iterations ((iterations + 1, B) for restarts);
    ``residuals`` is their max over restarts of max(stationarity, |value_gap|).
    """

    theta: Tensor | None = None
    """The inner variable theta (the lower-level proximal point estimate) of the returned iterate."""
    lam: Tensor | None = None
    """The inner multiplier lambda of the returned iterate."""
    z: Tensor | None = None
    """The outer multiplier variable z of the returned iterate."""
    stationarity: Tensor | Any = None
    """The scaled length of the step each iterate would take (see :meth:`LVHBA.step`)."""
    value_gaps: Tensor | Any = None
    """f(x, y) - v(x, y, z) at each iterate (v estimated at the next inner iterate)."""
    upper_values: Tensor | Any = None
    """F(x, y) at each iterate."""
    penalties: Tensor | Any = None
    """c_k of the step taken from each iterate."""

    def __post_init__(self) -> None:
        # The iteration hands over its per-iterate lists (see ``iterates``): stacked once, here.
        for name in ("stationarity", "value_gaps", "upper_values", "penalties"):
            value = getattr(self, name)
            if isinstance(value, list):
                setattr(self, name, torch.stack(value))

    @property
    def x(self) -> Tensor:
        return self.solution[0]

    @property
    def y(self) -> Tensor:
        return self.solution[1]


def iterates(stepper: LVHBA) -> Iterator[Iterate]:
    """The solver's iteration over a ready :class:`LVHBA`: each iterate with the residual of its next step.

    The residual of iterate k is known once step k has been taken, so iterate k is yielded after it
    (the solution returned after ``max_iter`` iterations is x^{max_iter}, and one more step was computed).
    """
    fields = {"stationarity": "stationarity", "value_gaps": "value_gap", "upper_values": "upper_value"}
    fields["penalties"] = "penalty"  # result field -> metric of LVHBA.step
    history: dict[str, list[Tensor]] = {field: [] for field in fields}
    while True:
        x, y, theta, lam, z = stepper.x, stepper.y, stepper.theta, stepper.lam, stepper.z
        metrics = stepper.step()
        for field, metric in fields.items():
            history[field].append(metrics[metric])
        residual = metrics["residual"] if stepper.batch is None else metrics["residual"].amax()
        yield Iterate((x, y), residual, {"theta": theta, "lam": lam, "z": z, **history})


@solver(LV_HBA, result=LVHBAResult)
def lv_hba(
    F: Objective,
    f: Objective,
    g: Constraint | None,
    x0: Tensor,
    y0: Tensor,
    *,
    proj_C: PairProjection | None = None,
    proj_X: Projection | None = None,
    proj_Y: Projection | None = None,
    lam0: Tensor | None = None,
    z0: Tensor | None = None,
    alpha: float,
    beta: float,
    eta: float,
    gamma1: float,
    gamma2: float,
    c0: float,
    p: float,
    lam_max: float,
    constraint: str,
    tol: float,
    max_iter: int,
) -> Iterator[Iterate]:
    """Solve a constrained bilevel problem with LV-HBA (Algorithm 1) from (x0, y0).

    The arguments are those of :class:`LVHBA`. Returns an :class:`LVHBAResult`: ``solution = (x, y)``,
    ``converged`` when max(stationarity, |f - v|) <= tol (every restart) at a finite iterate.
    """
    # Every step hyperparameter is written out: the solver frame cannot take them as **kwargs (it appends
    # ``progress`` after the iteration's parameters, which must then end in a keyword-only one).
    hyperparameters = {"alpha": alpha, "beta": beta, "eta": eta, "gamma1": gamma1, "gamma2": gamma2, "c0": c0}
    hyperparameters.update(p=p, lam_max=lam_max, constraint=constraint)
    stepper = LVHBA(F, f, g, x0, y0, proj_C=proj_C, proj_X=proj_X, proj_Y=proj_Y, lam0=lam0, z0=z0, **hyperparameters)
    yield from iterates(stepper)


__all__ = [LVHBA.__name__, LVHBAResult.__name__, iterates.__name__, lv_hba.__name__]
