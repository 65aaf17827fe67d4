"""Seeded examples for the conformance suite.

The optimizer: the core's standard conv + BatchNorm problem with a small window (8 gradients,
so the window wraps within the suite's steps), momentum and weight decay on.
The solvers: random gradients and a random right-hand side; the independent residual
builds the dense damped Fisher ``damp*I + G^T G / m`` and measures ``||F u - x|| / ||x||``.
"""

from __future__ import annotations

import torch

from gradhub.kinds.optimizer import OptimizerExample, standard_problem
from gradhub.kinds.solver import SolverExample


def small_window_on_standard_problem(
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> OptimizerExample:
    model, loss = standard_problem(device, dtype, seed)
    hparams = {"lr": 1e-3, "momentum": 0.5, "weight_decay": 1e-3, "ngrads": 8, "damp": 1e-2}
    return OptimizerExample(model=model, loss=loss, hparams=hparams, steps=12)


def dense_residual(grads: torch.Tensor, x: torch.Tensor, damp: float):
    """The relative residual of ``u`` in ``(damp*I + G^T G / m) u = x``, computed densely in float64."""
    grads64, x64 = grads.double().cpu(), x.double().cpu()
    fisher = damp * torch.eye(grads.shape[1], dtype=torch.float64, device="cpu") + grads64.T @ grads64 / grads.shape[0]

    def residual(solution: torch.Tensor) -> float:
        return float((fisher @ solution.double().cpu() - x64).norm() / x64.norm())

    return residual


def _problem(device: torch.device | str, dtype: torch.dtype, seed: int, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    # drawn on the host and moved: the same problem on every device
    grads = torch.randn(rows, 40, generator=generator, dtype=torch.float64, device="cpu")
    x = torch.randn(40, generator=generator, dtype=torch.float64, device="cpu")
    return grads.to(device, dtype), x.to(device, dtype)


def random_fisher_system(
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> SolverExample:
    grads, x = _problem(device, dtype, seed, rows=8)
    damp = 0.1
    return SolverExample(args=(grads, x), hparams={"damp": damp, "tol": 1e-10}, residual=dense_residual(grads, x, damp))


def wrapped_window_system(
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> SolverExample:
    grads, x = _problem(device, dtype, seed, rows=11)  # 11 pushes into a window of 8: it wraps
    damp = 0.1
    return SolverExample(
        args=(grads, x),
        hparams={"ngrads": 8, "damp": damp, "tol": 1e-10},
        residual=dense_residual(grads[-8:], x, damp),
    )
