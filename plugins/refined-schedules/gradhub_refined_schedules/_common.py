"""Small helpers shared by the schedules: the optimizer argument check."""

from __future__ import annotations

from typing import Any

import torch

from gradhub.errors import UnsupportedInputError


def check_optimizer(method: str, optimizer: Any) -> torch.optim.Optimizer:
    """The optimizer a scheduler wraps; anything else is a gradhub error naming the method."""
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise UnsupportedInputError(
            method, "optimizer", type(optimizer).__name__, "pass a torch.optim.Optimizer (the schedule wraps its lr)"
        )
    return optimizer
