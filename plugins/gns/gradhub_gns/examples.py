"""Seeded examples for the conformance suite: a small LogSumExp problem and a tiny regression model."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gradhub.kinds.probe import ProbeExample
from gradhub.kinds.solver import SolverExample
from gradhub_gns.problems import logsumexp


def gns_newton_example(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> SolverExample:
    """LogSumExp with A in R^{30 x 6}, mu = 0.5, from x0 = 0 (exact Hessian, converges in ~10 iterations)."""
    generator = torch.Generator().manual_seed(seed)
    A = torch.randn(30, 6, generator=generator, dtype=torch.float64)
    b = torch.randn(30, generator=generator, dtype=torch.float64)
    objective = logsumexp(A.to(device=device, dtype=dtype), b.to(device=device, dtype=dtype), 0.5)
    reference = logsumexp(A, b, 0.5)

    def residual(solution: torch.Tensor) -> float:
        point = solution.detach().cpu().double().requires_grad_(True)
        (gradient,) = torch.autograd.grad(reference(point), point)
        return torch.linalg.vector_norm(gradient).item()

    tol = 1e-9 if dtype == torch.float64 else 1e-4
    x0 = torch.zeros(6, device=device, dtype=dtype)
    return SolverExample(args=(objective, x0), hparams={"tol": tol, "max_iter": 50}, residual=residual)


def _mse(prediction: torch.Tensor) -> torch.Tensor:
    return prediction.square().mean()


def gns_radius_example(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> ProbeExample:
    """A 3-4-1 tanh network on 8 points; the loss is the mean squared output minus a fixed target."""
    generator = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    model = model.to(device=device, dtype=dtype)
    inputs = torch.randn(8, 3, generator=generator).to(device=device, dtype=dtype)
    targets = torch.randn(8, 1, generator=generator).to(device=device, dtype=dtype)

    def loss(prediction: torch.Tensor) -> torch.Tensor:
        return _mse(prediction - targets)

    return ProbeExample(model=model, args=(loss, inputs), hparams={"n_dirs": 4, "n_grid": 13})
