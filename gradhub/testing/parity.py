"""``compare_with``: step-for-step parity of an optimizer with a reference implementation, in one call.

    from gradhub.testing import compare_with
    compare_with(torch_optimizer.DiffGrad, DiffGrad, model=net, loss=lambda m: ..., steps=25,
                 state={"exp_avg": "exp_avg"}, atol=1e-12)

Both optimizers train their own copy of ``model`` (deep copies: the caller's model is not
touched) on the same loss, from the same start, with the same param groups; after every step
the parameters (and the named state tensors) must agree within ``rtol``/``atol``. The first
disagreement raises ``AssertionError`` naming the step, the parameter, the state entry and the
largest difference, so a parity test reads as the claim it makes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["compare_with"]

OptimizerFactory = Callable[..., torch.optim.Optimizer]


def _groups(model: nn.Module, groups: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """Param groups over ``model``: each of ``groups`` names parameter indices (``"params": [0, 1]``)."""
    params = list(model.parameters())
    if groups is None:
        return [{"params": params}]
    return [{**group, "params": [params[index] for index in group["params"]]} for group in groups]


def compare_with(
    reference: OptimizerFactory,
    ours: OptimizerFactory,
    *,
    model: nn.Module,
    loss: Callable[[nn.Module], torch.Tensor],
    steps: int = 20,
    hparams: Mapping[str, Any] | None = None,
    reference_hparams: Mapping[str, Any] | None = None,
    groups: Sequence[Mapping[str, Any]] | None = None,
    state: Mapping[str, str] | None = None,
    rtol: float = 0.0,
    atol: float = 1e-12,
    closure: bool = False,
) -> None:
    """Train a copy of ``model`` with each optimizer and assert they agree after every step.

    ``hparams`` go to both (``reference_hparams`` to the reference only, on top); ``groups`` are
    param groups by parameter index; ``state`` maps our state keys to the reference's (compared per
    parameter, ints and tensors alike); ``closure=True`` passes the loss closure to ``step``.
    """
    runs = []
    for factory, extra in ((reference, reference_hparams or {}), (ours, {})):
        copied = copy.deepcopy(model)
        optimizer = factory(_groups(copied, groups), **{**(hparams or {}), **extra})
        runs.append((copied, optimizer))
    for step in range(1, steps + 1):
        for copied, optimizer in runs:

            def evaluate(copied: nn.Module = copied, optimizer: torch.optim.Optimizer = optimizer) -> torch.Tensor:
                optimizer.zero_grad()
                value = loss(copied)
                value.backward()
                return value

            if closure:
                optimizer.step(evaluate)
            else:
                evaluate()
                optimizer.step()
        (theirs, their_optimizer), (mine, my_optimizer) = runs
        pairs = list(zip(theirs.parameters(), mine.parameters()))
        for index, (their_param, my_param) in enumerate(pairs):
            _assert_close(their_param, my_param, rtol, atol, f"step {step}, parameter {index}")
            for my_key, their_key in (state or {}).items():
                mine_state = my_optimizer.state.get(my_param, {}).get(my_key)
                theirs_state = their_optimizer.state.get(their_param, {}).get(their_key)
                _assert_close(
                    theirs_state,
                    mine_state,
                    rtol,
                    atol,
                    f"step {step}, parameter {index}, state {my_key!r}/{their_key!r}",
                )


def _assert_close(theirs: Any, mine: Any, rtol: float, atol: float, where: str) -> None:
    if isinstance(theirs, torch.Tensor) and theirs.dim() == 0 and not isinstance(mine, torch.Tensor):
        theirs = theirs.item()
    if isinstance(mine, torch.Tensor) and mine.dim() == 0 and not isinstance(theirs, torch.Tensor):
        mine = mine.item()
    if not isinstance(theirs, torch.Tensor) or not isinstance(mine, torch.Tensor):
        if theirs != mine and not (
            isinstance(theirs, float) and isinstance(mine, float) and abs(theirs - mine) <= atol + rtol * abs(theirs)
        ):
            raise AssertionError(f"{where}: reference {theirs!r}, ours {mine!r}")
        return
    if theirs.shape != mine.shape:
        raise AssertionError(f"{where}: reference shape {tuple(theirs.shape)}, ours {tuple(mine.shape)}")
    a, b = theirs.detach().double().cpu(), mine.detach().double().cpu()
    if not torch.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True):
        worst = (a - b).abs().max().item()
        raise AssertionError(
            f"{where}: ours differs from the reference by up to {worst:.3g} (rtol={rtol}, atol={atol})"
        )
