"""Seeded examples for the conformance suite: the core's standard conv + BatchNorm problem.

Its convolutions feed BatchNorm, so their weights are scale-invariant and the projection
fires; its linear layer is not, so it does not; weight decay is on, so both decay factors
(``wd_ratio`` and 1) are exercised.
"""

from __future__ import annotations

import torch

from gradhub.kinds.optimizer import OptimizerExample, standard_problem


def adam_on_standard_problem(
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> OptimizerExample:
    model, loss = standard_problem(device, dtype, seed)
    return OptimizerExample(model=model, loss=loss, hparams={"lr": 1e-2, "weight_decay": 1e-2}, steps=10)


def sgd_on_standard_problem(
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> OptimizerExample:
    model, loss = standard_problem(device, dtype, seed)
    return OptimizerExample(
        model=model, loss=loss, hparams={"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-3}, steps=10
    )
