"""Seeded examples for the conformance suite: small linearly separable problems.

The optimizer's example is a linear classifier (with bias) under the mean logistic loss;
the solvers' example is the same kind of data as a plain (X, y) problem, with a constant
feature appended for the bias, as the paper does.
"""

from __future__ import annotations

from typing import Any

import torch

from gradhub.kinds.optimizer import OptimizerExample
from gradhub.kinds.solver import SolverExample
from gradhub_normalized_lrgd.solvers import misclassified_fraction


def separable_data(
    n: int = 200,
    d: int = 10,
    margin: float = 0.05,
    seed: int = 0,
    *,
    bias: bool = True,
    device: Any = "cpu",
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(X, y, w_star)``: x ~ N(0, I_d) kept where ``|<w*, x>| >= margin``, ``y = sign(<w*, x>)``.

    ``w*`` is a random unit vector. Points are drawn in float64 on the CPU from a seeded
    generator (rejection in batches until ``n`` are kept), then moved. With ``bias`` a
    column of ones is appended (and ``w*`` gets a zero bias), so X is (n, d + 1).
    """
    generator = torch.Generator().manual_seed(seed)
    w_star = torch.randn(d, generator=generator, dtype=torch.float64, device="cpu")
    w_star = w_star / w_star.norm()
    kept: list[torch.Tensor] = []
    count = 0
    while count < n:
        batch = torch.randn(4 * n, d, generator=generator, dtype=torch.float64, device="cpu")
        batch = batch[(batch @ w_star).abs() >= margin]
        kept.append(batch)
        count += batch.shape[0]
    X = torch.cat(kept)[:n]
    y = torch.sign(X @ w_star)
    if bias:
        X = torch.cat([X, torch.ones(n, 1, dtype=torch.float64, device="cpu")], dim=1)
        w_star = torch.cat([w_star, torch.zeros(1, dtype=torch.float64, device="cpu")])
    return X.to(device=device, dtype=dtype), y.to(device=device, dtype=dtype), w_star.to(device=device, dtype=dtype)


def separable_linear_classifier(
    device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> OptimizerExample:
    X, y, _ = separable_data(n=64, d=5, margin=0.1, seed=seed, bias=False, device=device, dtype=dtype)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = torch.nn.Linear(5, 1).to(device=device, dtype=dtype)

    def loss() -> torch.Tensor:
        return torch.nn.functional.softplus(-y * model(X).squeeze(-1)).mean()

    return OptimizerExample(model=model, loss=loss, hparams={"lr": 0.5}, steps=10)


def grad_norm_example(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> OptimizerExample:
    """The optimizer's example with ``normalize="grad_norm"`` (its distributed test runs the suite's checks on it)."""
    example = separable_linear_classifier(device, dtype, seed)
    return OptimizerExample(model=example.model, loss=example.loss, hparams={"lr": 0.5, "normalize": "grad_norm"})


def _solver_example(device: Any, dtype: torch.dtype, seed: int, hparams: dict[str, Any]) -> SolverExample:
    X, y, _ = separable_data(n=64, d=5, margin=0.1, seed=seed, device=device, dtype=dtype)
    return SolverExample(
        args=(X, y), hparams=hparams, residual=lambda w: float(misclassified_fraction(X, y, w.to(X.dtype)))
    )


def separable_problem_with_large_step(
    device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> SolverExample:
    return _solver_example(device, dtype, seed, {"lr": 10.0, "tol": 0.0, "max_iter": 2000})


def separable_problem(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> SolverExample:
    return _solver_example(device, dtype, seed, {"tol": 0.0, "max_iter": 2000})
