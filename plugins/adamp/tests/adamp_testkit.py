"""Helpers shared by gradhub-adamp's tests: a seeded test network, training loops, strategy switches.

Nothing here asserts; the tests do. The network mixes every kind of parameter the
projection treats differently:

* convolutions followed by BatchNorm: scale-invariant row by row (channel view fires);
  two of them share a shape, so the CPU multi-tensor strategy stacks them;
* a linear layer followed by LayerNorm: scale-invariant only as a whole (layer view);
* a final linear layer: not scale-invariant (no view fires);
* one-dimensional parameters (BatchNorm/LayerNorm affine, a bias): never projected.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import gradhub_adamp.adamp as ours_adamp
import gradhub_adamp.fused as ours_fused
import gradhub_adamp.multitensor as multitensor
import gradhub_adamp.sgdp as ours_sgdp
import pytest
import torch
from gradhub_adamp.projection import project_radial
from torch import Tensor, nn

from gradhub.kernels import accelerator_formulation

Params = Iterable[Tensor] | Iterable[dict[str, Any]]
OptimizerFactory = Callable[[Params], torch.optim.Optimizer]
Loss = Callable[[], Tensor]

UNFUSED_STRATEGIES = ("per-tensor", "blocked", "row-blocked", "foreach")
"""The Python code paths: ``foreach=False``; the CPU multi-tensor strategy with stacked small
weights; the same with ``BLOCK_BYTES`` shrunk so that every weight is walked in row
blocks; and the branch-free foreach strategy that normally runs only off the CPU."""
STRATEGIES = (*UNFUSED_STRATEGIES, "fused", "fused-rows")
"""Every CPU code path: the above, the fused kernel (``fused=True``; the test network's
weights are small, so each is done whole by one thread), and the fused kernel with its
grain shrunk to ``FUSED_ROW_GRAIN`` elements, so weights are split into row chunks
(statistics, decision, then rows; the layer view's extra pass) across threads, all in one
cache batch (``FUSED_BATCH_BYTES``; test_paths.py's real-size test puts each weight in its own)."""

FUSED_ROW_GRAIN = 64
"""conv weights (8 x 27 and 8 x 72) and both linear weights (80 x 32, 10 x 80) exceed it:
every weight takes the large-weight phases, in chunks of 1-2 rows."""

ROW_BLOCK_BYTES = 512
"""With float64 this is 64 elements per block: conv1 (8 x 27) walks 2 rows per block, the
other convolutions (8 x 72) and the final linear layer (10 x 80) one row per block, the
LayerNorm-ed linear layer (80 x 32) 2 rows per block, LayerNorm's 80-element affine
parameters (one-dimensional) in blocks too; the BatchNorm parameters stay stacked."""


def parity_net(seed: int = 0, dtype: torch.dtype = torch.float64, conv_bias: bool = False) -> nn.Sequential:
    """The test network (see the module docstring); ``conv_bias`` puts a bias on each conv before BN."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=conv_bias),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, bias=conv_bias),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, bias=conv_bias),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Linear(32, 80, bias=False),
            nn.LayerNorm(80),
            nn.ReLU(),
            nn.Linear(80, 10),
        )
    return model.to(dtype)


CONV_WEIGHTS = ("0.weight", "3.weight", "6.weight")
LAYER_WEIGHT = "11.weight"
PLAIN_WEIGHT = "14.weight"


def classification_loss(model: nn.Module, seed: int = 0, batch: int = 16) -> Loss:
    """Cross-entropy of ``model`` on fixed random 8x8 images with random labels out of 10."""
    generator = torch.Generator().manual_seed(seed + 1000)
    parameter = next(model.parameters())
    inputs = torch.randn(batch, 3, 8, 8, generator=generator, dtype=torch.float64).to(parameter.dtype)
    labels = torch.randint(10, (batch,), generator=generator)

    def loss() -> Tensor:
        return nn.functional.cross_entropy(model(inputs), labels)

    return loss


def train(
    model: nn.Module,
    loss: Loss,
    optimizer: torch.optim.Optimizer,
    steps: int,
    frozen_until: dict[str, int] | None = None,
    before_step: Callable[[], None] | None = None,
) -> None:
    """``steps`` steps of ``optimizer`` on ``loss``.

    ``frozen_until`` maps parameter names to the step (0-based) from which they get a
    gradient; before it their ``grad`` is ``None``, so per-parameter step counts differ.
    ``before_step`` runs after the backward pass, before each step (to observe gradients).
    """
    named = dict(model.named_parameters())
    for step in range(steps):
        optimizer.zero_grad()
        loss().backward()
        for name, start in (frozen_until or {}).items():
            if step < start:
                named[name].grad = None
        if before_step is not None:
            before_step()
        optimizer.step()


def trained(
    make_optimizer: OptimizerFactory,
    steps: int,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    conv_bias: bool = False,
    frozen_until: dict[str, int] | None = None,
    param_groups: Callable[[nn.Module], Params] | None = None,
    channels_last: bool = False,
) -> tuple[nn.Module, torch.optim.Optimizer]:
    """A fresh :func:`parity_net` trained ``steps`` steps by ``make_optimizer``, and the optimizer."""
    model = parity_net(seed, dtype, conv_bias)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    params = param_groups(model) if param_groups is not None else model.parameters()
    optimizer = make_optimizer(params)
    train(model, classification_loss(model, seed), optimizer, steps, frozen_until)
    return model, optimizer


def state_difference(
    first: tuple[nn.Module, torch.optim.Optimizer], second: tuple[nn.Module, torch.optim.Optimizer]
) -> float:
    """Largest absolute difference between the optimizers' per-parameter states (matched by parameter name).

    Raises if the two hold different state keys or step counts for a parameter.
    """
    (model, optimizer), (other_model, other_optimizer) = first, second
    others = dict(other_model.named_parameters())
    worst = 0.0
    for name, param in model.named_parameters():
        state, other = optimizer.state[param], other_optimizer.state[others[name]]
        if set(state) != set(other):
            raise AssertionError(f"{name}: state keys {sorted(state)} != {sorted(other)}")
        for key, value in state.items():
            if isinstance(value, Tensor):
                worst = max(worst, (value - other[key]).abs().max().item())
            elif value != other[key]:
                raise AssertionError(f"{name}: state[{key!r}] {value!r} != {other[key]!r}")
    return worst


def decision_modes(model: nn.Module) -> dict[str, str | None]:
    """The projection's decision (``"channel"``, ``"layer"`` or None) for each weight's current gradient."""
    return {
        name: project_radial(param.detach(), param.grad, param.grad)[2]
        for name, param in model.named_parameters()
        if param.grad is not None
    }


def clone(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model)


def max_difference(first: nn.Module, second: nn.Module, skip: Iterable[str] = ()) -> float:
    """Largest absolute difference between same-named parameters (those in ``skip`` left out)."""
    others = dict(second.named_parameters())
    skipped = set(skip)
    return max(
        (param.detach() - others[name].detach()).abs().max().item()
        for name, param in first.named_parameters()
        if name not in skipped
    )


def differences(first: nn.Module, second: nn.Module) -> dict[str, float]:
    """Per-parameter largest absolute difference, for failure messages."""
    others = dict(second.named_parameters())
    return {
        name: (param.detach() - others[name].detach()).abs().max().item() for name, param in first.named_parameters()
    }


@dataclass
class StrategyLog:
    """What ran during a test: calls per multi-tensor strategy and the row-blocked finishing modes."""

    blocked_calls: int = 0
    foreach_calls: int = 0
    large_weight_modes: list[tuple[tuple[int, int], int]] = field(default_factory=list)
    """One entry per finished row-blocked weight: its (rows, row length) and its mode,
    0 not projected, 1 channel view, 2 layer view."""
    large_vector_blocks: int = 0
    """Row-blocked one-dimensional tensors walked (the plain path of large tensors)."""
    fused_calls: int = 0
    """Calls of the fused kernels (AdamP's or SGDP's)."""


@contextlib.contextmanager
def strategy(monkeypatch: pytest.MonkeyPatch, name: str) -> Iterator[tuple[dict[str, Any], StrategyLog]]:
    """Select a CPU code path; yields the optimizer keyword (``foreach``) and a log of what ran.

    ``foreach`` runs inside the core's :func:`gradhub.kernels.accelerator_formulation`, so the
    branch-free strategy a GPU runs takes the CPU tensors. ``row-blocked`` shrinks
    ``BLOCK_BYTES`` (read at every call).
    """
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}")
    log = StrategyLog()
    with monkeypatch.context() as patch:
        original_blocked = multitensor.blocked_projected_step
        original_foreach = multitensor.foreach_projected_step

        def blocked(*args: Any, **kwargs: Any) -> None:
            log.blocked_calls += 1
            original_blocked(*args, **kwargs)

        def foreach(*args: Any, **kwargs: Any) -> None:
            log.foreach_calls += 1
            original_foreach(*args, **kwargs)

        for module in (ours_adamp, ours_sgdp):
            patch.setattr(module, "blocked_projected_step", blocked)
            patch.setattr(module, "foreach_projected_step", foreach)

        original_finish = multitensor._LargeWeight.finish

        def finish(self: Any, modes: list[int], *args: Any, **kwargs: Any) -> None:
            log.large_weight_modes.extend((tuple(self.weights.shape[1:]), mode) for mode in modes)
            original_finish(self, modes, *args, **kwargs)

        patch.setattr(multitensor._LargeWeight, "finish", finish)
        original_row_blocks = multitensor.row_blocks

        def row_blocks(rows: int, row_length: int, max_block_numel: int) -> list[slice]:
            blocks = original_row_blocks(rows, row_length, max_block_numel)
            if row_length == 1:
                log.large_vector_blocks += 1
            return blocks

        patch.setattr(multitensor, "row_blocks", row_blocks)

        for optimizer in (ours_adamp.AdamP, ours_sgdp.SGDP):
            original_fused = optimizer.fused_kernel

            def fused(*args: Any, _original: Any = original_fused, **kwargs: Any) -> bool:
                log.fused_calls += 1
                return _original(*args, **kwargs)

            patch.setattr(optimizer, "fused_kernel", staticmethod(fused))
        if name == "fused-rows":
            patch.setattr(ours_fused, "FUSED_GRAIN", FUSED_ROW_GRAIN)
        if name == "row-blocked":
            patch.setattr(multitensor, "BLOCK_BYTES", ROW_BLOCK_BYTES)
        with accelerator_formulation() if name == "foreach" else contextlib.nullcontext():
            if name.startswith("fused"):
                yield {"fused": True}, log
            else:
                yield {"foreach": name != "per-tensor"}, log


def check_strategy_ran(name: str, log: StrategyLog, fallback: bool = False) -> None:
    """Raise if the selected strategy did not actually run (the patches took no effect).

    For the fused strategies, ``fallback=True`` allows some tensors to have taken the
    multi-tensor path too (non-contiguous weights, say); without it the kernel ran alone.
    """
    if name.startswith("fused"):
        if not log.fused_calls:
            raise AssertionError(f"{name}: the fused kernel did not run: {log}")
        if not fallback and (log.blocked_calls or log.foreach_calls):
            raise AssertionError(f"{name}: tensors fell back to the multi-tensor path: {log}")
        return
    if name == "per-tensor" and (log.blocked_calls or log.foreach_calls):
        raise AssertionError(f"per-tensor path ran a multi-tensor strategy: {log}")
    if name in ("blocked", "row-blocked") and (not log.blocked_calls or log.foreach_calls):
        raise AssertionError(f"{name}: the CPU blocked strategy did not run alone: {log}")
    if name == "blocked" and log.large_weight_modes:
        raise AssertionError(f"blocked: weights were row-blocked although all are small: {log}")
    if name == "row-blocked" and not log.large_weight_modes:
        raise AssertionError(f"row-blocked: no weight was walked in row blocks: {log}")
    if name == "foreach" and (not log.foreach_calls or log.blocked_calls):
        raise AssertionError(f"foreach: the foreach strategy did not run alone: {log}")


def random_steps(
    make: Callable[[list[Tensor]], torch.optim.Optimizer],
    shapes: list[tuple[int, ...]],
    steps: int = 10,
    seed: int = 99,
) -> list[Tensor]:
    """``steps`` steps on float64 parameters of ``shapes`` with seeded random gradients."""
    params = [
        nn.Parameter(torch.randn(shape, generator=torch.Generator().manual_seed(index), dtype=torch.float64))
        for index, shape in enumerate(shapes)
    ]
    optimizer = make(params)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        for param in params:
            param.grad = torch.randn(param.shape, generator=generator, dtype=torch.float64)
        optimizer.step()
    return [param.detach() for param in params]
