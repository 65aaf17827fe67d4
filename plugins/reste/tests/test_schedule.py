"""The o schedule: the official cosine rise (main.py), its generalisation to o_start, apply(model, epoch)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import pytest
import torch
from gradhub_reste import RESTE_O_SCHEDULE
from gradhub_reste.layers import ReSTEConv2d, ReSTELinear
from gradhub_reste.schedules import ReSTEPowerSchedule, reste_o_schedule
from torch import nn

import gradhub


def official_o(epoch: int, epochs: int, o_end: float = 3.0) -> float:
    """The official main.py's ReSTE(epoch), as it computes it: float32 tensors."""
    ratio = torch.tensor(epoch / epochs)
    beta = 1 - torch.cos(ratio * math.pi * 0.5)
    return float(1 + beta * (o_end - 1))


def schedule_mismatch(schedule: Callable[[int, int, float], float], epochs: int = 200) -> float:
    """max over the official epochs 0 .. epochs - 1 (o_end 3 and 2) of |schedule - official|."""
    return max(
        abs(schedule(epoch, epochs, o_end) - official_o(epoch, epochs, o_end))
        for o_end in (3.0, 2.0)
        for epoch in range(epochs)
    )


def test_matches_the_official_schedule() -> None:
    assert gradhub.get(RESTE_O_SCHEDULE.name) is reste_o_schedule
    ours = lambda epoch, epochs, o_end: reste_o_schedule(epoch, total_epochs=epochs, o_end=o_end)  # noqa: E731
    assert schedule_mismatch(ours) < 1e-6  # the official values are float32
    # wrong variants fail the same criterion: cos instead of 1 - cos, a linear rise, o_end at the last epoch
    assert schedule_mismatch(lambda e, n, end: 1 + math.cos(math.pi / 2 * e / n) * (end - 1)) > 0.5
    assert schedule_mismatch(lambda e, n, end: 1 + e / n * (end - 1)) > 0.1
    assert schedule_mismatch(lambda e, n, end: reste_o_schedule(e, total_epochs=n - 1, o_end=end)) > 1e-3


def test_values_endpoints_and_clamp() -> None:
    assert reste_o_schedule(0, total_epochs=10) == 1.0
    assert reste_o_schedule(10, total_epochs=10) == 3.0
    assert reste_o_schedule(25, total_epochs=10) == 3.0  # past the end o stays at o_end
    assert math.isclose(reste_o_schedule(5, total_epochs=10), 1 + 2 * (1 - math.cos(math.pi / 4)), rel_tol=1e-15)
    assert math.isclose(reste_o_schedule(2.5, total_epochs=10), 1 + 2 * (1 - math.cos(math.pi / 8)), rel_tol=1e-15)
    values = [reste_o_schedule(epoch, total_epochs=50) for epoch in range(51)]
    assert all(b > a for a, b in itertools.pairwise(values))


def test_o_start_generalises_the_fixed_one() -> None:
    for epoch in (0, 3, 7, 10):
        expected = 1.5 + (1 - math.cos(math.pi / 2 * epoch / 10)) * (4.0 - 1.5)
        assert math.isclose(reste_o_schedule(epoch, total_epochs=10, o_start=1.5, o_end=4.0), expected, rel_tol=1e-15)
    assert reste_o_schedule(7, total_epochs=10, o_start=2.0, o_end=2.0) == 2.0  # a constant o


def test_power_schedule_object_and_apply() -> None:
    schedule = ReSTEPowerSchedule(20)
    assert [schedule(epoch) for epoch in range(21)] == [reste_o_schedule(epoch, total_epochs=20) for epoch in range(21)]
    model = nn.Sequential(ReSTEConv2d(3, 4, 3), nn.Flatten(), ReSTELinear(4, 2), nn.Linear(2, 2))
    o = schedule.apply(model, 10)
    assert o == schedule(10) and model[0].o == o and model[2].o == o
    assert schedule.apply(model, 0) == 1.0 and model[0].o == 1.0
    fresh = ReSTEPowerSchedule(1)
    fresh.load_state_dict(schedule.state_dict())
    assert fresh.state_dict() == {"total_epochs": 20, "o_start": 1.0, "o_end": 3.0}
    assert fresh(13) == schedule(13)
    assert repr(schedule) == "ReSTEPowerSchedule(total_epochs=20, o_start=1.0, o_end=3.0)"


def test_apply_in_a_training_loop_changes_the_gradient_only() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), ReSTELinear(8, 8), nn.Linear(8, 2))
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(1))
    schedule = ReSTEPowerSchedule(4)
    outputs, gradients = [], []
    for epoch in range(2):
        schedule.apply(model, 3 * epoch)
        out = model(x)
        (gradient,) = torch.autograd.grad(out.square().sum(), model[1].weight)
        outputs.append(out.detach())
        gradients.append(gradient)
    assert torch.equal(outputs[0], outputs[1])
    assert not torch.equal(gradients[0], gradients[1])


@pytest.mark.parametrize("epoch", (-1, -0.5, math.nan, math.inf, True, "3", None))
def test_bad_epoch(epoch: object) -> None:
    with pytest.raises(
        gradhub.UnsupportedInputError, match=r"reste_o_schedule: unsupported epoch: .*finite number >= 0"
    ):
        reste_o_schedule(epoch, total_epochs=10)
    with pytest.raises(gradhub.UnsupportedInputError, match=r"reste_o_schedule: unsupported epoch"):
        ReSTEPowerSchedule(10)(epoch)
