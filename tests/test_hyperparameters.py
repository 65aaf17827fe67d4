"""Hyperparameter validation: errors name method, parameter, value and what is allowed."""

from __future__ import annotations

import inspect
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
from gradhub.specs import MethodSpec, Paper


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


SCALED = MethodSpec(
    name="scaled",
    kind="layer",
    summary="a function of the test's hyperparameters",
    paper=Paper(title="T", authors=("A",), year=2024),
    target="tests.test_hyperparameters:scaled",
    params=Params,
    example="tests.test_hyperparameters:scaled",
)


def defaults(function: object) -> dict[str, object]:
    return {name: p.default for name, p in inspect.signature(function).parameters.items()}  # type: ignore[arg-type]


def test_validated_decorator() -> None:
    """``@validated(SPEC)``: keyword-only hyperparameters without defaults; the model supplies them."""

    @validated(SCALED)
    def scaled(x: float, *, lr: float, steps: int) -> float:
        return x * lr * steps

    assert scaled.spec is SCALED and scaled.method == "scaled"
    assert defaults(scaled) == {"x": inspect.Parameter.empty, "lr": 1e-3, "steps": 3}
    assert inspect.signature(scaled).parameters["lr"].kind is inspect.Parameter.KEYWORD_ONLY
    assert scaled(2.0, lr=1, steps=2) == 4.0
    assert isinstance(scaled(2.0, lr=1), float) and scaled(1.0) == 0.003
    with pytest.raises(HyperparameterError, match="scaled: invalid lr=-2"):
        scaled(1.0, lr=-2)
    with pytest.raises(UnknownHyperparameterError, match="did you mean 'steps'"):
        scaled(1.0, stepz=2)
    with pytest.raises(MissingHyperparameterError, match="scaled: missing required hyperparameter 'x'"):
        scaled()
    with pytest.raises(TypeError, match="scaled: too many positional arguments"):
        scaled(1.0, 2.0)


def test_validated_refuses_a_second_source_of_defaults() -> None:
    with pytest.raises(TypeError, match=r"writes the default lr=0.1 but its hyperparameter model says 0.001"):

        @validated(SCALED)
        def scaled(x: float, *, lr: float = 0.1) -> float:
            return x * lr

    @validated(SCALED)
    def same(x: float, *, lr: float = 1e-3) -> float:  # the model's own default is tolerated
        return x * lr

    assert same(2.0) == 2e-3


def test_validated_class_checks_its_constructor() -> None:
    @validated(SCALED)
    class Scaled:
        def __init__(self, *, lr: float, mode: str) -> None:
            self.lr, self.mode = lr, mode

    assert Scaled.spec is SCALED and Scaled.method == "scaled"
    assert defaults(Scaled) == {"lr": 1e-3, "mode": "a"}
    assert (Scaled(lr=1).lr, Scaled().mode) == (1.0, "a")
    with pytest.raises(HyperparameterError, match="scaled: invalid mode='c'"):
        Scaled(mode="c")
    assert "lr (default 0.001): a finite number >= 0" in (Scaled.__doc__ or "")


def test_validated_with_a_name_and_a_model() -> None:
    """Plugin protocol 1's spelling, still accepted: the defaults written in the function."""

    @validated("scaled", Params)
    def scaled(x: float, lr: float = 1e-3, steps: int = 3) -> float:
        return x * lr * steps

    assert scaled.spec is None and scaled.method == "scaled"
    assert scaled(2.0, lr=1, steps=2) == 4.0
    with pytest.raises(HyperparameterError, match="scaled: invalid lr=-2"):
        scaled(1.0, lr=-2)
    with pytest.raises(TypeError, match="pass the hyperparameter model"):
        validated("scaled")


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


