"""Seeded examples for the conformance suite: a small LogSumExp problem and a tiny regression model."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gradhub.kinds.probe import ProbeExample
from gradhub.kinds.solver import SolverExample
from gradhub_gns.problems import logsumexp


def small_logsumexp(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> SolverExample:
    """LogSumExp with A in R^{30 x 6}, mu = 0.5, from x0 = 0 (exact Hessian, converges in 6 iterations).

    Measured residuals ||grad f(x_k)|| (seed 0), float64: 0.92, 0.86, 0.26, 5.1e-2, 3.2e-3, 3.2e-5,
    2.7e-9, then the Lemma 1 test compares an f-decrease of ~1e-16, i.e. round-off of f ~ 2.26, so
    whether a 7th step is accepted depends on the CPU's rounding. tol sits between iterations 5 and 6
    (3.2e-5 > 1e-6 >= 2.7e-9, margins 30x and 370x); float32 stalls at ~3.2e-5 (f's round-off),
    so its tol is 1e-3 (margin 30x; iteration 4 is at 3.2e-3).
    """
    # drawn on the host and moved: the same problem on every device
    generator = torch.Generator().manual_seed(seed)
    A = torch.randn(30, 6, generator=generator, dtype=torch.float64, device="cpu")
    b = torch.randn(30, generator=generator, dtype=torch.float64, device="cpu")
    objective = logsumexp(A.to(device=device, dtype=dtype), b.to(device=device, dtype=dtype), 0.5)
    reference = logsumexp(A, b, 0.5)

    def residual(solution: torch.Tensor) -> float:
        point = solution.detach().cpu().double().requires_grad_(True)
        (gradient,) = torch.autograd.grad(reference(point), point)
        return torch.linalg.vector_norm(gradient).item()

    tol = 1e-6 if dtype == torch.float64 else 1e-3
    x0 = torch.zeros(6, device=device, dtype=dtype)
    return SolverExample(args=(objective, x0), hparams={"tol": tol, "max_iter": 50}, residual=residual)


def _mse(prediction: torch.Tensor) -> torch.Tensor:
    return prediction.square().mean()


def tiny_regression_network(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> ProbeExample:
    """A 3-4-1 tanh network on 8 points; the loss is the mean squared output minus a fixed target."""
    # drawn on the host and moved: the same network and data on every device
    generator = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, device="cpu"))
    model = model.to(device=device, dtype=dtype)
    inputs = torch.randn(8, 3, generator=generator, device="cpu").to(device=device, dtype=dtype)
    targets = torch.randn(8, 1, generator=generator, device="cpu").to(device=device, dtype=dtype)

    def loss(prediction: torch.Tensor) -> torch.Tensor:
        return _mse(prediction - targets)

    return ProbeExample(model=model, args=(loss, inputs), hparams={"n_dirs": 4, "n_grid": 13})
