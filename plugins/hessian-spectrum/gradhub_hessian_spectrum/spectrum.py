"""Hessian spectra, their smoothed density, the Gauss-Newton split, and outlier counting.

Paper: "Empirical Analysis of the Hessian of Over-Parametrized Neural Networks", Levent
Sagun, Utku Evci, V. Ugur Guney, Yann Dauphin, Leon Bottou, 2017, arXiv:1706.04454. No
official code exists; PyHessian (github.com/amirgholami/PyHessian, ``pyhessian/hessian.py``)
is the cross-check: like it, the Hessian is that of the full-data training loss with the
model in eval mode (BatchNorm running statistics, no dropout).

* ``hessian_spectrum`` (§2): all eigenvalues of the dense Hessian (``torch.func.hessian``
  of the loss as a function of the flat parameter vector), or ``k`` Ritz values of k-step
  Lanczos with full reorthogonalisation on Hessian-vector products (top and bottom of
  the spectrum converge first).
* ``spectral_density``: the Gaussian-smoothed spectral measure by stochastic Lanczos quadrature.
* ``ggn_decomposition`` (§3, Eq. 3-4): eigenvalues of H, of G = J^T (d^2L/df^2) J and of R = H - G.
* ``outlier_count``: how many eigenvalues stand out of the bulk (§2: "the bulk centered near
  zero" and "outliers away from the bulk"; the paper gives no rule, these are ours).

Every probe returns float64 eigenvalues, sorted ascending, and leaves the model as it was.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
from torch import Tensor, nn

from gradhub.errors import HyperparameterError, UnsupportedInputError
from gradhub.hyperparameters import validated
from gradhub.kinds import evaluation_mode
from gradhub.kinds.inputs import require_tensor
from gradhub.progress import ProgressCallback, tracker
from gradhub_hessian_spectrum import GGN_DECOMPOSITION, HESSIAN_SPECTRUM, SPECTRAL_DENSITY
from gradhub_hessian_spectrum.curvature import (
    Curvature,
    CurvatureOperator,
    CurvatureProblem,
    LossFunction,
    check_dense_size,
    check_steps,
    prepare,
)
from gradhub_hessian_spectrum.lanczos import gaussian_density, lanczos, rademacher, ritz_decomposition, slq


@dataclass
class SpectralDensity:
    """A smoothed eigenvalue density and the quadrature it was built from."""

    grid: Tensor
    """(grid_points,) eigenvalue axis."""
    density: Tensor
    """(grid_points,) density on the grid; integrates to 1 (the kernel's tails are inside the grid)."""
    nodes: Tensor
    """(n_probes, m) Ritz values of each probe's Lanczos run."""
    weights: Tensor
    """(n_probes, m) quadrature weights; each row sums to 1."""


@dataclass
class GGNDecomposition:
    """Eigenvalues (ascending, float64) of H = G + R and of its two parts (Eq. 3-4)."""

    hessian: Tensor
    ggn: Tensor
    """Generalised Gauss-Newton G = J^T (d^2L/df^2) J: positive semi-definite for a convex loss."""
    residual: Tensor
    """R = H - G = sum_ic (dL/df_ic) d^2 f_ic / dtheta^2: vanishes with the residuals dL/df."""


def _check_generator(method: str, generator: torch.Generator | None, device: torch.device) -> None:
    if generator is not None and torch.device(generator.device).type != device.type:
        raise UnsupportedInputError(
            method, "generator device", generator.device, f"the generator must be on the parameters' device {device}"
        )


def _ritz_values(
    problem: CurvatureProblem,
    operator: CurvatureOperator,
    which: Curvature,
    k: int,
    generator: torch.Generator | None,
    progress: ProgressCallback | None,
    task: str,
) -> Tensor:
    start = rademacher(1, problem.dim, device=problem.theta.device, generator=generator)
    alphas, betas = lanczos(
        partial(operator, which),
        start,
        k,
        product_dtype=problem.theta.dtype,
        generator=generator,
        progress=progress,
        task=task,
    )
    return ritz_decomposition(alphas, betas)[0][0]


@validated(HESSIAN_SPECTRUM)
def hessian_spectrum(
    model: nn.Module,
    loss_fn: LossFunction,
    data: tuple[Tensor, Tensor],
    *,
    generator: torch.Generator | None = None,
    method: str,
    k: int,
    batch_size: int | None,
    dense_limit: int,
    params: Sequence[Tensor] | None = None,
    progress: ProgressCallback | None = None,
) -> Tensor:
    """Eigenvalues (ascending, float64) of the Hessian of ``loss_fn(model(X), Y)`` over all of ``data``.

    ``method="dense"``: all P eigenvalues of the symmetrised dense Hessian (P <= dense_limit).
    ``method="lanczos"``: the k Ritz values of k Lanczos steps (full reorthogonalisation, the
    basis in the parameters' precision, at least float32) from a Rademacher start vector drawn
    from ``generator``; one forward pass, the graph kept for the k products; extreme eigenvalues
    converge first, interior Ritz values summarise the bulk. ``params`` restricts the
    Hessian to some of the model's parameters (default: all that require grad).
    """
    name = HESSIAN_SPECTRUM.name
    problem = prepare(name, model, loss_fn, data, params, batch_size)
    _check_generator(name, generator, problem.theta.device)
    with evaluation_mode(model):
        if method == "dense":
            check_dense_size(name, problem, dense_limit)
            with tracker(progress, total=len(problem.batches), task=f"{name} (dense)") as bar:
                return torch.linalg.eigvalsh(problem.dense_hessian(bar).double())
        check_steps(name, "k", k, problem.dim)
        operator = CurvatureOperator(problem)
        return _ritz_values(problem, operator, "hessian", k, generator, progress, name)


@validated(SPECTRAL_DENSITY)
def spectral_density(
    model: nn.Module,
    loss_fn: LossFunction,
    data: tuple[Tensor, Tensor],
    *,
    generator: torch.Generator | None = None,
    n_probes: int,
    m: int,
    grid_points: int,
    sigma: float,
    batch_size: int | None,
    grid: Tensor | None = None,
    params: Sequence[Tensor] | None = None,
    progress: ProgressCallback | None = None,
) -> SpectralDensity:
    """Smoothed Hessian eigenvalue density by stochastic Lanczos quadrature (n_probes x m HVPs).

    The kernel is Gaussian with standard deviation ``sigma * (max node - min node)``; the
    default grid spans the nodes with 6 kernel widths on each side, so the density
    integrates to 1. A ``grid`` (1-D tensor) may be given instead.
    """
    name = SPECTRAL_DENSITY.name
    problem = prepare(name, model, loss_fn, data, params, batch_size)
    device = problem.theta.device
    _check_generator(name, generator, device)
    check_steps(name, "m", m, problem.dim)
    if grid is not None:
        require_tensor(name, "grid", grid, dim=1)
    with evaluation_mode(model):
        nodes, weights = slq(
            partial(CurvatureOperator(problem), "hessian"),
            problem.dim,
            n_probes=n_probes,
            m=m,
            device=device,
            product_dtype=problem.theta.dtype,
            generator=generator,
            progress=progress,
            task=name,
        )
    low, high = nodes.min(), nodes.max()
    width = sigma * torch.clamp(high - low, min=torch.finfo(torch.float64).tiny).clamp_min(
        1e-12 * torch.maximum(high.abs(), low.abs()).clamp_min(1e-300)
    )
    if grid is None:
        grid = (
            low
            - 6 * width
            + (high - low + 12 * width) * torch.linspace(0, 1, grid_points, dtype=torch.float64, device=device)
        )
    else:
        grid = grid.to(device=device, dtype=torch.float64)
    return SpectralDensity(
        grid=grid, density=gaussian_density(nodes, weights, grid, width), nodes=nodes, weights=weights
    )


@validated(GGN_DECOMPOSITION)
def ggn_decomposition(
    model: nn.Module,
    loss_fn: LossFunction,
    data: tuple[Tensor, Tensor],
    *,
    generator: torch.Generator | None = None,
    method: str,
    k: int,
    batch_size: int | None,
    dense_limit: int,
    params: Sequence[Tensor] | None = None,
    progress: ProgressCallback | None = None,
) -> GGNDecomposition:
    """Eigenvalues of H, G and R = H - G (Eq. 3-4), dense or k-step Lanczos (three runs, one generator)."""
    name = GGN_DECOMPOSITION.name
    problem = prepare(name, model, loss_fn, data, params, batch_size)
    _check_generator(name, generator, problem.theta.device)
    with evaluation_mode(model):
        if method == "dense":
            check_dense_size(name, problem, dense_limit)
            with tracker(progress, total=2 * len(problem.batches), task=f"{name} (dense)") as bar:
                hessian, ggn = problem.dense_hessian(bar).double(), problem.dense_ggn(bar).double()
            return GGNDecomposition(
                hessian=torch.linalg.eigvalsh(hessian),
                ggn=torch.linalg.eigvalsh(ggn),
                residual=torch.linalg.eigvalsh(hessian - ggn),
            )
        check_steps(name, "k", k, problem.dim)
        operator = CurvatureOperator(problem, hessian=True, ggn=True)  # one graph for the three runs
        values = {
            which: _ritz_values(problem, operator, which, k, generator, progress, f"{name} ({which})")
            for which in ("hessian", "ggn", "residual")
        }
    return GGNDecomposition(**values)


def outlier_count(
    eigenvalues: Tensor,
    method: Literal["gap", "threshold"] = "gap",
    max_outliers: int | None = None,
    threshold: float = 100.0,
    floor: float = 1e-9,
) -> int:
    """How many of the largest eigenvalues stand out of the bulk.

    ``method="gap"``: sort descending, clamp every eigenvalue below ``floor * lambda_max``
    up to that floor, and cut at the largest ratio ``lambda_i / lambda_{i+1}`` among the top
    ``max_outliers + 1`` (default: min(50, P - 1)), i.e. the largest gap on a log scale.
    ``method="threshold"``: count eigenvalues above ``threshold * median(|lambda|)``.
    Returns 0 when no eigenvalue is positive. The paper names no rule; see the README.
    """
    require_tensor("outlier_count", "eigenvalues", eigenvalues, dim=1)
    if method not in ("gap", "threshold"):
        raise HyperparameterError("outlier_count", "method", method, "one of 'gap', 'threshold'")
    count = eigenvalues.numel()
    if count < 2:
        raise UnsupportedInputError("outlier_count", "eigenvalues", f"{count} value(s)", "at least 2 eigenvalues")
    if max_outliers is not None and (
        isinstance(max_outliers, bool) or not isinstance(max_outliers, int) or not 1 <= max_outliers < count
    ):
        raise HyperparameterError(
            "outlier_count", "max_outliers", max_outliers, f"None or an integer in [1, {count - 1}]"
        )
    if not (isinstance(floor, int | float) and 0 < floor < 1):
        raise HyperparameterError("outlier_count", "floor", floor, "a number in (0, 1)")
    if not (isinstance(threshold, int | float) and math.isfinite(threshold) and threshold > 0):
        raise HyperparameterError("outlier_count", "threshold", threshold, "a finite number > 0")
    values = eigenvalues.detach().double().sort(descending=True).values
    largest = values[0]
    if largest <= 0:
        return 0
    if method == "threshold":
        return int((values > threshold * values.abs().median()).sum())
    top = (max_outliers if max_outliers is not None else min(50, count - 1)) + 1
    clamped = values[:top].clamp_min(floor * largest)
    ratios = clamped[:-1] / clamped[1:]
    return int(ratios.argmax()) + 1


# The public names, from the objects themselves: each method's name is written once, in its spec.
__all__ = [
    exported.__name__
    for exported in (
        GGNDecomposition,
        SpectralDensity,
        ggn_decomposition,
        hessian_spectrum,
        outlier_count,
        spectral_density,
    )
]
