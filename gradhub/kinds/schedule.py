"""The schedule kind: an ``LRScheduler`` subclass, or a function ``step -> rate``.

A scheduler class is built as ``cls(optimizer, **hparams)`` and stepped after the
optimizer, with a ``state_dict`` round trip; a function is called as
``fn(step, **hparams)`` and returns the learning rate (or multiplier) at ``step``.
Rates are finite and non-negative.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["ScheduleExample", "is_schedule_target"]


@dataclass(kw_only=True)
class ScheduleExample:
    hparams: dict[str, Any] = field(default_factory=dict)
    steps: int = 50
    base_lr: float = 0.1
    """The learning rate of the optimizer a scheduler class is attached to."""


def is_schedule_target(target: Any) -> bool:
    if isinstance(target, type):
        return issubclass(target, torch.optim.lr_scheduler.LRScheduler)
    return callable(target)
