"""How ``DiffGrad`` differs from ``pytorch_optimizer.DiffGrad`` (pytorch-optimizer 4.1.0), measured.

Read from its source (``pytorch_optimizer/optimizer/diffgrad.py`` and ``base/optimizer.py``), theirs differs
from ours (the official ``diffGrad_v2.py``) in three ways that change numbers:

1. the denominator is ``sqrt(v + 1e-15) + eps`` (``apply_ams_bound``'s ``exp_avg_sq_eps = 1e-15``, fixed), ours
   ``sqrt(v) + eps``;
2. weight decay is decoupled by default (``weight_decouple=True``: ``p <- p (1 - lr wd)`` before the step, the
   moments and ``previous_grad`` see the raw gradient), ours is coupled L2 (``g + wd p`` everywhere);
   ``weight_decouple=False`` gives the coupled form (added to ``p.grad`` in place);
3. the step count is the param group's (``group["step"]``, counted at every ``step()``), ours each parameter's
   (counted when it has a gradient), so a parameter that skipped steps gets other bias corrections.

No setting of theirs removes (1), so no setting makes the two equal. Instead the first test shows that (1) is
the only other term: one step of each from the same point, at every point of their trajectory, has the same
moments and previous gradient, and their update equals ours times ``(sqrt(v) + eps) / (sqrt(v + 1e-15) + eps)``
(plus ``-lr wd p`` under decoupled decay) to float64 round-off. The others measure the differences with each
one's defaults: ``pytest plugins/diffgrad/tests/test_pytorch_optimizer.py -s`` prints the figures the README
quotes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import pytorch_optimizer
import torch
from gradhub_diffgrad.diffgrad import DiffGrad
from torch import nn

THEIR_V_EPS = 1e-15
"""pytorch_optimizer's ``exp_avg_sq_eps`` (``BaseOptimizer.apply_ams_bound``): added to v under the square root."""

LR, BETAS, EPS, DECAY = 1e-2, (0.9, 0.99), 1e-8, 1e-2
ROUND_OFF = 2e-15
"""Absolute float64 round-off of a one-step parameter change: both sides are differences of parameters of
size below 1 (a few ulps of 2.2e-16)."""


