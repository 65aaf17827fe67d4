"""Conformance checks for solvers: result contract, tolerance, iteration budget."""

from __future__ import annotations

from typing import Any

import torch

from gradhub.kinds.solver import SolverExample, SolverResult
from gradhub.specs import MethodSpec
from gradhub.testing._helpers import INVOKERS, RUNNERS, assert_finite, fail, load_example, load_target, tensors_of
from gradhub.testing._suite import conformance_check


def _example(spec: MethodSpec, device: torch.device, dtype: torch.dtype, seed: int = 0) -> SolverExample:
    return load_example(spec, device, dtype, seed, SolverExample)


def _solve(spec: MethodSpec, example: SolverExample, hparams: dict[str, Any]) -> SolverResult:
    result = load_target(spec)(*example.args, **hparams)
    if not isinstance(result, SolverResult):
        fail(spec, f"it returned {type(result).__name__}; a solver returns gradhub.kinds.solver.SolverResult")
    return result


def _hyperparameter(spec: MethodSpec, example: SolverExample, name: str) -> Any:
    return example.hparams.get(name, spec.params.model_fields[name].default)


def _run(spec: MethodSpec, device: torch.device, dtype: torch.dtype, seed: int) -> list[torch.Tensor]:
    example = _example(spec, device, dtype, seed)
    return tensors_of(_solve(spec, example, example.hparams))


RUNNERS["solver"] = _run
INVOKERS["solver"] = (SolverExample, _solve)


@conformance_check("solver", dtypes="declared")
def check_result_contract(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """converged is a bool, iterations an int, residuals a 1-D history of iterations + 1 finite values."""
    example = _example(spec, device, dtype)
    result = _solve(spec, example, example.hparams)
    if not isinstance(result.converged, bool):
        fail(spec, f"result.converged is {type(result.converged).__name__}, not bool")
    if not isinstance(result.iterations, int) or result.iterations < 0:
        fail(spec, f"result.iterations is {result.iterations!r}, not a non-negative int")
    residuals = result.residuals
    if not isinstance(residuals, torch.Tensor) or residuals.dim() != 1:
        fail(spec, "result.residuals must be a 1-D tensor (the residual before each iteration and after the last)")
    if residuals.numel() != result.iterations + 1:
        fail(
            spec, f"{residuals.numel()} residuals recorded for {result.iterations} iterations; expected iterations + 1"
        )
    assert_finite(spec, [residuals, *tensors_of(result.solution)], "residuals and solution")
    for tensor in tensors_of(result.solution):
        if tensor.device.type != device.type:
            fail(spec, f"the solution is on {tensor.device}, the problem on {device}")


@conformance_check("solver", dtypes="precise")
def check_converges_within_tol(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """On its example it converges: residual <= tol, and the independently computed residual agrees."""
    example = _example(spec, device, dtype)
    result = _solve(spec, example, example.hparams)
    tol = _hyperparameter(spec, example, "tol")
    if not result.converged:
        fail(
            spec,
            f"it did not converge on its example in {result.iterations} iterations "
            f"(residual {result.residuals[-1]:.3g})",
        )
    if result.residuals[-1].item() > tol:
        fail(spec, f"it reports convergence with residual {result.residuals[-1].item():.3g} > tol={tol}")
    independent = float(example.residual(result.solution))
    if not independent <= 10 * tol:
        fail(spec, f"it reports convergence, but the returned solution's residual is {independent:.3g} (tol={tol})")


@conformance_check("solver")
def check_max_iter_respected(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """With max_iter=1 and an unreachable tol it stops after one iteration and says it did not converge."""
    example = _example(spec, device, dtype)
    result = _solve(spec, example, {**example.hparams, "max_iter": 1, "tol": 1e-300})
    if result.iterations > 1:
        fail(spec, f"max_iter=1 but it ran {result.iterations} iterations")
    if result.converged and result.residuals[-1].item() > 1e-300:
        fail(spec, "it reports convergence although the residual is above tol")
