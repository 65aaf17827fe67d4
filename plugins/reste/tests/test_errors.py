"""Bad hyperparameters and inputs raise gradhub errors naming method, parameter, value and what is allowed."""

from __future__ import annotations

import math

import pytest
import torch
from gradhub_reste.functional import reste_sign
from gradhub_reste.layers import ReSTEConv2d, ReSTELinear, set_reste_o
from gradhub_reste.schedules import ReSTEPowerSchedule, reste_o_schedule
from torch import nn

from gradhub import HyperparameterError, UnsupportedInputError
from gradhub.errors import UnknownHyperparameterError


@pytest.mark.parametrize("o", (0.999, 0.5, 0.0, -1.0, math.nan, math.inf, "3", True))
def test_o_must_be_at_least_one(o: object) -> None:
    with pytest.raises(HyperparameterError, match=r"reste_sign: invalid o=.*; o must be a finite number >= 1"):
        reste_sign(torch.zeros(3), o=o)
    with pytest.raises(HyperparameterError, match=r"reste_conv2d: invalid o=.*o must be a finite number >= 1"):
        ReSTEConv2d(3, 4, 3, o=o)
    layer = ReSTELinear(2, 2)
    with pytest.raises(HyperparameterError, match=r"reste_linear: invalid o="):
        layer.o = o
    assert layer.o == 1.0  # unchanged
    with pytest.raises(HyperparameterError, match=r"set_reste_o: invalid o="):
        set_reste_o(nn.Sequential(layer), o)
    with pytest.raises(HyperparameterError, match=r"reste_o_schedule: invalid o_start="):
        ReSTEPowerSchedule(10, o_start=o)


@pytest.mark.parametrize("t", (0.0, -1.5, math.nan, math.inf))
def test_t_must_be_positive(t: float) -> None:
    with pytest.raises(HyperparameterError, match=r"reste_sign: invalid t=.*; t must be a finite number > 0"):
        reste_sign(torch.zeros(3), t=t)
    with pytest.raises(HyperparameterError, match=r"reste_linear: invalid t_w=.*t_w must be a finite number > 0"):
        ReSTELinear(3, 4, t_w=t)
    with pytest.raises(HyperparameterError, match=r"reste_conv2d: invalid t_a=.*t_a must be a finite number > 0"):
        ReSTEConv2d(3, 4, 3, t_a=t)


@pytest.mark.parametrize(
    ("interval", "t"), [(0.0, 1.5), (-0.1, 1.5), (1.5, 1.5), (2.0, 1.5), (0.1, 0.05), (math.nan, 1.5)]
)
def test_interval_must_lie_in_zero_to_t(interval: float, t: float) -> None:
    with pytest.raises(
        HyperparameterError, match=r"reste_sign: invalid interval=.*interval must be a finite number > 0"
    ):
        reste_sign(torch.zeros(3), t=t, interval=interval)
    if 0 < interval < math.inf:
        with pytest.raises(HyperparameterError, match=rf"\(and < t={t}: the constant branch lies inside \|x\| <= t\)"):
            reste_sign(torch.zeros(3), t=t, interval=interval)
        with pytest.raises(HyperparameterError, match=rf"reste_conv2d: invalid interval=.*\(and < t_a={t}"):
            ReSTEConv2d(3, 4, 3, t_w=5.0, t_a=t, interval=interval)
        with pytest.raises(HyperparameterError, match=rf"reste_linear: invalid interval=.*\(and < t_w={t}"):
            ReSTELinear(3, 4, t_w=t, interval=interval)


