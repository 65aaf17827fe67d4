"""lambda_p and mu_p of Sec. 5.2.2."""

from __future__ import annotations

import math

import torch
from gradhub_dann.schedules import dann_lambda, dann_lr


def test_dann_lambda_values() -> None:
    assert dann_lambda(0.0) == 0.0
    assert math.isclose(dann_lambda(1.0), 2 / (1 + math.exp(-10)) - 1, rel_tol=1e-15)
    assert math.isclose(dann_lambda(1.0), 0.999909, abs_tol=5e-7)
    for p in (0.01, 0.1, 0.37, 0.5, 0.9):
        assert math.isclose(dann_lambda(p, gamma=7.0, max_lambda=0.3), 0.3 * (2 / (1 + math.exp(-7 * p)) - 1))


def test_dann_lambda_monotone_and_tensor_form() -> None:
    p = torch.linspace(0, 1, 1001, dtype=torch.float64)
    values = dann_lambda(p)
    assert isinstance(values, torch.Tensor) and values.shape == p.shape
    assert bool((values[1:] > values[:-1]).all())
    torch.testing.assert_close(values, 2 / (1 + torch.exp(-10 * p)) - 1, rtol=0, atol=1e-15)
    assert math.isclose(float(values[500]), dann_lambda(0.5), rel_tol=1e-15)


def test_dann_lr_is_the_paper_annealing() -> None:
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=0.01, momentum=0.9)
    scheduler = dann_lr(optimizer, total_steps=100)
    for step in range(120):
        p = min(step / 100, 1.0)
        assert math.isclose(optimizer.param_groups[0]["lr"], 0.01 / (1 + 10 * p) ** 0.75, rel_tol=1e-12)
        optimizer.step()
        scheduler.step()


def test_dann_lr_state_dict_round_trip() -> None:
    def build() -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
        return optimizer, dann_lr(optimizer, total_steps=10, alpha=5.0, beta=0.5)

    optimizer, scheduler = build()
    for _ in range(4):
        optimizer.step()
        scheduler.step()
    fresh_optimizer, fresh = build()
    fresh.load_state_dict(scheduler.state_dict())
    fresh_optimizer.param_groups[0]["lr"] = scheduler.get_last_lr()[0]
    for _ in range(6):
        optimizer.step(), scheduler.step(), fresh_optimizer.step(), fresh.step()
        assert fresh.get_last_lr() == scheduler.get_last_lr()
