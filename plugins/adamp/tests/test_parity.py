"""Parity with the official implementation (PyPI ``adamp`` 0.3.0), step for step.

Every CPU code path (per tensor; blocked multi-tensor with stacked weights; the same walked
in row blocks; the branch-free foreach strategy forced onto the CPU) against the official
optimizers in float64 over 25 steps, atol 1e-12 on parameters and optimizer state: with
and without Nesterov and weight decay, channels-last weights, parameters that start
receiving gradients at different steps, several param groups, and parameters of many
shapes. The test network (``adamp_testkit.parity_net``) fires the channel view on its
convolutions, the layer view on its LayerNorm-ed linear layer and neither on the last
layer (pinned by ``test_parity_net_exercises_every_decision``).

Why the convolutions have no bias: a bias right before BatchNorm has an exactly zero
gradient in exact arithmetic; in floating point it gets rounding noise (~1e-17), which
Adam divides by sqrt(v) + eps, so any two implementations that round differently move
that bias by different ~1e-10 amounts. That is a property of the problem, not an error;
``test_conv_bias_before_batchnorm_only_gets_rounding_noise`` shows it.
"""

from __future__ import annotations

import functools
from typing import Any

import adamp as official
import pytest
import torch
from adamp_testkit import (
    CONV_WEIGHTS,
    LAYER_WEIGHT,
    PLAIN_WEIGHT,
    STRATEGIES,
    check_strategy_ran,
    classification_loss,
    decision_modes,
    differences,
    max_difference,
    parity_net,
    state_difference,
    strategy,
    train,
    trained,
)
from gradhub_adamp.adamp import AdamP
from gradhub_adamp.sgdp import SGDP
from torch import Tensor, nn

STEPS = 25
ATOL = 1e-12
OURS = {"adamp": AdamP, "sgdp": SGDP}
OFFICIAL = {"adamp": official.AdamP, "sgdp": official.SGDP}

CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "adamp": ("adamp", dict(lr=1e-2)),
    "adamp-decay": ("adamp", dict(lr=1e-2, weight_decay=5e-2, wd_ratio=0.3)),
    "adamp-nesterov": ("adamp", dict(lr=1e-2, nesterov=True)),
    "adamp-nesterov-decay": ("adamp", dict(lr=1e-2, nesterov=True, weight_decay=5e-2)),
    "sgdp": ("sgdp", dict(lr=0.1, momentum=0.9)),
    "sgdp-decay": ("sgdp", dict(lr=0.1, momentum=0.9, weight_decay=1e-2, wd_ratio=0.3)),
    "sgdp-nesterov": ("sgdp", dict(lr=0.1, momentum=0.9, nesterov=True)),
    "sgdp-nesterov-decay": ("sgdp", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2)),
    "sgdp-dampening-decay": ("sgdp", dict(lr=0.1, momentum=0.8, dampening=0.5, weight_decay=1e-2)),
}


@functools.cache
def _official(config: str, frozen: bool = False, groups: bool = False) -> tuple[nn.Module, torch.optim.Optimizer]:
    """The official optimizer's run (cached: every strategy is compared with the same one)."""
    method, hparams = CONFIGS[config]
    return trained(
        lambda params: OFFICIAL[method](params, **hparams),
        STEPS,
        frozen_until=FROZEN_UNTIL if frozen else None,
        param_groups=GROUPS[method] if groups else None,
    )


def _report(ours: nn.Module, reference: nn.Module) -> str:
    worst = sorted(differences(ours, reference).items(), key=lambda item: -item[1])[:4]
    return ", ".join(f"{name} {value:.2e}" for name, value in worst)


@pytest.mark.parametrize("path", STRATEGIES)
@pytest.mark.parametrize("config", list(CONFIGS))
def test_matches_official(monkeypatch: pytest.MonkeyPatch, config: str, path: str) -> None:
    """Parameters AND state (moments, step counts, momentum buffers) equal the official run."""
    method, hparams = CONFIGS[config]
    with strategy(monkeypatch, path) as (extra, log):
        ours = trained(lambda params: OURS[method](params, **hparams, **extra), STEPS)
    check_strategy_ran(path, log)
    reference = _official(config)
    assert max_difference(ours[0], reference[0]) <= ATOL, _report(ours[0], reference[0])
    assert state_difference(ours, reference) <= ATOL
    if path == "row-blocked":  # every finishing mode on a row-blocked weight, on the expected weights
        modes = set(log.large_weight_modes)
        assert modes == {((8, 27), 1), ((8, 72), 1), ((80, 32), 2), ((10, 80), 0)}, modes
        assert log.large_vector_blocks > 0, "no one-dimensional tensor was walked in row blocks"