def test_signature_from_a_model_keeps_field_order_and_keyword_only_marks() -> None:
    """The model is the signature: field order is positional order; marked and late required fields are keywords."""
    from typing import Annotated

    from gradhub.hyperparameters import Foreach, KeywordOnly, Maximize, hyperparameter_signature

    class Marked(Hyperparameters):
        lr: LearningRate
        betas: Betas = (0.9, 0.999)
        foreach: Foreach = None
        maximize: Maximize = False
        scale: Annotated[float, KeywordOnly()] = 1.0
        radius: float

    params = inspect.Parameter("params", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    signature = hyperparameter_signature(Marked, leading=[params])
    kinds = {name: parameter.kind.name for name, parameter in signature.parameters.items()}
    assert kinds == {
        "params": "POSITIONAL_OR_KEYWORD",
        "lr": "POSITIONAL_OR_KEYWORD",
        "betas": "POSITIONAL_OR_KEYWORD",
        "foreach": "KEYWORD_ONLY",
        "maximize": "KEYWORD_ONLY",
        "scale": "KEYWORD_ONLY",
        "radius": "KEYWORD_ONLY",
    }
    assert signature.parameters["radius"].default is inspect.Parameter.empty


class _Scaled(Hyperparameters):
    alpha: float = Field(1.0, gt=0)
    steps: int = Field(3, ge=1)
    flag: bool = False
    pair: tuple[float, float] = (0.5, 0.5)


def _scaled(x: object, y: object = None, *, alpha: float, steps: int, flag: bool, pair: tuple[float, float]) -> tuple:
    return x, y, alpha, steps, flag, pair


def test_repeated_calls_reuse_the_validation_and_bind_as_signature_bind_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast binding gives what Signature.bind + apply_defaults + validation give, validates a set of
    hyperparameter values once (told apart by type: 2 and 2.0 and True are different calls), and leaves
    every wrong call to the general path and its gradhub errors."""
    import gradhub.hyperparameters as hyperparameters
    from gradhub.hyperparameters import bind_and_validate

    signature = hyperparameters.public_signature(_scaled, _Scaled, "scaled")
    validations = []
    original = hyperparameters.validate_hyperparameters
    monkeypatch.setattr(
        hyperparameters,
        "validate_hyperparameters",
        lambda *a, **k: (validations.append(a[2]), original(*a, **k))[1],
    )

    def slow(*args: object, **kwargs: object) -> dict:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        checked = original("scaled", _Scaled, {n: bound.arguments[n] for n in _Scaled.model_fields})
        return {**bound.arguments, **checked}

    calls = [
        ((1,), {}),
        ((1, 2), {"alpha": 2}),
        ((1,), {"alpha": 2.0}),
        ((1,), {"steps": True}),
        ((1,), {"pair": (1, 2)}),
    ]
    for args, kwargs in calls * 2:
        bound, checked = bind_and_validate("scaled", signature, _Scaled, args, kwargs)
        assert bound.arguments == slow(*args, **kwargs) and list(bound.arguments) == list(signature.parameters)
        assert checked == {n: bound.arguments[n] for n in _Scaled.model_fields}
        assert type(bound.arguments["alpha"]) is float and type(bound.arguments["steps"]) is int
    assert len(validations) == len(calls)  # each distinct set once; the repeats are served from the cache
    assert _scaled(*bound.args, **bound.kwargs) == (1, None, 1.0, 3, False, (1.0, 2.0))
    with pytest.raises(HyperparameterError, match=r"^scaled: invalid alpha=-1"):
        bind_and_validate("scaled", signature, _Scaled, (1,), {"alpha": -1})
    with pytest.raises(HyperparameterError, match=r"^scaled: invalid alpha=-1"):  # not cached as valid
        bind_and_validate("scaled", signature, _Scaled, (1,), {"alpha": -1})
    with pytest.raises(UnknownHyperparameterError, match="beta"):
        bind_and_validate("scaled", signature, _Scaled, (1,), {"beta": 1})
    with pytest.raises(TypeError, match="scaled: "):
        bind_and_validate("scaled", signature, _Scaled, (1, 2, 3), {})
    with pytest.raises(TypeError, match="scaled: "):
        bind_and_validate("scaled", signature, _Scaled, (), {})


def test_array_and_tensor_arguments_bind_without_comparing_them() -> None:
    """Binding never compares argument values with ==: a NumPy array or a tensor (elementwise ==) binds."""
    import numpy as np
    import torch

    from gradhub.hyperparameters import bind_and_validate, public_signature

    signature = public_signature(_scaled, _Scaled, "scaled")
    for value in (np.arange(3.0), torch.arange(3.0)):
        for _ in range(2):
            bound, _ = bind_and_validate("scaled", signature, _Scaled, (value, value), {"alpha": 2.0})
            assert bound.arguments["x"] is value and bound.arguments["y"] is value
