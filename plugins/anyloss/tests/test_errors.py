"""Bad inputs and hyperparameters raise gradhub errors naming the method, the parameter, the value
and what is allowed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from gradhub_anyloss.anyloss import (
    AnyLoss,
    any_accuracy,
    any_balanced_accuracy,
    any_fbeta,
    any_gmean,
    soft_confusion_matrix,
    wbce_any,
)

from gradhub import HyperparameterError, UnknownHyperparameterError, UnsupportedInputError
from gradhub.testing import counting_read_backs


def _anyloss(p: torch.Tensor, y: torch.Tensor, *, check_finite: bool = True, **hparams: Any) -> torch.Tensor:
    """The module called as the functions are (the loss frame's check is an attribute of the module)."""
    module = AnyLoss(**hparams)
    module.check_finite = check_finite
    return module(p, y)


FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "anyloss": _anyloss,
    "any_accuracy": any_accuracy,
    "any_fbeta": any_fbeta,
    "any_gmean": any_gmean,
    "any_balanced_accuracy": any_balanced_accuracy,
    "wbce_any": wbce_any,
}

P = torch.tensor([0.2, 0.7, 0.9, 0.4])
Y = torch.tensor([0, 1, 1, 0])


def raises(method: str, call: Callable[[], Any], *fragments: str) -> None:
    with pytest.raises(UnsupportedInputError) as info:
        call()
    message = str(info.value)
    assert message.startswith(f"{method}: "), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


@pytest.mark.parametrize("method", list(FUNCTIONS))
def test_bad_inputs(method: str) -> None:
    loss = FUNCTIONS[method]
    raises(method, lambda: loss([0.2, 0.7], Y), "prediction", "list", "tensor")
    raises(method, lambda: loss(P, [0, 1, 1, 0]), "target", "list", "tensor of 0/1 labels")
    raises(method, lambda: loss(torch.tensor([0, 1, 1, 0]), Y), "prediction dtype", "torch.int64", "floating-point")
    raises(method, lambda: loss(P, Y.to(torch.complex64)), "target dtype", "complex64", "real (not complex)")
    raises(method, lambda: loss(P, Y.to("meta")), "devices", "prediction on cpu, target on meta", "same device")
    raises(method, lambda: loss(torch.empty(0), torch.empty(0)), "prediction shape", "(0,)", "at least one")
    raises(method, lambda: loss(P, Y[:3]), "shapes", "prediction (4,), target (3,)", "same shape")
    raises(method, lambda: loss(P.view(2, 2), Y), "shapes", "prediction (2, 2), target (4,)")


@pytest.mark.parametrize("method", list(FUNCTIONS))
def test_bad_values_with_check_values(method: str) -> None:
    def loss(*args: Any, **kwargs: Any) -> torch.Tensor:
        return FUNCTIONS[method](*args, check_values=True, **kwargs)

    raises(method, lambda: loss(P, torch.tensor([0, 2, 1, 0])), "target values", "2 (1 of 4 entries", "0 and 1")
    raises(method, lambda: loss(P, torch.tensor([0.0, 0.5, float("nan"), 1.0])), "target values", "0.5 (2 of 4")
    raises(method, lambda: loss(torch.tensor([0.2, 1.5, -0.1, 0.4]), Y), "prediction values", "1.5 (2 of 4", "[0, 1]")
    raises(method, lambda: loss(torch.tensor([0.2, float("nan"), 0.5, 0.4]), Y), "prediction values", "nan")
    raises(
        method,
        lambda: loss(torch.tensor([0.2, float("nan"), 3.0, -7.0]), Y, from_logits=True),
        "prediction values",
        "nan (1 of 4 entries)",
        "logits must not be NaN",
    )


@pytest.mark.parametrize("method", list(FUNCTIONS))
def test_check_values_false_skips_the_value_checks(method: str) -> None:
    """With check_values=False out-of-range values are not looked at (with check_finite=False too, no host
    read at all); shapes are still checked. A NaN loss from them (wbce_any's log(1 - 1.5)) is the loss
    frame's error."""
    flag = {"check_values": False}
    value = FUNCTIONS[method](torch.tensor([0.2, 1.5, 0.9, 0.4]), Y, check_finite=False, **flag)
    assert value.dim() == 0
    if not torch.isfinite(value):
        raises(
            method,
            lambda: FUNCTIONS[method](torch.tensor([0.2, 1.5, 0.9, 0.4]), Y, **flag),
            "loss value",
            "1 of 1 entries non-finite",
        )
    raises(method, lambda: FUNCTIONS[method](P, Y[:3], **flag), "shapes")


