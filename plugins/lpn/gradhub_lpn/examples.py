"""Seeded examples for the conformance suite: tiny LPNs, a denoised batch, an inversion and two PnP problems.

Every tensor is drawn on the host from a seeded generator and moved, and every network is built under a
forked, seeded global RNG, so an example is the same whatever state the caller's RNG is in and on every
device. The solver examples use networks with alpha > 0 (strongly convex psi: f is invertible everywhere and
the PnP maps contract) and W weights initialised at exp(N(-1, 0.5^2)) instead of the tiny official
exp(N(-10, 0.1^2)), so that the hidden layers shape psi.
"""

from __future__ import annotations

from typing import Any

import torch

from gradhub.kinds.layer import LayerExample
from gradhub.kinds.loss import LossExample
from gradhub.kinds.solver import SolverExample
from gradhub_lpn.networks import LPN


def _draw(shape: tuple[int, ...], device: Any, dtype: torch.dtype, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float64, device="cpu").to(device=device, dtype=dtype)


def small_lpn(
    in_dim: int, device: Any, dtype: torch.dtype, seed: int, hidden: int = 8, layers: int = 2, alpha: float = 0.5
) -> LPN:
    """A seeded LPN with non-negligible W weights (exp(N(-1, 0.5^2))), on ``device`` in ``dtype``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LPN(in_dim, hidden=hidden, layers=layers, alpha=alpha)
        model.init_weights(mean=-1.0, std=0.5)
    return model.to(device=device, dtype=dtype)


def lpn_layer(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> LayerExample:
    # Small enough for gradcheck of the double backward over every parameter.
    return LayerExample(
        inputs=(_draw((3, 2), device, dtype, seed),), hparams={"in_dim": 2, "hidden": 4, "layers": 2, "alpha": 0.1}
    )


def conv_lpn_layer(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> LayerExample:
    return LayerExample(
        inputs=(_draw((1, 1, 4, 4), device, dtype, seed),),
        hparams={"hidden": 2, "img_size": 4, "head": 2, "alpha": 0.01},
    )


def denoised_batch(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> LossExample:
    target = _draw((4, 3), device, dtype, seed)
    prediction = target + 0.5 * _draw((4, 3), device, dtype, seed + 1)
    return LossExample(inputs=(prediction, target), hparams={"gamma": 1.0})


def _tolerance(dtype: torch.dtype) -> float:
    return 1e-9 if dtype == torch.float64 else 1e-4


def prior_problem(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> SolverExample:
    model = small_lpn(3, device, dtype, seed)
    x = _draw((4, 3), device, dtype, seed + 1)

    def residual(y: torch.Tensor) -> float:
        with torch.no_grad():
            return float((model(y).double() - x.double()).norm(dim=1).max())

    return SolverExample(args=(model, x), hparams={"tol": _tolerance(dtype)}, residual=residual)


def _pnp(device: Any, dtype: torch.dtype, seed: int, scale: float) -> tuple[tuple[Any, ...], Any]:
    """(b, A, prox) and the independent residual ||f(x - scale A^T(Ax - b)) - x|| (0 at a PnP fixed point)."""
    A = _draw((3, 4), device, dtype, seed) / 2
    b = _draw((2, 3), device, dtype, seed + 1)
    prox = small_lpn(4, device, dtype, seed + 2, hidden=6, layers=1, alpha=0.25)

    def residual(x: torch.Tensor) -> float:
        x = x.double()
        A64, b64, prox64 = A.double(), b.double(), _copy_double(prox)
        with torch.no_grad():
            return float((prox64(x - scale * (x @ A64.T - b64) @ A64) - x).norm(dim=1).max())

    return (b, A, prox), residual


def _copy_double(model: LPN) -> LPN:
    copy = LPN(model.in_dim, hidden=model.hidden, layers=model.layers, beta=model.beta, alpha=model.alpha)
    copy.load_state_dict(model.state_dict())
    return copy.to(device=next(model.parameters()).device, dtype=torch.float64)


def pgd_problem(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> SolverExample:
    args, residual = _pnp(device, dtype, seed, scale=0.5)
    return SolverExample(args=args, hparams={"step": 0.5, "tol": _tolerance(dtype)}, residual=residual)


def admm_problem(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> SolverExample:
    args, residual = _pnp(device, dtype, seed, scale=1 / 2.0)
    return SolverExample(args=args, hparams={"rho": 2.0, "tol": _tolerance(dtype)}, residual=residual)
