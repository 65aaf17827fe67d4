"""gradhub's optimizers with ``torch.amp`` and with a scheduler that cycles momentum, on the CPU.

* ``torch.amp.GradScaler("cpu")``: a step whose gradients hold an infinity or a NaN (what an overflow
  in a scaled backward leaves) is skipped, so parameters and optimizer state (step counts, 0-d
  tensors, included) stay as they were and the scale backs off; the next finite step is the step the
  optimizer takes on the unscaled gradients, bit for bit (scaling by a power of two is exact).
* ``torch.autocast("cpu", dtype=torch.bfloat16)``: a bfloat16 forward, float32 weights, gradients and
  state; the loss goes down.
* ``OneCycleLR(cycle_momentum=True)`` writes ``betas[0]`` into an Adam-family group (AdamP, diffGrad)
  and ``momentum`` into SGDP's: the values follow the one-cycle schedule, and each step is the step of
  a fresh optimizer *constructed* with that lr and beta1/momentum from the same state (and differs
  from the step with the constructed value), so the optimizer reads what the scheduler wrote.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import gradhub
from gradhub.kinds.optimizer import standard_problem

OPTIMIZERS = [
    ("adamp", {"lr": 2e-2, "betas": (0.8, 0.99), "weight_decay": 1e-2}),
    ("diffgrad", {"lr": 2e-2}),
    ("sgdp", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
]
IDS = [name for name, _ in OPTIMIZERS]

_generator = torch.Generator().manual_seed(1)
INPUTS, TARGETS = torch.randn(16, 4, generator=_generator), torch.randn(16, 2, generator=_generator)

Snapshot = Callable[[nn.Module, torch.optim.Optimizer], dict[str, Any]]
Differences = Callable[[dict[str, Any], dict[str, Any]], list[str]]
Compare = Callable[[nn.Module, torch.optim.Optimizer, nn.Module, torch.optim.Optimizer], list[str]]


def network(seed: int) -> nn.Sequential:
    """Linear -> LayerNorm -> Tanh -> Linear: the first weight is scale-invariant (AdamP/SGDP project it)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Tanh(), nn.Linear(8, 2))


def batch_loss(model: nn.Module, step: int) -> torch.Tensor:
    rows = slice(step * 4 % 16, step * 4 % 16 + 4)
    return nn.functional.mse_loss(model(INPUTS[rows]), TARGETS[rows])


@pytest.mark.parametrize("bad", [math.inf, math.nan], ids=["inf", "nan"])
@pytest.mark.parametrize(("name", "kwargs"), OPTIMIZERS, ids=IDS)
def test_grad_scaler_skips_a_non_finite_step_whole_and_takes_the_next(
    name: str,
    kwargs: dict[str, Any],
    bad: float,
    snapshot: Snapshot,
    differences: Differences,
    run_differences: Compare,
) -> None:
    optimizer_class = gradhub.get(name)
    model = network(seed=0)
    plain = copy.deepcopy(model)
    optimizer = optimizer_class(model.parameters(), **kwargs)
    plain_optimizer = optimizer_class(plain.parameters(), **kwargs)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12, growth_interval=1000)

    def scaled_step(step: int, poisoned: bool = False) -> None:
        optimizer.zero_grad()
        scaler.scale(batch_loss(model, step)).backward()
        if poisoned:
            model[0].weight.grad[0, 0] = bad  # what an overflow in the scaled backward leaves
        scaler.step(optimizer)
        scaler.update()

    def plain_step(step: int) -> None:
        plain_optimizer.zero_grad()
        batch_loss(plain, step).backward()
        plain_optimizer.step()

    scaled_step(0)
    plain_step(0)
    before, scale = snapshot(model, optimizer), scaler.get_scale()
    if name != "sgdp":  # SGDP keeps no step count
        assert all(state["step"].dim() == 0 and int(state["step"]) == 1 for state in optimizer.state.values())
    scaled_step(1, poisoned=True)
    assert differences(before, snapshot(model, optimizer)) == [], f"{name}: the skipped step changed something"
    assert scaler.get_scale() == scale / 2

    scaled_step(2)
    plain_step(2)
    assert run_differences(model, optimizer, plain, plain_optimizer) == [], "the finite step after the skipped one"
    if name != "sgdp":
        assert all(int(state["step"]) == 2 for state in optimizer.state.values())


@pytest.mark.parametrize(("name", "kwargs"), OPTIMIZERS, ids=IDS)
def test_steps_after_an_autocast_bfloat16_forward(name: str, kwargs: dict[str, Any]) -> None:
    model = network(seed=0)
    optimizer = gradhub.get(name)(model.parameters(), **kwargs)
    with torch.no_grad():
        before = nn.functional.mse_loss(model(INPUTS), TARGETS).item()
    for step in range(8):
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            outputs = model(INPUTS[step * 4 % 16 : step * 4 % 16 + 4])
        assert outputs.dtype == torch.bfloat16
        nn.functional.mse_loss(outputs.float(), TARGETS[step * 4 % 16 : step * 4 % 16 + 4]).backward()
        optimizer.step()
    for param in model.parameters():
        assert param.dtype == param.grad.dtype == torch.float32 and torch.isfinite(param).all()
        tensors = [value for value in optimizer.state[param].values() if value.dim() > 0]
        assert tensors and all(value.dtype == torch.float32 and torch.isfinite(value).all() for value in tensors)
    with torch.no_grad():
        after = nn.functional.mse_loss(model(INPUTS), TARGETS).item()
    assert after < 0.9 * before, f"{name}: loss {before:.4f} -> {after:.4f} in 8 autocast steps"


