"""Seeded examples for the conformance suite: a tiny generator in 3 blocks, a tiny model, one client gradient."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gradhub.kinds.attack import AttackExample
from gradhub.kinds.loss import LossExample
from gradhub.kinds.solver import SolverExample


def _seeded(seed: int, build: Any, device: Any, dtype: torch.dtype) -> Any:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build().to(device=device, dtype=dtype)


def tiny_prior(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> Any:
    """A 3-block generator 4 -> 8 -> 16 -> 1x4x4 (unbounded output, so the end-of-stage clamp acts)."""
    from gradhub_gifd.prior import SequentialGenerator

    blocks = lambda: SequentialGenerator(  # noqa: E731
        [nn.Linear(4, 8), nn.Sequential(nn.ReLU(), nn.Linear(8, 16)), nn.Unflatten(1, (1, 4, 4))], (4,)
    )
    return _seeded(seed + 1, blocks, device, dtype)


def tiny_victim(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> tuple[nn.Module, Any, Any]:
    """A 16 -> 8 -> ReLU -> 3 MLP on 1x4x4 inputs and its gradient on one image in [0, 1] (label 2)."""
    model = _seeded(
        seed, lambda: nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)), device, dtype
    )
    generator = torch.Generator().manual_seed(seed)  # drawn on the host and moved: the same on every device
    image = torch.rand(1, 1, 4, 4, generator=generator, dtype=torch.float64, device="cpu").to(device, dtype)
    labels = torch.tensor([2], device=device)
    loss = nn.functional.cross_entropy(model(image), labels)
    gradients = [g.detach() for g in torch.autograd.grad(loss, list(model.parameters()))]
    return model, gradients, image


def tiny_generator_attack(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> AttackExample:
    """Both attacks' example: labels inferred by iDLG, 2 restarts (batched), 3 steps per stage; a narrow
    prior_range, so some pixels leave [0, 1] and the end-of-stage clamp acts."""
    model, gradients, _ = tiny_victim(device, dtype, seed)
    return AttackExample(
        model=model,
        args=(gradients, tiny_prior(device, dtype, seed)),
        hparams={"steps_per_stage": 3, "restarts": 2, "prior_range": (-0.2, 0.2)},
    )


def gifd_example(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> AttackExample:
    """GIFD's example: :func:`tiny_generator_attack` with relative l1 radii (every stage's radius acts)."""
    example = tiny_generator_attack(device, dtype, seed)
    example.hparams["l1_relative"] = 0.05
    return example


def gradient_pair(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> LossExample:
    """Two gradients of one (3, 4) parameter: the trial (differentiated) and the target."""
    generator = torch.Generator().manual_seed(seed)
    trial, target = torch.randn(2, 3, 4, generator=generator, dtype=torch.float64, device="cpu").to(device, dtype)
    return LossExample(inputs=(trial, target))


def _bisection_projection(x: torch.Tensor, radius: float) -> torch.Tensor:
    """The l1-ball projection by bisection on theta (no sorting): the example's independent answer."""
    rows = x.double().reshape(x.shape[0], -1)
    magnitude = rows.abs()
    low = torch.zeros(rows.shape[0], dtype=torch.float64, device=rows.device)
    high = magnitude.amax(1)
    for _ in range(200):
        middle = (low + high) / 2
        mass = (magnitude - middle[:, None]).clamp_min(0).sum(1)
        low, high = torch.where(mass > radius, middle, low), torch.where(mass > radius, high, middle)
    projected = rows.sign() * (magnitude - high[:, None]).clamp_min(0)
    inside = magnitude.sum(1) <= radius
    return torch.where(inside[:, None], rows, projected)


def l1_projection_problem(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> SolverExample:
    """Five 2x3 samples, four outside the l1 ball of radius 1.5 and one inside."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(5, 2, 3, generator=generator, dtype=torch.float64, device="cpu")
    x[4] *= 0.1
    x = x.to(device, dtype)
    radius = 1.5

    def residual(solution: torch.Tensor) -> float:
        exact = _bisection_projection(x, radius)
        scale = x.double().abs().amax().item()
        return (solution.double().reshape(exact.shape) - exact).abs().amax().item() / scale

    tol = 1e-10 if dtype == torch.float64 else 1e-5
    return SolverExample(args=(x, radius), hparams={"tol": tol}, residual=residual)