def test_parity_net_exercises_every_decision() -> None:
    """The premise of the parity tests: on every step the conv weights take the channel view, the
    LayerNorm-ed linear weight the layer view, and the last linear weight neither."""
    model = parity_net()
    seen: list[dict[str, str | None]] = []
    optimizer = AdamP(model.parameters(), lr=1e-2, foreach=False)
    train(model, classification_loss(model), optimizer, STEPS, before_step=lambda: seen.append(decision_modes(model)))
    for modes in seen:
        assert all(modes[name] == "channel" for name in CONV_WEIGHTS), modes
        assert modes[LAYER_WEIGHT] == "layer", modes
        assert modes[PLAIN_WEIGHT] is None, modes


@pytest.mark.parametrize("path", STRATEGIES)
@pytest.mark.parametrize("config", ["adamp-nesterov-decay", "sgdp-decay"])
def test_channels_last_weights(monkeypatch: pytest.MonkeyPatch, config: str, path: str) -> None:
    """Non-contiguous (channels-last) conv weights: same trajectory as the official code on contiguous ones
    (the official code cannot take channels-last weights: its ``view`` fails), and the layout is kept for the
    weights and their state. SGDP without Nesterov projects its (channels-last) buffer in place."""
    method, hparams = CONFIGS[config]
    with strategy(monkeypatch, path) as (extra, log):
        model, optimizer = trained(lambda params: OURS[method](params, **hparams, **extra), STEPS, channels_last=True)
    check_strategy_ran(path, log, fallback=True)
    convolutions = [param for name, param in model.named_parameters() if name in CONV_WEIGHTS]
    assert all(not param.is_contiguous() for param in convolutions), "the test must use channels-last weights"
    for param in convolutions:
        assert param.is_contiguous(memory_format=torch.channels_last)
        for key, value in optimizer.state[param].items():
            if isinstance(value, Tensor) and key != "step":  # the count: a 0-d tensor, as in torch.optim
                assert value.is_contiguous(memory_format=torch.channels_last)
    reference = _official(config)
    assert max_difference(model, reference[0]) <= ATOL, _report(model, reference[0])
    assert state_difference((model, optimizer), reference) <= ATOL


FROZEN_UNTIL = {"0.weight": 3, "1.bias": 2, LAYER_WEIGHT: 5, "14.bias": 7}
"""Parameters whose ``grad`` stays None for their first steps: per-parameter step counts differ."""


@pytest.mark.parametrize("path", STRATEGIES)
@pytest.mark.parametrize("config", ["adamp-nesterov-decay", "sgdp-nesterov-decay"])
def test_parameters_joining_late(monkeypatch: pytest.MonkeyPatch, config: str, path: str) -> None:
    """Parameters that start receiving gradients at different steps: the official step count (and so
    the bias correction) is per parameter; the multi-tensor paths group tensors by step count."""
    method, hparams = CONFIGS[config]
    with strategy(monkeypatch, path) as (extra, log):
        ours = trained(lambda params: OURS[method](params, **hparams, **extra), STEPS, frozen_until=FROZEN_UNTIL)
    check_strategy_ran(path, log)
    reference = _official(config, frozen=True)
    assert max_difference(ours[0], reference[0]) <= ATOL, _report(ours[0], reference[0])
    assert state_difference(ours, reference) <= ATOL
    if method == "adamp":
        model, optimizer = ours
        steps = {name: optimizer.state[param]["step"] for name, param in model.named_parameters()}
        assert steps["0.weight"] == STEPS - 3 and steps["14.bias"] == STEPS - 7 and steps["3.weight"] == STEPS


def _adamp_groups(model: nn.Module) -> list[dict[str, Any]]:
    named = dict(model.named_parameters())
    return [
        {"params": [named[name] for name in CONV_WEIGHTS], "lr": 2e-2, "weight_decay": 1e-1, "wd_ratio": 0.5},
        {"params": [named[LAYER_WEIGHT], named[PLAIN_WEIGHT]], "nesterov": True, "betas": (0.8, 0.99), "delta": 0.05},
        {"params": [param for param in named.values() if param.dim() <= 1], "weight_decay": 0.0, "eps": 1e-6},
    ]


