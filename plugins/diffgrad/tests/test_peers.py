"""Agreement with torch-optimizer 0.3.0 (``torch_optimizer.DiffGrad``), which follows the official
``diffGrad_v2.py`` line by line (same eps placement, same clone of the decayed gradient, same state
keys and int step). The one behavioural difference: it adds the weight decay to ``p.grad`` in place,
we do not; parameters and state still agree to 0 (measured) and are asserted to 1e-12.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch_optimizer
from gradhub_diffgrad.diffgrad import DiffGrad
from torch import nn

from gradhub.testing import compare_with

STEPS = 25
TOLERANCE = 1e-12


def _network() -> tuple[nn.Module, Any]:
    generator = torch.Generator().manual_seed(1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(12, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    inputs = torch.randn(16, 2, 4, 4, generator=generator, dtype=torch.float64)
    targets = torch.randn(16, 2, generator=generator, dtype=torch.float64)
    return model, lambda net: nn.functional.mse_loss(net(inputs), targets)


@pytest.mark.parametrize(
    "options", [{"foreach": False}, {"foreach": True}, {"fused": True}], ids=["per-tensor", "multi-tensor", "fused"]
)
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_step_for_step_with_compare_with(options: dict[str, bool], weight_decay: float) -> None:
    """The same parity through gradhub.testing.compare_with: after every one of the 25 steps, not only the last."""
    model, loss = _network()
    compare_with(
        torch_optimizer.DiffGrad,
        lambda groups, **hparams: DiffGrad(groups, **options, **hparams),
        model=model,
        loss=loss,
        steps=STEPS,
        hparams=dict(lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=weight_decay),
        groups=[{"params": [0, 1]}, {"params": [2, 3, 4, 5], "lr": 3e-3}],
        state={name: name for name in ("exp_avg", "exp_avg_sq", "previous_grad", "step")},
        rtol=TOLERANCE,
        atol=TOLERANCE,
    )


def _trained(make: Any) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    model, loss = _network()
    params = list(model.parameters())
    optimizer = make([{"params": params[:2]}, {"params": params[2:], "lr": 3e-3}])
    grads = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss(model).backward()
        optimizer.step()
        grads = [p.grad.detach().clone() for p in params]
    state = [optimizer.state[p][key] for p in params for key in ("exp_avg", "exp_avg_sq", "previous_grad")]
    steps = [optimizer.state[p]["step"] for p in params]
    assert steps == [STEPS] * len(params)
    return [p.detach().clone() for p in params], state, grads


@pytest.mark.parametrize(
    "options", [{"foreach": False}, {"foreach": True}, {"fused": True}], ids=["per-tensor", "multi-tensor", "fused"]
)
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_matches_torch_optimizer(options: dict[str, bool], weight_decay: float) -> None:
    """float64, 25 steps, two param groups: parameters and state (m, v, previous_grad) within 1e-12."""
    hparams = dict(lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=weight_decay)
    peer_params, peer_state, peer_grads = _trained(lambda groups: torch_optimizer.DiffGrad(groups, **hparams))
    params, state, grads = _trained(lambda groups: DiffGrad(groups, **options, **hparams))
    for ours, theirs in zip(params + state, peer_params + peer_state):
        torch.testing.assert_close(ours, theirs, rtol=TOLERANCE, atol=TOLERANCE)
    # torch-optimizer leaves p.grad decayed (g + wd p, p before the last step); ours leaves autograd's
    # gradient untouched. The last step moved p by at most ~lr, hence the tolerance.
    for ours, theirs, param in zip(grads, peer_grads, params):
        torch.testing.assert_close(theirs, ours + weight_decay * param, rtol=0, atol=weight_decay * 2e-2 + 1e-12)
