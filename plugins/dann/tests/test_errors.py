"""Bad input gives gradhub errors naming the method, the parameter, the value and what is allowed."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from gradhub_dann.dann import DANN
from gradhub_dann.reversal import GradientReversal, grad_reverse
from gradhub_dann.schedules import dann_lambda, dann_lr
from torch import nn

from gradhub.errors import HyperparameterError, UnknownHyperparameterError, UnsupportedInputError

BAD_LAMBDAS: list[Any] = [-0.5, math.nan, math.inf, "1", True, torch.tensor([1.0, 2.0]), torch.tensor(1)]


@pytest.mark.parametrize("bad", BAD_LAMBDAS, ids=repr)
def test_bad_lambda(bad: Any) -> None:
    x = torch.ones(2, requires_grad=True)
    with pytest.raises(HyperparameterError, match=r"grad_reverse: invalid lambd=.*must be a finite number >= 0"):
        grad_reverse(x, lambd=bad)
    with pytest.raises(HyperparameterError, match=r"gradient_reversal: invalid lambd="):
        GradientReversal(lambd=bad)
    layer = GradientReversal(lambd=1.0)
    with pytest.raises(HyperparameterError, match=r"gradient_reversal: invalid lambd="):
        layer.lambd = bad
    assert layer.lambd == 1.0  # unchanged


def test_negative_tensor_lambda_and_shown_value() -> None:
    with pytest.raises(HyperparameterError, match=r"lambd=tensor\(-1\.\)"):
        grad_reverse(torch.ones(2), lambd=torch.tensor(-1.0))


def test_unknown_keyword() -> None:
    with pytest.raises(UnknownHyperparameterError, match=r"grad_reverse: unknown hyperparameter lamda=1.*'lambd'"):
        grad_reverse(torch.ones(2), lamda=1.0)
    with pytest.raises(UnknownHyperparameterError, match=r"gradient_reversal: unknown hyperparameter alpha=1"):
        GradientReversal(alpha=1.0)


def test_bad_inputs() -> None:
    with pytest.raises(UnsupportedInputError, match=r"grad_reverse: unsupported x dtype: torch.int64"):
        grad_reverse(torch.ones(2, dtype=torch.long))
    with pytest.raises(UnsupportedInputError, match=r"grad_reverse: unsupported x: list; x must be a tensor"):
        grad_reverse([1.0, 2.0])  # type: ignore[arg-type]
    with pytest.raises(UnsupportedInputError, match=r"lambd device: meta.*input's device"):
        grad_reverse(torch.ones(2), lambd=torch.tensor(0.5, device="meta"))


@pytest.mark.parametrize("p", [-0.1, 1.5, math.nan, "0.5", torch.tensor([0.2, 1.2])], ids=repr)
def test_bad_progress(p: Any) -> None:
    with pytest.raises(
        UnsupportedInputError, match=r"dann_lambda: unsupported p(?: values)?: .*finite number in \[0, 1\]"
    ):
        dann_lambda(p)


@pytest.mark.parametrize(
    ("name", "value"), [("gamma", 0.0), ("gamma", -10.0), ("max_lambda", -1.0), ("gamma", math.nan)]
)
def test_bad_dann_lambda_hyperparameters(name: str, value: float) -> None:
    with pytest.raises(HyperparameterError, match=rf"dann_lambda: invalid {name}={value}"):
        dann_lambda(0.5, **{name: value})


def test_bad_dann_lr_arguments() -> None:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.01)
    with pytest.raises(
        HyperparameterError, match=r"dann_lr: invalid total_steps=0; total_steps must be an integer >= 1"
    ):
        dann_lr(optimizer, total_steps=0)
    with pytest.raises(HyperparameterError, match=r"dann_lr: invalid total_steps=10.5"):
        dann_lr(optimizer, total_steps=10.5)
    with pytest.raises(HyperparameterError, match=r"dann_lr: invalid beta=-0.75"):
        dann_lr(optimizer, total_steps=10, beta=-0.75)
    with pytest.raises(HyperparameterError, match=r"dann_lr: missing required hyperparameter 'total_steps'"):
        dann_lr(optimizer)
    with pytest.raises(UnsupportedInputError, match=r"dann_lr: unsupported optimizer: list"):
        dann_lr([], total_steps=10)


def _model() -> DANN:
    return DANN(nn.Linear(3, 4), nn.Linear(4, 2), nn.Linear(4, 1))


def test_dann_errors() -> None:
    with pytest.raises(HyperparameterError, match=r"dann: invalid lambd=-1"):
        DANN(nn.Linear(3, 4), nn.Linear(4, 2), nn.Linear(4, 1), lambd=-1.0)
    with pytest.raises(UnsupportedInputError, match=r"dann: unsupported domain_head: function"):
        DANN(nn.Linear(3, 4), nn.Linear(4, 2), lambda f: f)  # type: ignore[arg-type]
    model, xs, ys, xt = _model(), torch.randn(5, 3), torch.zeros(5, dtype=torch.long), torch.randn(6, 3)
    with pytest.raises(UnsupportedInputError, match=r"dann: unsupported xt shape: \(6, 4\)"):
        model.loss(xs, ys, torch.randn(6, 4))
    with pytest.raises(UnsupportedInputError, match=r"dann: unsupported ys dtype: torch.float32; ys must be int64 or"):
        model.loss(xs, ys.float(), xt)
    with pytest.raises(UnsupportedInputError, match=r"dann: unsupported xt dtype: torch.float64"):
        model.loss(xs, ys, xt.double())
    with pytest.raises(UnsupportedInputError, match=r"dann: unsupported xt shape: \(0, 3\); xt must hold at least one"):
        model.loss(xs, ys, xt[:0])
    wide = DANN(nn.Linear(3, 4), nn.Linear(4, 2), nn.Linear(4, 2))
    with pytest.raises(UnsupportedInputError, match=r"dann: unsupported domain_head output shape: \(11, 2\)"):
        wide.loss(xs, ys, xt)


def test_train_dann_errors() -> None:
    from gradhub_dann import train_dann

    model, xs, ys, xt = _model(), torch.randn(5, 3), torch.zeros(5, dtype=torch.long), torch.randn(6, 3)
    with pytest.raises(HyperparameterError, match=r"train_dann: invalid steps=0"):
        train_dann(model, xs, ys, xt, steps=0)
    with pytest.raises(HyperparameterError, match=r"train_dann: invalid record_every=0"):
        train_dann(model, xs, ys, xt, steps=3, record_every=0)
