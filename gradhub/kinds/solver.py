"""The solver kind: a callable ``solve(*problem, tol=..., max_iter=..., **hparams) -> SolverResult``.

Its hyperparameters include ``tol`` (stop when the residual is at most ``tol``) and
``max_iter``. The result records whether it converged, how many iterations it took and
the residual after each (``residuals[0]`` before the first).

The call frame (:func:`solver`) owns what every solver repeats, so a solver plugin writes its
iteration and nothing else::

    @solver(CG)                                # the spec: name, hyperparameter model
    def cg(A, b, x0=None, *, tol, max_iter):   # defaults come from CG.params
        x, r = ...                             # set-up
        yield Iterate(x, r.norm())             # the state before the first iteration
        while True:                            # the frame stops it (tol, max_iter)
            ...                                # one iteration of the paper's method
            yield Iterate(x, r.norm())

The frame validates the hyperparameters against the spec's model, counts iterations, stops at
``residual <= tol`` or after ``max_iter`` iterations (or when the iteration returns), keeps the
residual history, reports progress, runs under ``torch.no_grad()``, and sets
``converged=True`` only when the last residual is at most ``tol`` and the solution and the
residual are finite. A non-finite residual stops the iteration at once (``converged=False``).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from gradhub.hyperparameters import bind_and_validate, bind_to_spec, public_signature
from gradhub.kernels.reductions import all_finite
from gradhub.progress import ProgressCallback, tracker

__all__ = ["Iterate", "SolverExample", "SolverResult", "is_solver_target", "solver"]


@dataclass
class SolverResult:
    solution: Any
    converged: bool
    iterations: int
    residuals: torch.Tensor
    """1-D, ``iterations + 1`` entries: the residual before the first iteration and after each."""


@dataclass(kw_only=True)
class SolverExample:
    args: tuple[Any, ...]
    hparams: dict[str, Any] = field(default_factory=dict)
    residual: Callable[[Any], float]
    """The residual of a returned solution, computed independently of the solver."""


@dataclass
class Iterate:
    """What a solver's iteration yields: the current solution and its residual.

    ``residual`` is a number or a 0-d tensor (read once per iteration: one host sync). ``extras``
    become keyword arguments of the result type (a :class:`SolverResult` subclass with more
    fields); the last iterate's extras are used.
    """

    solution: Any
    residual: float | torch.Tensor
    extras: dict[str, Any] = field(default_factory=dict)


def is_solver_target(target: Any) -> bool:
    return callable(target) and not isinstance(target, type)


def _finite(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return bool(all_finite(value))
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (tuple, list)):
        return all(_finite(item) for item in value)
    if isinstance(value, dict):
        return all(_finite(item) for item in value.values())
    return True


def run_iterations(
    method: str,
    iterates: Iterator[Iterate],
    *,
    tol: float,
    max_iter: int,
    progress: ProgressCallback | None = None,
    result: type[SolverResult] = SolverResult,
) -> SolverResult:
    """Drive ``iterates`` to convergence, the iteration limit, its own end or a non-finite residual."""
    first = next(iterates, None)
    if first is None:
        raise RuntimeError(f"{method}: its iteration yielded nothing (it must yield the initial state first)")
    last = first
    # Floats, one read each (float() of a 0-d tensor); a tensor made once at the end: a per-iteration
    # tensor copy to the host cost more than a small CG iteration's own arithmetic.
    residual = float(first.residual)
    history = [residual]
    iterations = 0
    with tracker(progress, total=max_iter, task=method) as bar:
        while math.isfinite(residual) and not residual <= tol and iterations < max_iter:
            following = next(iterates, None)
            if following is None:
                break
            last = following
            iterations += 1
            residual = float(last.residual)
            history.append(residual)
            bar.update(residual=residual)
    iterates.close()
    converged = math.isfinite(residual) and residual <= tol and _finite(last.solution)
    return result(last.solution, converged, iterations, torch.tensor(history, dtype=torch.float64), **last.extras)


def solver(
    spec: Any, *, result: type[SolverResult] = SolverResult
) -> Callable[[Callable[..., Iterator[Iterate]]], Callable[..., SolverResult]]:
    """Make a solver from an iteration (a generator of :class:`Iterate`); see the module docstring.

    The returned function has the iteration's signature with each hyperparameter's default taken
    from ``spec.params`` and a keyword ``progress`` added; it carries ``spec``. The model must
    declare ``tol`` and ``max_iter``. The iteration receives every argument it declares.
    """
    model = spec.params
    for required in ("tol", "max_iter"):
        if required not in model.model_fields:
            raise TypeError(f"{spec.name}: a solver's hyperparameter model declares {required!r}")

    def decorate(iteration: Callable[..., Iterator[Iterate]]) -> Callable[..., SolverResult]:
        own = public_signature(iteration, model, spec.name)
        variadic = [p.name for p in own.parameters.values() if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if variadic:  # hyperparameters are validated, defaulted and documented by name
            raise TypeError(
                f"{spec.name}: a solver's iteration names each argument and hyperparameter in its signature; "
                f"it declares *{variadic[0]}"
            )
        progress_parameter = inspect.Parameter("progress", inspect.Parameter.KEYWORD_ONLY, default=None)
        signature = own.replace(
            parameters=[*own.parameters.values(), progress_parameter], return_annotation=result.__name__
        )

        @functools.wraps(iteration)
        def solve(*args: Any, **kwargs: Any) -> SolverResult:
            bound, values = bind_and_validate(spec.name, signature, model, args, kwargs)
            progress = bound.arguments.pop("progress", None)
            with torch.no_grad():
                return run_iterations(
                    spec.name,
                    iteration(*bound.args, **bound.kwargs),
                    tol=values["tol"],
                    max_iter=values["max_iter"],
                    progress=progress,
                    result=result,
                )

        bind_to_spec(solve, spec, model, iteration.__doc__, signature)
        return solve

    return decorate