def test_unknown_keywords_and_sizes() -> None:
    with pytest.raises(
        UnknownHyperparameterError,
        match=r"reste_sign: unknown hyperparameter power=3.0; reste_sign accepts: o, t, interval",
    ):
        reste_sign(torch.zeros(2), power=3.0)
    with pytest.raises(
        UnknownHyperparameterError,
        match=r"reste_conv2d: unknown hyperparameter t=1.0; .*accepts: .*, o, t_w, t_a, interval",
    ):
        ReSTEConv2d(3, 4, 3, t=1.0)
    with pytest.raises(
        HyperparameterError, match=r"reste_conv2d: invalid groups=2; .*\(and a divisor of in_channels=3\)"
    ):
        ReSTEConv2d(3, 4, 3, groups=2)
    with pytest.raises(HyperparameterError, match=r"reste_linear: invalid in_features=0"):
        ReSTELinear(0, 4)
    with pytest.raises(HyperparameterError, match=r"reste_linear: invalid binarize_activations='yes'"):
        ReSTELinear(2, 4, binarize_activations="yes")


@pytest.mark.parametrize(
    ("value", "what"),
    [
        (torch.arange(3), r"x dtype: torch.int64; x must be a floating-point tensor"),
        (torch.ones(3, dtype=torch.bool), r"x dtype: torch.bool"),
        (torch.zeros(2, dtype=torch.complex64), r"x dtype: torch.complex64"),
        ([0.1, 0.2], r"x: list; x must be a floating-point tensor"),
        (0.5, r"x: float; x must be a floating-point tensor"),
    ],
)
def test_reste_sign_rejects_non_floating_inputs(value: object, what: str) -> None:
    with pytest.raises(UnsupportedInputError, match=rf"reste_sign: unsupported {what}"):
        reste_sign(value, o=2.0)


def test_layer_inputs() -> None:
    conv, linear = ReSTEConv2d(3, 4, 3), ReSTELinear(3, 4)
    with pytest.raises(UnsupportedInputError, match=r"reste_conv2d: unsupported input dtype: torch.int64"):
        conv(torch.ones(1, 3, 5, 5, dtype=torch.int64))
    with pytest.raises(UnsupportedInputError, match=r"reste_linear: unsupported input dtype: torch.float64; .*float32"):
        linear(torch.ones(2, 3, dtype=torch.float64))
    with pytest.raises(UnsupportedInputError, match=r"reste_conv2d: unsupported input shape: \(1, 2, 5, 5\)"):
        conv(torch.ones(1, 2, 5, 5))
    with pytest.raises(UnsupportedInputError, match=r"reste_linear: unsupported input shape: \(2, 5\)"):
        linear(torch.ones(2, 5))
    with pytest.raises(UnsupportedInputError, match=r"reste_linear: unsupported devices: input on meta, weight on cpu"):
        linear(torch.ones(2, 3, device="meta"))
    with pytest.raises(UnsupportedInputError, match=r"reste_linear: unsupported input: list"):
        linear([[1.0, 2.0, 3.0]])


def test_model_without_reste_layers() -> None:
    with pytest.raises(UnsupportedInputError, match=r"set_reste_o: unsupported model: Sequential; .*ReSTEConv2d"):
        set_reste_o(nn.Sequential(nn.Linear(2, 2)), 2.0)
    with pytest.raises(UnsupportedInputError, match=r"reste_o_schedule: unsupported model: Linear"):
        ReSTEPowerSchedule(10).apply(nn.Linear(2, 2), 3)


def test_schedule_hyperparameters() -> None:
    with pytest.raises(HyperparameterError, match=r"reste_o_schedule: invalid total_epochs=0; .*integer >= 1"):
        reste_o_schedule(0, total_epochs=0)
    with pytest.raises(HyperparameterError, match=r"reste_o_schedule: invalid total_epochs=10.0"):
        ReSTEPowerSchedule(10.0)
    with pytest.raises(HyperparameterError, match=r"reste_o_schedule: invalid o_end=0.5; o_end must be a finite"):
        reste_o_schedule(1, total_epochs=10, o_end=0.5)
    with pytest.raises(HyperparameterError, match=r"invalid o_end=1.5; .*\(and >= o_start=2.0"):
        ReSTEPowerSchedule(10, o_start=2.0, o_end=1.5)
    with pytest.raises(HyperparameterError, match=r"reste_o_schedule: missing required hyperparameter 'total_epochs'"):
        reste_o_schedule(1)