def _sgdp_groups(model: nn.Module) -> list[dict[str, Any]]:
    named = dict(model.named_parameters())
    return [
        {"params": [named[name] for name in CONV_WEIGHTS], "momentum": 0.5, "dampening": 0.1, "wd_ratio": 0.5},
        {"params": [named[LAYER_WEIGHT], named[PLAIN_WEIGHT]], "nesterov": True, "delta": 0.05},
        {"params": [param for param in named.values() if param.dim() <= 1], "lr": 0.05, "weight_decay": 0.0},
    ]


GROUPS = {"adamp": _adamp_groups, "sgdp": _sgdp_groups}


@pytest.mark.parametrize("path", STRATEGIES)
@pytest.mark.parametrize("config", ["adamp-decay", "sgdp-decay"])
def test_param_groups_with_different_hyperparameters(monkeypatch: pytest.MonkeyPatch, config: str, path: str) -> None:
    """Three groups overriding lr, betas, eps, momentum, dampening, nesterov, delta, wd_ratio, weight_decay."""
    method, hparams = CONFIGS[config]
    with strategy(monkeypatch, path) as (extra, log):
        ours = trained(lambda params: OURS[method](params, **hparams, **extra), STEPS, param_groups=GROUPS[method])
    check_strategy_ran(path, log)
    reference = _official(config, groups=True)
    assert max_difference(ours[0], reference[0]) <= ATOL, _report(ours[0], reference[0])
    assert state_difference(ours, reference) <= ATOL
    ungrouped = _official(config)[0]
    assert max_difference(ours[0], ungrouped) > 1e-3, "the groups' hyperparameters had no effect"


# ---------------------------------------------------------------------------------------------
# Parameters of many shapes, each with a designed invariance.

ZOO_SHAPES: dict[str, tuple[int, ...]] = {
    "rows_a": (6, 5),  # three same-shape channel-invariant weights: stacked in one batch
    "rows_b": (6, 5),
    "rows_c": (6, 5),
    "whole": (4, 5, 6),  # invariant as a whole: layer view
    "plain5d": (3, 2, 2, 2, 2),  # no invariance
    "column": (7, 1),  # rows of one element
    "vector": (9,),
    "scalar": (),
}
ZOO_MODES = {"rows_a": "channel", "rows_b": "channel", "rows_c": "channel", "whole": "layer"}


