"""Conformance checks for schedules: finite non-negative values, state_dict round trip, monotone noise."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from gradhub.kinds.schedule import NoiseSchedule, ScheduleExample, schedule_form
from gradhub.specs import MethodSpec
from gradhub.testing._helpers import INVOKERS, RUNNERS, fail, load_example, load_target
from gradhub.testing._suite import conformance_check


def _example(spec: MethodSpec, device: torch.device, dtype: torch.dtype, seed: int = 0) -> ScheduleExample:
    return load_example(spec, device, dtype, seed, ScheduleExample)


def form(spec: MethodSpec) -> str:
    declared = getattr(spec.capabilities, "form", None)
    if declared is not None:
        return declared
    return schedule_form(load_target(spec), None)


def _form_is(*forms: str) -> Any:
    def applies(spec: MethodSpec) -> bool:
        try:
            return form(spec) in forms
        except AssertionError:  # the target does not import: spec_valid reports it
            return True

    return applies


def _scheduler(spec: MethodSpec, example: ScheduleExample, hparams: dict[str, Any], device: Any = "cpu") -> Any:
    weight = nn.Parameter(torch.zeros(1, device=device))
    optimizer = torch.optim.SGD([weight], lr=example.base_lr)
    scheduler = load_target(spec)(optimizer, **hparams)
    if not isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler):
        fail(spec, f"as a {form(spec)} it must give a torch LRScheduler; it gave {type(scheduler).__name__}")
    return scheduler, optimizer


def _noise(spec: MethodSpec, hparams: dict[str, Any]) -> NoiseSchedule:
    schedule = load_target(spec)(**hparams)
    if not isinstance(schedule, NoiseSchedule):
        fail(spec, "a noise schedule needs t_min, t_max, alpha(t) and sigma(t) (gradhub.kinds.schedule.NoiseSchedule)")
    return schedule


def noise_grid(spec: MethodSpec, example: ScheduleExample, device: Any = "cpu") -> tuple[torch.Tensor, ...]:
    """``(t, alpha(t), sigma(t))`` on ``steps`` points of ``(t_min, t_max]``, in float64."""
    schedule = _noise(spec, example.hparams)
    t = torch.linspace(schedule.t_min, schedule.t_max, example.steps + 1, dtype=torch.float64, device=device)[1:]
    alpha = torch.as_tensor(schedule.alpha(t), dtype=torch.float64)
    sigma = torch.as_tensor(schedule.sigma(t), dtype=torch.float64)
    if alpha.shape != t.shape or sigma.shape != t.shape:
        fail(
            spec,
            f"alpha(t) and sigma(t) must have t's shape {tuple(t.shape)}; got {tuple(alpha.shape)}, "
            f"{tuple(sigma.shape)}",
        )
    return t, alpha, sigma


def rates(spec: MethodSpec, example: ScheduleExample, steps: int, device: Any = "cpu") -> list[float]:
    """The values the schedule takes over its example: per step, per progress point, or alpha and sigma."""
    target, shape = load_target(spec), form(spec)
    if shape == "step":
        return [float(target(step, **example.hparams)) for step in range(steps)]
    if shape == "progress":
        return [float(target(step / max(steps - 1, 1), **example.hparams)) for step in range(steps)]
    if shape == "noise":
        _, alpha, sigma = noise_grid(spec, example, device)
        return [*alpha.tolist(), *sigma.tolist()]
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
    shape = form(spec)
    if shape in ("scheduler", "factory"):
        return _scheduler(spec, example, hparams)
    if shape == "noise":
        return _noise(spec, hparams)
    return load_target(spec)(0 if shape == "step" else 0.0, **hparams)


RUNNERS["schedule"] = _run
INVOKERS["schedule"] = (ScheduleExample, _invoke)


@conformance_check("schedule", dtypes="none")
def check_rates_nonnegative(spec: MethodSpec, device: torch.device, dtype: Any) -> None:
    """Every value over the example (rates; alpha and sigma of a noise schedule) is finite and >= 0."""
    example = _example(spec, device, torch.float32)
    shape = form(spec)
    for index, rate in enumerate(rates(spec, example, example.steps, device)):
        if not math.isfinite(rate) or rate < 0:
            if shape == "progress":
                where = f"its value at p={index / max(example.steps - 1, 1):.4g}"
            elif shape == "noise":
                which = "alpha" if index < example.steps else "sigma"
                where = f"{which} at grid point {index % example.steps}"
            else:
                where = f"the rate at step {index}"
            fail(spec, f"{where} is {rate}; rates must be finite and non-negative")


@conformance_check(
    "schedule", dtypes="none", applies=_form_is("scheduler", "factory"), when="it is an LRScheduler or a factory"
)
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


@conformance_check("schedule", dtypes="none", applies=_form_is("noise"), when="it is a noise schedule")
def check_noise_monotone(spec: MethodSpec, device: torch.device, dtype: Any) -> None:
    """sigma(t) > 0 after t_min, and the signal-to-noise ratio alpha/sigma strictly decreases towards t_max."""
    example = _example(spec, device, torch.float32)
    t, alpha, sigma = noise_grid(spec, example, device)
    if not bool((sigma > 0).all()):
        where = int((sigma <= 0).nonzero()[0])
        fail(spec, f"sigma({t[where].item():.4g}) = {sigma[where].item():.4g}; it must be > 0 after t_min")
    snr = alpha / sigma
    rising = (snr[1:] >= snr[:-1]).nonzero()
    if rising.numel():
        i = int(rising[0])
        fail(
            spec,
            f"alpha/sigma is {snr[i].item():.6g} at t={t[i].item():.4g} and {snr[i + 1].item():.6g} at "
            f"t={t[i + 1].item():.4g}; "
            "the signal-to-noise ratio must strictly decrease (data at t_min, noise at t_max)",
        )
