"""Seeded examples for the conformance suite: a 4 x 4 Poisson problem (n = 16) and small inputs.

DCDM's example's model is a module on the grid (so the grid path and the model's
dtype/device handling run on every device): a fixed symmetric positive semi-definite 3x3
smoothing convolution, i.e. a linear SPD-ish preconditioner, with which DCDM (n_orth >= 1)
is preconditioned CG and converges in at most n = 16 iterations. An untrained DCDMNet is
not used: its output is dominated by its biases, nearly the same direction for every
input, and DCDM then stalls (relative residual ~1 after 100 iterations).
"""

from __future__ import annotations

from typing import Any

import torch

from gradhub.kinds.layer import LayerExample
from gradhub.kinds.loss import LossExample
from gradhub.kinds.solver import SolverExample
from gradhub_dcdm.operators import poisson_matrix

GRID = (4, 4)


def _poisson(device: Any, dtype: torch.dtype, layout: str = "csr") -> torch.Tensor:
    return poisson_matrix(GRID[0], 2, dtype=dtype, layout=layout).to(device)


def _rhs(shape: tuple[int, ...], device: Any, dtype: torch.dtype, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)  # drawn on the host and moved: the same rhs on every device
    return torch.randn(shape, generator=generator, dtype=torch.float64, device="cpu").to(device=device, dtype=dtype)


def _relative_residual(matrix: torch.Tensor, rhs: torch.Tensor):
    dense = matrix.to_dense().double() if matrix.layout != torch.strided else matrix.double()

    def residual(solution: torch.Tensor) -> float:
        rows, x = rhs.reshape(-1, dense.shape[0]).double(), solution.reshape(-1, dense.shape[0]).double()
        return ((rows - x @ dense).norm(dim=-1) / rows.norm(dim=-1)).max().item()

    return residual


def smoothing_model(device: Any, dtype: torch.dtype) -> torch.nn.Conv2d:
    """``r -> K * r`` with K = [[0,1,0],[1,4,1],[0,1,0]] / 8 (zero padding): symmetric, eigenvalues in [0, 1]."""
    model = torch.nn.Conv2d(1, 1, 3, padding=1, bias=False)
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, 4.0, 1.0], [0.0, 1.0, 0.0]], device="cpu") / 8  # then moved
    with torch.no_grad():
        model.weight.copy_(kernel.view(1, 1, 3, 3))
    return model.to(device=device, dtype=dtype)


def poisson_with_smoothing_model(
    device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> SolverExample:
    matrix = _poisson(device, dtype)
    rhs = _rhs(GRID, device, dtype, seed)
    model = smoothing_model(device, dtype)
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    return SolverExample(
        args=(matrix, rhs, model),
        hparams={"tol": tol, "grid": GRID},
        residual=_relative_residual(matrix, rhs),
    )


def poisson_batch(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> SolverExample:
    matrix = _poisson(device, dtype)
    rhs = _rhs((3, GRID[0] * GRID[1]), device, dtype, seed)
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    return SolverExample(args=(matrix, rhs), hparams={"tol": tol}, residual=_relative_residual(matrix, rhs))


def poisson_predictions(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> LossExample:
    n = GRID[0] * GRID[1]
    prediction = _rhs((3, n), device, dtype, seed)
    rhs = _rhs((3, n), device, dtype, seed + 1)
    return LossExample(inputs=(prediction, rhs, _poisson(device, dtype, layout="dense")))


def small_grid_network(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> LayerExample:
    # Small enough for gradcheck over every parameter (the conformance suite's gradient_exact).
    return LayerExample(
        inputs=(_rhs((1, 1, 4, 4), device, dtype, seed),), hparams={"channels": 2, "n_res_coarse": 1, "n_res_up": 1}
    )
