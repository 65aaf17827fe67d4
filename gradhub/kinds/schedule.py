"""The schedule kind: a learning-rate schedule, a schedule over training progress, or a noise schedule.

``ScheduleCapabilities.form`` says which of five shapes a target has:

``scheduler``
    an ``LRScheduler`` subclass, built as ``cls(optimizer, **hparams)`` and stepped after
    the optimizer, with a ``state_dict`` round trip (the default for a class target);
``factory``
    a function ``fn(optimizer, **hparams)`` returning an ``LRScheduler`` (``LambdaLR``
    recipes such as warm-up plus linear decay), checked like a scheduler;
``step``
    a function ``fn(step, **hparams)`` returning the rate or multiplier at an integer
    step (the default for a function target);
``progress``
    a function ``fn(p, **hparams)`` of training progress ``p`` in ``[0, 1]`` (a
    coefficient schedule such as DANN's lambda_p);
``noise``
    ``target(**hparams)`` is a :class:`NoiseSchedule` of a diffusion model: data at
    ``t_min``, noise at ``t_max``, signal-to-noise ratio ``alpha(t)/sigma(t)`` strictly
    decreasing in between.

Rates and values are finite and non-negative.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch

__all__ = ["NoiseSchedule", "ScheduleExample", "is_schedule_target", "schedule_form"]


@dataclass(kw_only=True)
class ScheduleExample:
    hparams: dict[str, Any] = field(default_factory=dict)
    steps: int = 50
    """Steps a rate schedule is evaluated over; grid points for progress and noise schedules."""
    base_lr: float = 0.1
    """The learning rate of the optimizer a scheduler is attached to."""


@runtime_checkable
class NoiseSchedule(Protocol):
    """A Gaussian noise schedule ``x_t = alpha(t) x_0 + sigma(t) eps`` over ``[t_min, t_max]``."""

    t_min: float
    t_max: float

    def alpha(self, t: torch.Tensor) -> torch.Tensor: ...

    def sigma(self, t: torch.Tensor) -> torch.Tensor: ...


def schedule_form(target: Any, declared: str | None) -> str:
    """The form a schedule target has: the declared one, else inferred (class: scheduler, function: step)."""
    if declared is not None:
        return declared
    return "scheduler" if isinstance(target, type) else "step"


def is_schedule_target(target: Any) -> bool:
    if isinstance(target, type):
        return issubclass(target, torch.optim.lr_scheduler.LRScheduler) or hasattr(target, "sigma")
    return callable(target)