def cosine(start: float, end: float, fraction: float) -> float:
    return end + (start - end) * (1 + math.cos(math.pi * fraction)) / 2


def one_cycle(
    step: int, total: int, pct_start: float, peak_lr: float, momenta: tuple[float, float]
) -> tuple[float, ...]:
    """The one-cycle schedule (Smith & Topin 2019) at ``step``: (lr, momentum), written out independently.

    Warm-up (to step ``pct_start * total - 1``): lr rises from ``peak_lr / 25`` to ``peak_lr`` while momentum
    falls from its maximum to its base; then lr falls to ``peak_lr / 25 / 1e4`` while momentum rises back.
    """
    base, top = momenta
    turn = pct_start * total - 1
    if step <= turn:
        return cosine(peak_lr / 25, peak_lr, step / turn), cosine(top, base, step / turn)
    fraction = (step - turn) / (total - 1 - turn)
    return cosine(peak_lr, peak_lr / 25 / 1e4, fraction), cosine(base, top, fraction)


CYCLED = [
    ("adamp", {"lr": 1e-3, "betas": (0.5, 0.999), "weight_decay": 1e-2}, "betas"),
    ("diffgrad", {"lr": 1e-3, "betas": (0.5, 0.999)}, "betas"),
    ("sgdp", {"lr": 1e-3, "momentum": 0.5, "nesterov": True}, "momentum"),
]
"""The constructed beta1/momentum (0.5) is outside the cycle's range (0.85-0.95): a step that used it shows."""


@pytest.mark.parametrize(("name", "kwargs", "key"), CYCLED, ids=[name for name, _, _ in CYCLED])
def test_one_cycle_lr_cycles_the_momentum_the_optimizer_reads(name: str, kwargs: dict[str, Any], key: str) -> None:
    optimizer_class = gradhub.get(name)
    model, loss = standard_problem(seed=0)  # conv + BatchNorm: AdamP/SGDP project the conv weights
    params = list(model.parameters())
    optimizer = optimizer_class(params, **kwargs)
    total, pct_start, peak_lr, momenta = 10, 0.3, 0.05, (0.85, 0.95)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=peak_lr,
        total_steps=total,
        pct_start=pct_start,
        cycle_momentum=True,
        base_momentum=momenta[0],
        max_momentum=momenta[1],
    )

    def step_from_here(hparams: dict[str, Any]) -> tuple[list[torch.Tensor], torch.optim.Optimizer]:
        """One step of a fresh optimizer constructed with ``hparams``, from copies of the current weights,
        gradients and state."""
        copies = [param.detach().clone().requires_grad_() for param in params]
        fresh = optimizer_class(copies, **hparams)
        for copied, param in zip(copies, params):
            copied.grad = param.grad.clone()
            if optimizer.state[param]:
                fresh.state[copied] = {name: value.clone() for name, value in optimizer.state[param].items()}
        fresh.step()
        return copies, fresh

    for step in range(total):
        group = optimizer.param_groups[0]
        expected_lr, expected_momentum = one_cycle(step, total, pct_start, peak_lr, momenta)
        momentum = group["betas"][0] if key == "betas" else group["momentum"]
        assert math.isclose(group["lr"], expected_lr, rel_tol=1e-9), (step, group["lr"], expected_lr)
        assert math.isclose(momentum, expected_momentum, rel_tol=1e-12), (step, momentum, expected_momentum)
        if key == "betas":
            assert group["betas"][1] == kwargs["betas"][1]

        optimizer.zero_grad()
        loss().backward()
        scheduled = {**kwargs, "lr": group["lr"], key: group[key]}
        reference, reference_optimizer = step_from_here(scheduled)
        constructed, _ = step_from_here({**kwargs, "lr": group["lr"]})
        optimizer.step()
        for index, (param, copied) in enumerate(zip(params, reference)):
            assert torch.equal(param, copied), (
                f"step {step}, parameter {index}: not the step at lr={group['lr']}, {key}={group[key]}"
            )
            for state_key, value in optimizer.state[param].items():
                assert torch.equal(value, reference_optimizer.state[copied][state_key]), (step, index, state_key)
        if step > 0:  # at the first step Adam's bias correction, and SGD's buffer = gradient, hide beta1/momentum
            assert not all(torch.equal(param, copied) for param, copied in zip(params, constructed)), (
                f"step {step}: {name} takes the same step with {key}[0]={momentum} as with the constructed value"
            )
        scheduler.step()
