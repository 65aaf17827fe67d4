"""Bad input gives gradhub errors that name the method, the parameter, the value and what is allowed."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
from gradhub_diffgrad.diffgrad import DiffGrad
from torch import nn

from gradhub.errors import HyperparameterError, UnknownHyperparameterError, UnsupportedInputError


def _weight() -> nn.Parameter:
    return nn.Parameter(torch.ones(3, 2))


BAD_VALUES = [
    ("lr", -1e-3, "a finite number >= 0"),
    ("lr", math.nan, "a finite number >= 0"),
    ("lr", "0.1", "a finite number >= 0"),
    ("eps", -1e-8, "a finite number >= 0"),
    ("eps", math.inf, "a finite number >= 0"),
    ("weight_decay", -0.1, "a finite number >= 0"),
    ("foreach", 1, "True or False"),
]


@pytest.mark.parametrize(("parameter", "value", "allowed"), BAD_VALUES, ids=[f"{p}={v!r}" for p, v, _ in BAD_VALUES])
def test_bad_hyperparameter_values(parameter: str, value: Any, allowed: str) -> None:
    with pytest.raises(HyperparameterError) as caught:
        DiffGrad([_weight()], **{parameter: value})
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert message.startswith("diffgrad:") and parameter in message and repr(value) in message, message
    assert allowed in message, message


@pytest.mark.parametrize("betas", [(1.0, 0.999), (0.9, 1.0), (-0.1, 0.999), (0.9, math.nan), (0.9,)])
def test_betas_outside_unit_interval(betas: tuple[float, ...]) -> None:
    with pytest.raises(HyperparameterError) as caught:
        DiffGrad([_weight()], betas=betas)
    message = str(caught.value)
    assert message.startswith("diffgrad:") and "betas" in message and ">= 0 and < 1" in message, message


def test_bad_value_in_a_param_group() -> None:
    """A group's override is validated too, and the optimizer is not left half-built."""
    with pytest.raises(HyperparameterError, match=r"diffgrad: .*lr"):
        DiffGrad([{"params": [_weight()]}, {"params": [_weight()], "lr": -1.0}])


def test_unknown_keyword_suggests_the_close_one() -> None:
    with pytest.raises(UnknownHyperparameterError) as caught:
        DiffGrad([_weight()], wieght_decay=0.1)
    message = str(caught.value)
    assert isinstance(caught.value, TypeError)
    assert message.startswith("diffgrad:") and "wieght_decay=0.1" in message and "'weight_decay'" in message, message


def test_amsgrad_is_not_offered() -> None:
    """The official docstring mentions AMSGrad, the code has none; neither do we."""
    with pytest.raises(UnknownHyperparameterError, match="amsgrad"):
        DiffGrad([_weight()], amsgrad=True)


def test_integer_parameter_rejected() -> None:
    with pytest.raises(UnsupportedInputError, match=r"diffgrad: .*torch.int64"):
        DiffGrad([torch.ones(3, dtype=torch.int64)])


@pytest.mark.parametrize("foreach", [False, True], ids=["per-tensor", "multi-tensor"])
def test_sparse_gradient_rejected_before_anything_changes(foreach: bool) -> None:
    dense, embedding = nn.Parameter(torch.randn(4, 3)), nn.Parameter(torch.randn(5, 3))
    optimizer = DiffGrad([{"params": [dense]}, {"params": [embedding]}], foreach=foreach, weight_decay=0.1)
    dense.grad, embedding.grad = torch.ones(4, 3), torch.ones(5, 3)
    optimizer.step()
    before = [dense.detach().clone(), embedding.detach().clone()], copy.deepcopy(optimizer.state_dict())
    embedding.grad = torch.ones(5, 3).to_sparse()
    with pytest.raises(UnsupportedInputError) as caught:
        optimizer.step()
    message = str(caught.value)
    assert message.startswith("diffgrad:") and "sparse" in message and "sparse_coo" in message, message
    assert torch.equal(before[0][0], dense.detach()) and torch.equal(before[0][1], embedding.detach())
    after = optimizer.state_dict()
    for index, state in before[1]["state"].items():
        for key, value in state.items():
            other = after["state"][index][key]
            assert torch.equal(value, other) if isinstance(value, torch.Tensor) else value == other