class Zoo(nn.Module):
    """Parameters of many shapes; the loss depends on each channel-invariant weight only through its
    normalised rows, on ``whole`` only through whole/||whole||, and quadratically on the rest."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(11)
        for name, shape in ZOO_SHAPES.items():
            self.register_parameter(name, nn.Parameter(torch.randn(shape, generator=generator, dtype=torch.float64)))
        self.targets = {
            name: torch.randn(shape, generator=generator, dtype=torch.float64) for name, shape in ZOO_SHAPES.items()
        }

    def loss(self) -> Tensor:
        total = torch.zeros((), dtype=torch.float64)
        for name, param in self.named_parameters():
            target = self.targets[name]
            if ZOO_MODES.get(name) == "channel":
                rows = param / param.norm(dim=1, keepdim=True)
                total = total + (rows - target / target.norm(dim=1, keepdim=True)).square().sum()
            elif ZOO_MODES.get(name) == "layer":
                total = total + (param / param.norm() - target / target.norm()).square().sum()
            else:
                total = total + 0.5 * (param - target).square().sum() + param.sin().sum()
        return total


def _zoo_run(make: Any, steps: int = 20, seen: list[dict[str, str | None]] | None = None) -> Zoo:
    zoo = Zoo()
    optimizer = make(zoo.parameters())
    for _ in range(steps):
        optimizer.zero_grad()
        zoo.loss().backward()
        if seen is not None:
            seen.append(decision_modes(zoo))
        optimizer.step()
    return zoo


@pytest.mark.parametrize("path", STRATEGIES)
@pytest.mark.parametrize("config", ["adamp-nesterov-decay", "sgdp-decay"])
def test_many_shapes(monkeypatch: pytest.MonkeyPatch, config: str, path: str) -> None:
    """0-d, 1-D, (n, 1), 3-D and 5-D parameters, three same-shape weights (stacked), channel and layer
    invariance by construction: equal to the official code on every strategy."""
    method, hparams = CONFIGS[config]
    seen: list[dict[str, str | None]] = []
    reference = _zoo_run(lambda params: OFFICIAL[method](params, **hparams), seen=seen)
    for modes in seen:
        assert {name: modes[name] for name in ZOO_MODES} == ZOO_MODES, modes
        assert modes["plain5d"] is None and modes["column"] is None, modes
    with strategy(monkeypatch, path) as (extra, log):
        ours = _zoo_run(lambda params: OURS[method](params, **hparams, **extra))
    check_strategy_ran(path, log)
    assert max_difference(ours, reference) <= ATOL, differences(ours, reference)


# ---------------------------------------------------------------------------------------------


def test_conv_bias_before_batchnorm_only_gets_rounding_noise() -> None:
    """Why the parity network has no conv bias before BatchNorm (see the module docstring).

    With biases: their gradients are rounding noise (<= 1e-14 of the conv weights' gradients;
    ~1e-17 measured), so AdamP moves them by amounts below 1e-8 that depend on rounding order:
    ours and the official code disagree there by as much as they move them (~1e-10), and
    agree to 1e-12 on every other parameter. SGDP does not normalise the gradient, so it
    agrees everywhere.
    """
    biases = ("0.bias", "3.bias", "6.bias")
    model = parity_net(conv_bias=True)
    classification_loss(model)().backward()
    named = dict(model.named_parameters())
    for bias, weight in zip(biases, CONV_WEIGHTS):
        assert named[bias].grad.abs().max().item() <= 1e-14 * named[weight].grad.abs().max().item()
    start = dict(parity_net(conv_bias=True).named_parameters())
    ours, _ = trained(lambda params: AdamP(params, lr=1e-2, foreach=False), STEPS, conv_bias=True)
    reference, _ = trained(lambda params: official.AdamP(params, lr=1e-2), STEPS, conv_bias=True)
    assert max_difference(ours, reference, skip=biases) <= ATOL
    for model in (ours, reference):
        moved = max(
            (param - start[name]).abs().max().item() for name, param in model.named_parameters() if name in biases
        )
        assert moved < 1e-8
    sgdp_ours, _ = trained(lambda params: SGDP(params, lr=0.1, momentum=0.9), STEPS, conv_bias=True)
    sgdp_reference, _ = trained(lambda params: official.SGDP(params, lr=0.1, momentum=0.9), STEPS, conv_bias=True)
    assert max_difference(sgdp_ours, sgdp_reference) <= ATOL


@pytest.mark.parametrize("method", ["adamp", "sgdp"])
def test_official_resumes_from_our_checkpoint(method: str) -> None:
    """Same state keys as the official code: the official optimizer continues exactly from our state_dict.

    Our step count is a 0-d float32 tensor (torch.optim's convention, for torch.compile); the official code
    computes ``beta ** step`` with it, in float32 for a tensor, so its checkpoint gets ``int(step)``."""
    config = "adamp-nesterov-decay" if method == "adamp" else "sgdp"
    _, hparams = CONFIGS[config]
    model = parity_net()
    loss = classification_loss(model)
    ours = OURS[method](model.parameters(), **hparams)
    train(model, loss, ours, 10)
    theirs = OFFICIAL[method](model.parameters(), **hparams)
    checkpoint = ours.state_dict()
    for state in checkpoint["state"].values():
        if "step" in state:
            state["step"] = int(state["step"])
    theirs.load_state_dict(checkpoint)
    train(model, loss, theirs, STEPS - 10)
    assert max_difference(model, _official(config)[0]) <= ATOL


@pytest.mark.parametrize("method", ["adamp", "sgdp"])
def test_resumes_from_official_checkpoint(method: str) -> None:
    """Drop-in replacement: continue an official run from its state_dict and land on the official result."""
    config = "adamp-nesterov-decay" if method == "adamp" else "sgdp"
    _, hparams = CONFIGS[config]
    model = parity_net()
    loss = classification_loss(model)
    theirs = OFFICIAL[method](model.parameters(), **hparams)
    train(model, loss, theirs, 10)
    ours = OURS[method](model.parameters(), **hparams)
    ours.load_state_dict(theirs.state_dict())
    train(model, loss, ours, STEPS - 10)
    assert max_difference(model, _official(config)[0]) <= ATOL


@pytest.mark.parametrize("config", list(CONFIGS))
def test_every_step_with_compare_with(config: str) -> None:
    """The same parity through gradhub.testing.compare_with, after each of the 25 steps (default path)."""
    from gradhub.testing import compare_with

    method, hparams = CONFIGS[config]
    model = parity_net()

    def loss(net: nn.Module) -> Tensor:
        return classification_loss(net)()

    state = (
        {"exp_avg": "exp_avg", "exp_avg_sq": "exp_avg_sq", "step": "step"}
        if method == "adamp"
        else {"momentum": "momentum"}
    )
    compare_with(
        OFFICIAL[method], OURS[method], model=model, loss=loss, steps=STEPS, hparams=hparams, state=state, atol=ATOL
    )
