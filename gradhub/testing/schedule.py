"""Conformance checks for schedules: finite non-negative rates, state_dict round trip."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from gradhub.kinds.schedule import ScheduleExample
from gradhub.specs import MethodSpec
from gradhub.testing._helpers import INVOKERS, RUNNERS, fail, load_example, load_target, target_is_class
from gradhub.testing._suite import conformance_check


def _example(spec: MethodSpec, device: torch.device, dtype: torch.dtype, seed: int = 0) -> ScheduleExample:
    return load_example(spec, device, dtype, seed, ScheduleExample)


def _scheduler(spec: MethodSpec, example: ScheduleExample, hparams: dict[str, Any], device: Any = "cpu") -> Any:
    weight = nn.Parameter(torch.zeros(1, device=device))
    optimizer = torch.optim.SGD([weight], lr=example.base_lr)
    return load_target(spec)(optimizer, **hparams), optimizer


def rates(spec: MethodSpec, example: ScheduleExample, steps: int, device: Any = "cpu") -> list[float]:
    """The learning rate at steps 0..steps-1."""
    target = load_target(spec)
    if not isinstance(target, type):
        return [float(target(step, **example.hparams)) for step in range(steps)]
    scheduler, optimizer = _scheduler(spec, example, example.hparams, device)
    values = []
    for _ in range(steps):
        values.append(float(scheduler.get_last_lr()[0]))
        optimizer.step()
        scheduler.step()
    return values


def _run(spec: MethodSpec, device: torch.device, dtype: torch.dtype, seed: int) -> list[torch.Tensor]:
    example = _example(spec, device, dtype, seed)
    return [torch.tensor(rates(spec, example, example.steps, device), dtype=torch.float64)]


def _invoke(spec: MethodSpec, example: ScheduleExample, hparams: dict[str, Any]) -> Any:
    target = load_target(spec)
    return _scheduler(spec, example, hparams) if isinstance(target, type) else target(0, **hparams)


RUNNERS["schedule"] = _run
INVOKERS["schedule"] = (ScheduleExample, _invoke)


@conformance_check("schedule", dtypes="none")
def check_rates_nonnegative(spec: MethodSpec, device: torch.device, dtype: Any) -> None:
    """Every rate over the example's steps is finite and >= 0."""
    example = _example(spec, device, torch.float32)
    for step, rate in enumerate(rates(spec, example, example.steps, device)):
        if not math.isfinite(rate) or rate < 0:
            fail(spec, f"the rate at step {step} is {rate}; rates must be finite and non-negative")


@conformance_check("schedule", dtypes="none", applies=target_is_class, when="the target is a class")
def check_state_dict_round_trip(spec: MethodSpec, device: torch.device, dtype: Any) -> None:
    """k steps, state_dict into a fresh scheduler, n-k steps: the same rates as n straight steps."""
    example = _example(spec, device, torch.float32)
    total, first = example.steps, example.steps // 2
    straight = rates(spec, example, total, device)
    scheduler, optimizer = _scheduler(spec, example, example.hparams, device)
    for _ in range(first):
        optimizer.step()
        scheduler.step()
    saved = scheduler.state_dict()
    fresh, fresh_optimizer = _scheduler(spec, example, example.hparams, device)
    fresh.load_state_dict(saved)
    for group, lr in zip(fresh_optimizer.param_groups, scheduler.get_last_lr()):
        group["lr"] = lr
    resumed = []
    for _ in range(total - first):
        resumed.append(float(fresh.get_last_lr()[0]))
        fresh_optimizer.step()
        fresh.step()
    if resumed != straight[first:]:
        step = next(i for i, (a, b) in enumerate(zip(resumed, straight[first:])) if a != b) + first
        fail(
            spec,
            f"after a state_dict round trip the rate at step {step} is {resumed[step - first]}, not {straight[step]}",
        )
