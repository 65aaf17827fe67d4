"""Seeded examples for the conformance suite: tiny inputs for the layers, short runs for the schedules."""

from __future__ import annotations

from typing import Any

import torch

from gradhub.kinds.layer import LayerExample
from gradhub.kinds.schedule import ScheduleExample


def _inputs(device: Any, dtype: torch.dtype, seed: int) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)  # drawn on the host and moved: the same inputs on every device
    return (torch.randn(4, 3, generator=generator, dtype=torch.float64, device="cpu").to(device=device, dtype=dtype),)


def small_batch_half_lambda(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> LayerExample:
    """R_lambda (function or module) over a 4 x 3 batch, lambda = 0.5."""
    return LayerExample(inputs=_inputs(device, dtype, seed), hparams={"lambd": 0.5})


def _dann_modules() -> tuple[torch.nn.Module, ...]:
    """The paper's shallow DANN (Sec. 5.1): 3 -> 5 sigmoid features, a linear label head, a logistic domain head."""
    from torch import nn

    return (
        nn.Sequential(nn.Linear(3, 5), nn.Sigmoid()),
        nn.Linear(5, 2),
        nn.Linear(5, 1),
    )


def shallow_dann_on_small_batch(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> LayerExample:
    """The wrapper is a composite layer: the suite builds DANN(*modules(), lambd=0.5)."""
    return LayerExample(inputs=_inputs(device, dtype, seed), hparams={"lambd": 0.5}, modules=_dann_modules)


def paper_lambda_schedule(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> ScheduleExample:
    """lambda_p with the paper's gamma = 10 (Sec. 5.2.2)."""
    return ScheduleExample(hparams={"gamma": 10.0, "max_lambda": 1.0}, steps=50)


def paper_lr_annealing(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> ScheduleExample:
    """mu_p with the paper's alpha = 10, beta = 0.75 and mu_0 = 0.01 (Sec. 5.2.2), past p = 1."""
    return ScheduleExample(hparams={"total_steps": 40, "alpha": 10.0, "beta": 0.75}, steps=50, base_lr=0.01)
