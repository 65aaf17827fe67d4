"""Hyperparameter validation: errors name method, parameter, value and what is allowed."""

from __future__ import annotations

import math
from typing import Literal

import pytest
from pydantic import Field

from gradhub.errors import HyperparameterError, MissingHyperparameterError, UnknownHyperparameterError
from gradhub.hyperparameters import (
    Betas,
    Flag,
    Hyperparameters,
    LearningRate,
    describe_field,
    validate_hyperparameters,
    validated,
)


class Params(Hyperparameters):
    lr: LearningRate = 1e-3
    betas: Betas = (0.9, 0.999)
    flag: Flag = False
    mode: Literal["a", "b"] = "a"
    steps: int = Field(3, ge=1)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"lr": -1.0}, "method: invalid lr=-1.0; lr must be a finite number >= 0"),
        ({"lr": math.inf}, "method: invalid lr=inf; lr must be a finite number >= 0"),
        ({"lr": "0.1"}, "method: invalid lr='0.1'; lr must be a finite number >= 0"),
        ({"flag": 1}, "method: invalid flag=1; flag must be True or False"),
        ({"mode": "c"}, "method: invalid mode='c'; mode must be one of 'a', 'b'"),
        ({"steps": 0}, "method: invalid steps=0; steps must be an integer >= 1"),
        (
            {"betas": (0.9, 1.0)},
            "method: invalid betas=(0.9, 1.0); betas must be a tuple of 2 (finite numbers, each >= 0 and < 1) "
            "(betas[1]=1.0: input should be less than 1)",
        ),
    ],
)
def test_messages(values: dict, expected: str) -> None:
    with pytest.raises(HyperparameterError) as raised:
        validate_hyperparameters("method", Params, values)
    assert str(raised.value) == expected
    assert isinstance(raised.value, ValueError)


def test_unknown_keyword() -> None:
    with pytest.raises(UnknownHyperparameterError) as raised:
        validate_hyperparameters("method", Params, {"betaz": (0.9, 0.99)})
    assert isinstance(raised.value, TypeError) and isinstance(raised.value, HyperparameterError)
    assert str(raised.value) == (
        "method: unknown hyperparameter betaz=(0.9, 0.99) (did you mean 'betas'?); "
        "method accepts: lr, betas, flag, mode, steps"
    )


def test_values_are_coerced_and_defaults_filled() -> None:
    assert validate_hyperparameters("method", Params, {"lr": 1, "betas": [0.5, 0.6]}) == {
        "lr": 1.0,
        "betas": (0.5, 0.6),
        "flag": False,
        "mode": "a",
        "steps": 3,
    }


def test_describe_field() -> None:
    assert describe_field(Params, "lr") == "a finite number >= 0"
    assert describe_field(Params, "mode") == "one of 'a', 'b'"


def test_validated_decorator() -> None:
    @validated("scaled", Params)
    def scaled(x: float, lr: float = 1e-3, steps: int = 3) -> float:
        return x * lr * steps

    assert scaled(2.0, lr=1, steps=2) == 4.0
    assert isinstance(scaled(2.0, lr=1), float)
    with pytest.raises(HyperparameterError, match="scaled: invalid lr=-2"):
        scaled(1.0, lr=-2)
    with pytest.raises(UnknownHyperparameterError, match="did you mean 'steps'"):
        scaled(1.0, stepz=2)
    with pytest.raises(MissingHyperparameterError, match="scaled: missing required hyperparameter 'x'"):
        scaled()
    with pytest.raises(TypeError, match="scaled: too many positional arguments"):
        scaled(1.0, 2.0, 3, 4)


def test_long_values_are_shown_short_and_sequences_described() -> None:
    from typing import Annotated

    import torch
    from pydantic import Field

    from gradhub.errors import show_value
    from gradhub.hyperparameters import Hyperparameters, describe_field, validate_hyperparameters

    class Recorded(Hyperparameters):
        norms: tuple[Annotated[float, Field(gt=0)], ...] = Field((1.0, 1.0), min_length=2)

    assert describe_field(Recorded, "norms") == "a sequence of finite numbers > 0 (at least 2 of them)"
    with pytest.raises(HyperparameterError) as raised:
        validate_hyperparameters("m", Recorded, {"norms": tuple(range(-1, 1000))})
    message = str(raised.value)
    assert message.startswith("m: invalid norms=(-1, 0, 1, 2, 3, 4, ...); norms must be a sequence of")
    assert "(norms[0]=-1: input should be greater than 0)" in message and len(message) < 200
    assert show_value(torch.zeros(3, 4)) == "Tensor(shape=(3, 4), dtype=torch.float32)"
    assert show_value(0.5) == "0.5" and show_value("adam") == "'adam'"