@pytest.mark.parametrize("method", list(FUNCTIONS))
@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({}, ["item"]),
        ({"check_values": True}, ["tolist"]),
        ({"check_values": True, "check_finite": False}, ["tolist"]),
        ({"check_finite": False}, []),
    ],
)
def test_one_host_read_per_call(method: str, flags: dict, expected: list) -> None:
    """By default only the scalar loss is read back (the finite-loss check); the opt-in value checks share
    that one read (one sync on a GPU); with both off a call reads nothing back."""
    with counting_read_backs() as reads:
        FUNCTIONS[method](P, Y, **flags)
    assert reads == expected


def hyperparameter_error(method: str, call: Callable[[], Any], parameter: str, value: Any, allowed: str) -> None:
    with pytest.raises(HyperparameterError) as info:
        call()
    message = str(info.value)
    assert message.startswith(f"{method}: "), message
    assert parameter in message and repr(value) in message and allowed in message, message


@pytest.mark.parametrize("method", list(FUNCTIONS))
def test_bad_hyperparameters(method: str) -> None:
    loss = FUNCTIONS[method]
    hyperparameter_error(method, lambda: loss(P, Y, L=0.0), "L", 0.0, "> 0")
    hyperparameter_error(method, lambda: loss(P, Y, L=-3.0), "L", -3.0, "> 0")
    hyperparameter_error(method, lambda: loss(P, Y, L="73"), "L", "73", "a finite number")
    hyperparameter_error(method, lambda: loss(P, Y, from_logits="yes"), "from_logits", "yes", "True or False")
    if method != "any_accuracy":
        hyperparameter_error(method, lambda: loss(P, Y, eps=-1e-5), "eps", -1e-5, ">= 0")
    with pytest.raises(UnknownHyperparameterError, match=f"^{method}: unknown hyperparameter gamma=2"):
        loss(P, Y, gamma=2)


def test_any_accuracy_takes_no_eps() -> None:
    with pytest.raises(UnknownHyperparameterError, match="any_accuracy: unknown hyperparameter eps=1e-05"):
        any_accuracy(P, Y, eps=1e-5)


@pytest.mark.parametrize("method", ["anyloss", "wbce_any"])
def test_metric_and_beta(method: str) -> None:
    loss = FUNCTIONS[method]
    hyperparameter_error(method, lambda: loss(P, Y, metric="f2"), "metric", "f2", "'balanced_accuracy'")
    hyperparameter_error(method, lambda: loss(P, Y, metric=3), "metric", 3, "'f1'")
    hyperparameter_error(method, lambda: loss(P, Y, metric="fbeta", beta=0.0), "beta", 0.0, "> 0")
    hyperparameter_error(method, lambda: loss(P, Y, metric="f1", beta=2.0), "beta", 2.0, "metric='fbeta'")
    assert loss(P, Y, metric="fbeta", beta=2.0).dim() == 0


def test_any_fbeta_beta_bound() -> None:
    hyperparameter_error("any_fbeta", lambda: any_fbeta(P, Y, beta=-1.0), "beta", -1.0, "> 0")


def test_wbce_any_r_and_L() -> None:
    hyperparameter_error("wbce_any", lambda: wbce_any(P, Y, r=1.5), "r", 1.5, "<= 1")
    hyperparameter_error("wbce_any", lambda: wbce_any(P, Y, r=-0.1), "r", -0.1, ">= 0")
    hyperparameter_error("wbce_any", lambda: wbce_any(P, Y, L=-1.0), "L", -1.0, "a finite number > 0 or None")


@pytest.mark.parametrize("method", ["anyloss", "wbce_any"])
def test_metric_callable_must_return_a_scalar_tensor(method: str) -> None:
    loss = FUNCTIONS[method]
    raises(method, lambda: loss(P, Y, metric=lambda tn, fp, fn, tp: 0.5), "metric result", "float", "one-element")
    raises(
        method,
        lambda: loss(P, Y, metric=lambda tn, fp, fn, tp: torch.stack((tp, tn))),
        "metric result",
        "(2,)",
    )


def test_soft_confusion_matrix_validates_values_when_asked() -> None:
    bad = torch.tensor([0, 1, 3, 0])
    raises("soft_confusion_matrix", lambda: soft_confusion_matrix(P, bad, check_values=True), "target values")
    assert soft_confusion_matrix(P, bad).tp.dim() == 0  # opt-in, as in the losses
    raises("soft_confusion_matrix", lambda: soft_confusion_matrix(P, Y[:3]), "shapes")