def _network() -> tuple[nn.Module, Callable[[nn.Module], torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(12, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    inputs = torch.randn(16, 2, 4, 4, generator=generator, dtype=torch.float64)
    targets = torch.randn(16, 2, generator=generator, dtype=torch.float64)
    return model, lambda net: nn.functional.mse_loss(net(inputs), targets)


def _state_close(ours: torch.Tensor, theirs: torch.Tensor, what: str) -> None:
    """Equal up to the round-off of lerp (theirs) against mul + add (ours), relative to the tensor's scale."""
    scale = theirs.abs().max().item()
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-13 * scale, msg=lambda m: f"{what}: {m}")


CASES = {
    # name: (ours' weight_decay, theirs' keyword arguments, decoupled decay term in their update)
    "no-decay": (0.0, {"weight_decay": 0.0}, 0.0),
    "coupled": (DECAY, {"weight_decay": DECAY, "weight_decouple": False}, 0.0),
    "decoupled": (0.0, {"weight_decay": DECAY}, DECAY),  # theirs' default form against ours without decay
}


@pytest.mark.parametrize("paths", [(False, False), (True, True)], ids=["per-tensor", "foreach"])
@pytest.mark.parametrize("case", list(CASES))
def test_the_only_other_term_is_their_v_epsilon(case: str, paths: tuple[bool, bool]) -> None:
    """25 float64 steps along their trajectory; before each, ours is put at their point and given their gradient.

    Then m, v and previous_grad agree after every step, and their update is ours scaled by
    ``(sqrt(v) + eps) / (sqrt(v + 1e-15) + eps)``, plus ``-lr wd p`` for their decoupled decay, to round-off
    (2e-15); without the scaling the updates differ by far more.
    """
    our_decay, their_options, decoupled = CASES[case]
    our_foreach, their_foreach = paths
    model, loss = _network()
    theirs_params = list(model.parameters())
    ours_params = [nn.Parameter(p.detach().clone()) for p in theirs_params]
    theirs = pytorch_optimizer.DiffGrad(
        theirs_params, lr=LR, betas=BETAS, eps=EPS, foreach=their_foreach, **their_options
    )
    ours = DiffGrad(ours_params, lr=LR, betas=BETAS, eps=EPS, weight_decay=our_decay, foreach=our_foreach)
    unexplained = 0.0
    for _ in range(25):
        theirs.zero_grad()
        loss(model).backward()
        with torch.no_grad():
            for mine, their in zip(ours_params, theirs_params):
                mine.copy_(their)  # the same point
                mine.grad = their.grad.clone()  # the same gradient (theirs may decay p.grad in place)
        before = [p.detach().clone() for p in theirs_params]
        theirs.step()
        ours.step()
        for mine, their, start in zip(ours_params, theirs_params, before):
            for key in ("exp_avg", "exp_avg_sq", "previous_grad"):
                _state_close(ours.state[mine][key], theirs.state[their][key], f"{case} {key}")
            v = ours.state[mine]["exp_avg_sq"]
            ratio = (v.sqrt() + EPS) / ((v + THEIR_V_EPS).sqrt() + EPS)
            our_update, their_update = mine.detach() - start, their.detach() - start
            decay = -LR * decoupled * start
            torch.testing.assert_close(their_update, decay + our_update * ratio, rtol=0, atol=ROUND_OFF)
            unexplained = max(unexplained, (their_update - decay - our_update).abs().max().item())
    print(f"\n{case}: max |their update - decay - ours| = {unexplained:.3g}")
    assert unexplained > 1000 * ROUND_OFF, f"the 1e-15 term changed nothing measurable ({unexplained:.3g})"


def test_first_step_closed_form_of_the_epsilon_placement() -> None:
    """Step 1 with both defaults on one weight with gradient g: theirs / ours = (sqrt(1 - b2)|g| + eps) /
    (sqrt((1 - b2) g^2 + 1e-15) + eps): 1 for large |g|, 0.76 at |g| = 1e-6, 0.26 at 1e-8."""
    ratios = {}
    for g in (1e-2, 1e-4, 1e-6, 1e-7, 1e-8):
        steps = []
        for make in (DiffGrad, pytorch_optimizer.DiffGrad):
            weight = nn.Parameter(torch.ones(1, dtype=torch.float64))
            weight.grad = torch.full((1,), g, dtype=torch.float64)
            make([weight]).step()
            steps.append(1 - weight.item())
        ours, theirs = steps
        second = (1 - 0.999) * g * g
        expected = (math.sqrt(second) + 1e-8) / (math.sqrt(second + THEIR_V_EPS) + 1e-8)
        assert theirs / ours == pytest.approx(expected, rel=1e-9)
        ratios[g] = theirs / ours
    print("\nfirst-step size, theirs / ours, defaults:", {f"{g:g}": round(r, 4) for g, r in ratios.items()})
    assert ratios[1e-2] == pytest.approx(1.0, abs=1e-8) and ratios[1e-6] < 0.8 and ratios[1e-8] < 0.3


def _trained(make: Callable[[Any], torch.optim.Optimizer], steps: int, loss_scale: float = 1.0) -> torch.Tensor:
    model, loss = _network()
    optimizer = make(model.parameters())
    for _ in range(steps):
        optimizer.zero_grad()
        (loss_scale * loss(model)).backward()
        optimizer.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_difference_with_defaults() -> None:
    """Each with its own defaults (lr 1e-3, betas (0.9, 0.999), eps 1e-8), 100 steps on its own trajectory."""
    start = _trained(DiffGrad, 0)

    def gap(our: dict[str, Any], their: dict[str, Any], scale: float = 1.0) -> tuple[float, float]:
        ours = _trained(lambda p: DiffGrad(p, **our), 100, scale)
        theirs = _trained(lambda p: pytorch_optimizer.DiffGrad(p, **their), 100, scale)
        return (ours - theirs).abs().max().item(), (ours - start).abs().max().item()

    figures = {
        "defaults": gap({}, {}),
        "weight_decay=1e-2 (ours coupled, theirs decoupled)": gap({"weight_decay": 1e-2}, {"weight_decay": 1e-2}),
        "weight_decay=1e-2, both coupled": gap(
            {"weight_decay": 1e-2}, {"weight_decay": 1e-2, "weight_decouple": False}
        ),
        "defaults, loss x 1e-6": gap({}, {}, 1e-6),
    }
    print("\nmax |theta_ours - theta_theirs| after 100 steps (max |theta_ours - theta_0|):")
    for name, (difference, moved) in figures.items():
        print(f"  {name}: {difference:.3g} ({moved:.3g})")
    # The 1e-15 term alone: far below the distance travelled, far above float64 round-off.
    assert 1e-11 < figures["defaults"][0] < 1e-8 * figures["defaults"][1] * 100
    assert figures["weight_decay=1e-2, both coupled"][0] < 1e-8
    # Decoupled against coupled decay: a different optimizer (a third of the distance travelled).
    difference, moved = figures["weight_decay=1e-2 (ours coupled, theirs decoupled)"]
    assert difference > 0.1 * moved
    # Tiny gradients: v falls below 1e-15 and their steps shrink.
    difference, moved = figures["defaults, loss x 1e-6"]
    assert difference > 0.1 * moved


def test_step_counts_per_group_against_per_parameter() -> None:
    """A weight without a gradient at step 2: theirs counts the step anyway (the group's count), ours does not.

    At step 3 its update is then ours scaled by the ratio of the bias-corrected step sizes at t = 3 and t = 2
    (gradients of order 1, so the 1e-15 term is below 1e-12).
    """
    updates = []
    for make in (DiffGrad, pytorch_optimizer.DiffGrad):
        a, b = (nn.Parameter(torch.ones(3, dtype=torch.float64)) for _ in range(2))
        optimizer = make([a, b], lr=1e-2, betas=BETAS)
        for step, grads in enumerate(([0.5, -1.0, 2.0], None, [1.5, 0.3, -0.7]), 1):
            a.grad = torch.tensor([1.0, 2.0, -3.0], dtype=torch.float64) * step
            b.grad = None if grads is None else torch.tensor(grads, dtype=torch.float64)
            before = b.detach().clone()
            optimizer.step()
        updates.append(b.detach() - before)
    beta1, beta2 = BETAS

    def step_size(t: int) -> float:
        return math.sqrt(1 - beta2**t) / (1 - beta1**t)

    torch.testing.assert_close(updates[1], updates[0] * step_size(3) / step_size(2), rtol=1e-12, atol=0)
    assert not torch.allclose(updates[1], updates[0], rtol=1e-3)
