"""Bad input gives gradhub errors that say what to change, and changes nothing.

Each message must name the method, the parameter, the value given and what is allowed
(DESIGN.md, "Conventions"); errors are gradhub errors that are also ValueError/TypeError.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
from gradhub_adamp.adamp import AdamP
from gradhub_adamp.sgdp import SGDP
from torch import nn

from gradhub.errors import (
    GradhubError,
    HyperparameterError,
    MissingHyperparameterError,
    UnknownHyperparameterError,
    UnsupportedInputError,
)

OPTIMIZERS = {"adamp": AdamP, "sgdp": SGDP}
REQUIRED = {"adamp": {}, "sgdp": {"lr": 0.1}}


def _weight() -> nn.Parameter:
    return nn.Parameter(torch.ones(3, 2))


def _assert_explains(error: GradhubError, method: str, parameter: str, value: Any, allowed: str) -> None:
    message = str(error)
    assert message.startswith(f"{method}:"), message
    assert parameter in message, message
    assert repr(value) in message, message
    assert allowed in message, message


BAD_VALUES = [
    ("lr", -1e-3, "a finite number >= 0"),
    ("lr", math.nan, "a finite number >= 0"),
    ("lr", math.inf, "a finite number >= 0"),
    ("lr", "0.1", "a finite number >= 0"),
    ("eps", -1e-8, "a finite number >= 0"),
    ("eps", math.inf, "a finite number >= 0"),
    ("weight_decay", -0.1, "a finite number >= 0"),
    ("weight_decay", math.nan, "a finite number >= 0"),
    ("delta", -0.1, "a finite number >= 0"),
    ("wd_ratio", 1.5, "<= 1"),
    ("nesterov", 1, "True or False"),
]


@pytest.mark.parametrize("method", ["adamp", "sgdp"])
@pytest.mark.parametrize(("parameter", "value", "allowed"), BAD_VALUES, ids=[f"{p}={v!r}" for p, v, _ in BAD_VALUES])
def test_bad_hyperparameter_values(method: str, parameter: str, value: Any, allowed: str) -> None:
    """Negative or non-finite lr/eps/weight_decay (and other bounds): a HyperparameterError (ValueError)."""
    with pytest.raises(HyperparameterError) as caught:
        OPTIMIZERS[method]([_weight()], **{**REQUIRED[method], parameter: value})
    assert isinstance(caught.value, ValueError)
    _assert_explains(caught.value, method, parameter, value, allowed)


@pytest.mark.parametrize("betas", [(1.0, 0.999), (0.9, 1.0), (-0.1, 0.999), (0.9, math.nan), (0.9,)])
def test_betas_outside_unit_interval(betas: tuple[float, ...]) -> None:
    """Each beta must lie in [0, 1); the message names which one is wrong."""
    with pytest.raises(HyperparameterError) as caught:
        AdamP([_weight()], betas=betas)
    _assert_explains(caught.value, "adamp", "betas", betas, ">= 0 and < 1")


@pytest.mark.parametrize("momentum", [1.0, 1.5, -0.1])
def test_momentum_outside_unit_interval(momentum: float) -> None:
    """momentum >= 1 would divide the decay by 1 - momentum <= 0 (the official code divides by zero)."""
    with pytest.raises(HyperparameterError) as caught:
        SGDP([_weight()], lr=0.1, momentum=momentum)
    _assert_explains(caught.value, "sgdp", "momentum", momentum, ">= 0 and < 1")


def test_sgdp_requires_lr() -> None:
    """SGDP's lr has no default (as in the official code): a MissingHyperparameterError (TypeError) naming it."""
    with pytest.raises(MissingHyperparameterError) as caught:
        SGDP([_weight()], momentum=0.9)
    assert isinstance(caught.value, TypeError)
    message = str(caught.value)
    assert message.startswith("sgdp:") and "'lr'" in message, message


@pytest.mark.parametrize(
    ("method", "typo", "meant"), [("adamp", "wieght_decay", "weight_decay"), ("sgdp", "nestrov", "nesterov")]
)
def test_unknown_keyword_suggests_the_close_one(method: str, typo: str, meant: str) -> None:
    """An unknown keyword: UnknownHyperparameterError (TypeError), 'did you mean', and the accepted list."""
    with pytest.raises(UnknownHyperparameterError) as caught:
        OPTIMIZERS[method]([_weight()], **REQUIRED[method], **{typo: 0.1})
    assert isinstance(caught.value, TypeError)
    message = str(caught.value)
    assert message.startswith(f"{method}:") and f"{typo}=0.1" in message, message
    assert f"did you mean {meant!r}" in message, message
    assert "delta" in message and "wd_ratio" in message, "the accepted names are listed"


