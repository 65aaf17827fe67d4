"""Bad input raises gradhub errors naming the method, the parameter, the value and what is allowed."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from gradhub_refined_schedules import GradNormRecorder, RefinedLR, grad_norm, median_filter, refine_schedule, refined_lr
from gradhub_refined_schedules.linear_decay import linear_decay
from torch import nn

from gradhub.errors import HyperparameterError, UnknownHyperparameterError, UnsupportedInputError


def _optimizer() -> torch.optim.Optimizer:
    return torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)


def _explains(error: pytest.ExceptionInfo, method: str, parameter: str, *fragments: str) -> None:
    message = str(error.value)
    assert message.startswith(f"{method}:"), message
    assert parameter in message, message
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize(
    ("kwargs", "parameter", "fragment"),
    [
        ({"total_steps": 10, "warmup_steps": 10}, "warmup_steps", "< total_steps=10"),
        ({"total_steps": 10, "warmup_steps": 12}, "warmup_steps", "< total_steps=10"),
        ({"total_steps": 0}, "total_steps", ">= 1"),
        ({"total_steps": 10.0}, "total_steps", "an integer"),
        ({"total_steps": 10, "final_frac": 1.5}, "final_frac", "<= 1"),
        ({"total_steps": 10, "final_frac": -0.1}, "final_frac", ">= 0"),
        ({"total_steps": 10, "final_frac": math.nan}, "final_frac", "finite"),
        ({"total_steps": 10, "warmup_steps": -1}, "warmup_steps", ">= 0"),
    ],
)
def test_linear_decay_errors(kwargs: dict[str, Any], parameter: str, fragment: str) -> None:
    with pytest.raises(HyperparameterError) as error:
        linear_decay(_optimizer(), **kwargs)
    _explains(error, "linear_decay", parameter, repr(kwargs[parameter]), fragment)


def test_linear_decay_rejects_non_optimizer_and_unknown_keyword() -> None:
    with pytest.raises(UnsupportedInputError, match="linear_decay: unsupported optimizer"):
        linear_decay("sgd", total_steps=10)
    with pytest.raises(UnknownHyperparameterError, match="linear_decay: unknown hyperparameter warmup="):
        linear_decay(_optimizer(), total_steps=10, warmup=3)


@pytest.mark.parametrize(
    ("norms", "fragment"),
    [
        ([1.0, 0.0, 2.0], "grad_norms[1]"),
        ([1.0, -2.0], "grad_norms[1]"),
        ([1.0, math.nan], "grad_norms[1]"),
        ([math.inf, 1.0], "grad_norms[0]"),
        ([1.0], "at least 2"),
        (np.ones((3, 2)), "1-D"),
    ],
)
def test_bad_grad_norms(norms: Any, fragment: str) -> None:
    with pytest.raises(HyperparameterError) as error:
        refine_schedule(norms)
    _explains(error, "refined_schedule", "grad_norms", fragment)
    with pytest.raises(HyperparameterError) as error:
        refined_lr(_optimizer(), grad_norms=norms)
    _explains(error, "refined_schedule", "grad_norms")


@pytest.mark.parametrize(
    ("parameter", "value", "fragment"),
    [
        ("tau", -0.1, ">= 0"),
        ("tau", 1.5, "<= 1"),
        ("tau", math.nan, "finite"),
        ("power", 0.0, "> 0"),
        ("power", -2.0, "> 0"),
        ("power", "2", "finite number"),
    ],
)
def test_bad_refinement_options(parameter: str, value: Any, fragment: str) -> None:
    for call in (
        lambda: refine_schedule([1.0, 2.0, 3.0], **{parameter: value}),
        lambda: refined_lr(_optimizer(), [1.0, 2.0, 3.0], **{parameter: value}),
    ):
        with pytest.raises(HyperparameterError) as error:
            call()
        _explains(error, "refined_schedule", parameter, repr(value), fragment)


def test_refinement_other_errors() -> None:
    with pytest.raises(HyperparameterError, match="refined_schedule: invalid weights"):
        refine_schedule([1.0, 2.0, 3.0], weights=[1.0, 2.0])
    with pytest.raises(HyperparameterError, match="median_filter: invalid width=4; width must be an odd integer"):
        median_filter([1.0, 2.0, 3.0], 4)
    with pytest.raises(HyperparameterError, match="refined_schedule: invalid total_steps=0"):
        refined_lr(_optimizer(), [1.0, 2.0], total_steps=0)
    with pytest.raises(HyperparameterError, match=r"RefinedLR: invalid multipliers.*multipliers\[1\] = -1.0"):
        RefinedLR(_optimizer(), [1.0, -1.0])
    with pytest.raises(UnsupportedInputError, match="RefinedLR: unsupported optimizer"):
        RefinedLR(None, [1.0])


def test_recorder_errors() -> None:
    model = nn.Linear(2, 1)
    with pytest.raises(UnsupportedInputError, match=r"grad_norm: unsupported gradients: no parameter has a \.grad"):
        grad_norm(model)
    with pytest.raises(HyperparameterError) as error:
        grad_norm(model, kind="l3")
    _explains(error, "grad_norm", "kind", "'l3'", "'l2'")
    with pytest.raises(HyperparameterError) as error:
        GradNormRecorder(model.parameters(), sync_every=0)
    _explains(error, "grad_norm_recorder", "sync_every", "0", ">= 1")
    with pytest.raises(HyperparameterError) as error:
        GradNormRecorder(model, every=3)
    _explains(error, "grad_norm_recorder", "every")
    with pytest.raises(UnsupportedInputError, match="grad_norm_recorder: unsupported optimizer_or_params"):
        GradNormRecorder([])
    recorder = GradNormRecorder(model)
    with pytest.raises(UnsupportedInputError, match="grad_norm_recorder: unsupported gradients"):
        recorder.record()
