"""Seeded example for the conformance suite: the core's standard conv + BatchNorm problem.

Weight decay is on, so the coupled L2 term (which also enters ``previous_grad``) is exercised.
"""

from __future__ import annotations

import torch

from gradhub.kinds.optimizer import OptimizerExample, standard_problem


def standard_problem_with_weight_decay(
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> OptimizerExample:
    model, loss = standard_problem(device, dtype, seed)
    return OptimizerExample(model=model, loss=loss, hparams={"lr": 1e-2, "weight_decay": 1e-3}, steps=10)
