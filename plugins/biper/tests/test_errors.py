"""Bad hyperparameters and inputs raise gradhub errors naming method, parameter, value, what is allowed."""

from __future__ import annotations

import math

import pytest
import torch
from gradhub_biper import set_biper_stage
from gradhub_biper.functional import biper_binarize, sign_act
from gradhub_biper.layers import BiPerConv2d, BiPerLinear
from torch import nn

from gradhub import HyperparameterError, UnsupportedInputError
from gradhub.errors import UnknownHyperparameterError


@pytest.mark.parametrize("freq", (0.0, -20.0, math.inf, math.nan, "20"))
def test_freq_must_be_positive_finite(freq: object) -> None:
    with pytest.raises(HyperparameterError, match=r"biper_sign: invalid freq=.*freq must be a finite number > 0"):
        biper_binarize(torch.zeros(3), freq=freq)
    with pytest.raises(HyperparameterError, match=r"biper_conv2d: invalid freq=.*finite number > 0"):
        BiPerConv2d(3, 4, 3, freq=freq)
    with pytest.raises(HyperparameterError, match=r"biper_linear: invalid freq="):
        BiPerLinear(3, 4, freq=freq)


@pytest.mark.parametrize("stage", (0, 3, 1.0, True, "2"))
def test_stage_must_be_one_or_two(stage: object) -> None:
    with pytest.raises(
        HyperparameterError, match=r"biper_conv2d: invalid stage=.*stage must be an integer >= 1 and <= 2"
    ):
        BiPerConv2d(3, 4, 3, stage=stage)
    with pytest.raises(HyperparameterError, match=r"set_biper_stage: invalid stage="):
        set_biper_stage(BiPerLinear(2, 2), stage)
    layer = BiPerLinear(2, 2)
    with pytest.raises(HyperparameterError, match=r"biper_linear: invalid stage="):
        layer.stage = stage
    assert layer.stage == 2


def test_freq_setter_validates() -> None:
    layer = BiPerConv2d(3, 4, 3)
    with pytest.raises(HyperparameterError, match=r"biper_conv2d: invalid freq=-1.0"):
        layer.freq = -1.0
    layer.freq = 30.0
    assert layer.freq == 30.0


def test_unknown_keyword_and_bad_sizes() -> None:
    with pytest.raises(
        UnknownHyperparameterError, match=r"biper_conv2d: unknown hyperparameter frequency=.*did you mean 'freq'"
    ):
        BiPerConv2d(3, 4, 3, frequency=20.0)
    with pytest.raises(HyperparameterError, match=r"biper_conv2d: invalid in_channels=0"):
        BiPerConv2d(0, 4, 3)
    with pytest.raises(
        HyperparameterError,
        match=r"biper_conv2d: invalid groups=2; groups must be an integer >= 1 \(and a divisor of in_channels=3\)",
    ):
        BiPerConv2d(3, 4, 3, groups=2)
    with pytest.raises(HyperparameterError, match=r"biper_conv2d: invalid padding='same'"):
        BiPerConv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(HyperparameterError, match=r"biper_linear: invalid out_features=-1"):
        BiPerLinear(3, -1)
    with pytest.raises(UnknownHyperparameterError, match=r"biper_sign_act: unknown hyperparameter freq=20"):
        sign_act(torch.zeros(2), freq=20)


def test_non_floating_inputs_rejected() -> None:
    with pytest.raises(
        UnsupportedInputError, match=r"biper_sign: unsupported w dtype: torch.int64; w must be a floating-point tensor"
    ):
        biper_binarize(torch.arange(3), freq=20.0)
    with pytest.raises(UnsupportedInputError, match=r"biper_sign: unsupported w: list; w must be a floating-point"):
        biper_binarize([0.1, 0.2], freq=20.0)
    with pytest.raises(UnsupportedInputError, match=r"biper_sign_act: unsupported x dtype: torch.complex64"):
        sign_act(torch.zeros(2, dtype=torch.complex64))
    with pytest.raises(
        UnsupportedInputError, match=r"biper_conv2d: unsupported input dtype: torch.int64; input must be a floating"
    ):
        BiPerConv2d(3, 4, 3)(torch.zeros(1, 3, 5, 5, dtype=torch.long))


def test_layer_input_shape_dtype_device() -> None:
    conv = BiPerConv2d(3, 4, 3)
    with pytest.raises(
        UnsupportedInputError, match=r"biper_conv2d: unsupported input shape: \(1, 2, 5, 5\); \(N, 3, H, W\)"
    ):
        conv(torch.zeros(1, 2, 5, 5))
    with pytest.raises(UnsupportedInputError, match=r"biper_conv2d: unsupported input shape: \(5, 5\)"):
        conv(torch.zeros(5, 5))
    with pytest.raises(
        UnsupportedInputError,
        match=r"biper_conv2d: unsupported input dtype: torch.float64; input must be float32 like the layer's weights",
    ):
        conv(torch.zeros(1, 3, 5, 5, dtype=torch.float64))
    linear = BiPerLinear(3, 4)
    with pytest.raises(
        UnsupportedInputError, match=r"biper_linear: unsupported input shape: \(2, 5\); \(\.\.\., 3\) is needed"
    ):
        linear(torch.zeros(2, 5))
    with pytest.raises(UnsupportedInputError, match=r"biper_linear: unsupported devices: input on meta, weight on cpu"):
        linear(torch.zeros(2, 3, device="meta"))


def test_set_stage_needs_biper_layers() -> None:
    with pytest.raises(
        UnsupportedInputError, match=r"set_biper_stage: unsupported model: Sequential; it contains no BiPerConv2d"
    ):
        set_biper_stage(nn.Sequential(nn.Linear(2, 2)), 1)
    with pytest.raises(UnsupportedInputError, match=r"set_biper_stage: unsupported model: str"):
        set_biper_stage("model", 1)