def _snapshot(optimizer: torch.optim.Optimizer, params: list[nn.Parameter]) -> tuple[list[torch.Tensor], Any]:
    return [param.detach().clone() for param in params], copy.deepcopy(optimizer.state_dict())


def _assert_unchanged(before: tuple[list[torch.Tensor], Any], after: tuple[list[torch.Tensor], Any]) -> None:
    for first, second in zip(before[0], after[0]):
        assert torch.equal(first, second)
    assert before[1]["param_groups"] == after[1]["param_groups"]
    assert before[1]["state"].keys() == after[1]["state"].keys()
    for index, state in before[1]["state"].items():
        for key, value in state.items():
            other = after[1]["state"][index][key]
            assert torch.equal(value, other) if isinstance(value, torch.Tensor) else value == other


@pytest.mark.parametrize("foreach", [False, True], ids=["per-tensor", "multi-tensor"])
@pytest.mark.parametrize("method", ["adamp", "sgdp"])
def test_sparse_gradient_rejected_before_anything_changes(method: str, foreach: bool) -> None:
    """A sparse gradient anywhere (here in the second group): UnsupportedInputError naming the parameter
    and the layout; the parameters and the state (after one good step) are exactly as before."""
    dense, embedding = nn.Parameter(torch.randn(4, 3)), nn.Parameter(torch.randn(5, 3))
    optimizer = OPTIMIZERS[method](
        [{"params": [dense]}, {"params": [embedding]}], **REQUIRED[method], foreach=foreach, weight_decay=0.1
    )
    dense.grad, embedding.grad = torch.randn(4, 3), torch.randn(5, 3)
    optimizer.step()
    before = _snapshot(optimizer, [dense, embedding])
    dense.grad = torch.randn(4, 3)
    embedding.grad = torch.sparse_coo_tensor([[0, 2]], torch.randn(2, 3), (5, 3), check_invariants=True)
    with pytest.raises(UnsupportedInputError) as caught:
        optimizer.step()
    assert isinstance(caught.value, ValueError)
    message = str(caught.value)
    assert message.startswith(f"{method}:") and "sparse" in message and "param group 1" in message, message
    assert "torch.sparse_coo" in message and "dense" in message, message
    _assert_unchanged(before, _snapshot(optimizer, [dense, embedding]))


@pytest.mark.parametrize("method", ["adamp", "sgdp"])
def test_complex_parameters_rejected(method: str) -> None:
    """Complex parameters (the official code would silently mis-handle them): UnsupportedInputError naming
    the parameter and its dtype, at construction and in add_param_group."""
    complex_param = nn.Parameter(torch.randn(2, 3, dtype=torch.complex64))
    with pytest.raises(UnsupportedInputError) as caught:
        OPTIMIZERS[method]([_weight(), complex_param], **REQUIRED[method])
    message = str(caught.value)
    assert message.startswith(f"{method}:") and "parameter 1" in message and "complex64" in message, message
    assert "real floating point" in message, message
    optimizer = OPTIMIZERS[method]([_weight()], **REQUIRED[method])
    with pytest.raises(UnsupportedInputError):
        optimizer.add_param_group({"params": [complex_param]})
    assert len(optimizer.param_groups) == 1


@pytest.mark.parametrize(
    ("method", "parameter", "value"),
    [("adamp", "lr", -1.0), ("adamp", "betas", (0.9, 1.0)), ("sgdp", "momentum", 1.0), ("sgdp", "eps", math.nan)],
)
def test_invalid_added_param_group_changes_nothing(method: str, parameter: str, value: Any) -> None:
    """add_param_group with a bad value: a HyperparameterError and the optimizer exactly as before;
    it still steps afterwards, and a valid group is then accepted."""
    weight = _weight()
    optimizer = OPTIMIZERS[method]([weight], **REQUIRED[method])
    weight.grad = torch.ones_like(weight)
    optimizer.step()
    before = _snapshot(optimizer, [weight])
    extra = _weight()
    with pytest.raises(HyperparameterError) as caught:
        optimizer.add_param_group({"params": [extra], parameter: value})
    _assert_explains(caught.value, method, parameter, value, "finite number")
    _assert_unchanged(before, _snapshot(optimizer, [weight]))
    assert all(extra is not param for group in optimizer.param_groups for param in group["params"])
    optimizer.step()
    optimizer.add_param_group({"params": [extra], "lr": 0.5})
    assert optimizer.param_groups[1]["lr"] == 0.5
