"""Bad hyperparameters, layers and inputs raise gradhub errors naming method, parameter, value and what is allowed."""

from __future__ import annotations

import math

import pytest
import torch
from gradhub_tract import tract_weight_grad
from gradhub_tract.layers import TrAct, TrActConv2d, TrActLinear, tract
from torch import nn

from gradhub import HyperparameterError, UnsupportedInputError
from gradhub.errors import UnknownHyperparameterError


@pytest.mark.parametrize("l", [0.0, -0.1, math.inf, math.nan, "0.1", True])
def test_lambda_must_be_a_positive_finite_number(l: object) -> None:  # noqa: E741
    with pytest.raises(HyperparameterError, match=r"tract_linear: invalid l=.*l must be"):
        TrActLinear(3, 2, l=l)
    with pytest.raises(HyperparameterError, match=r"tract_conv2d: invalid l="):
        TrActConv2d(3, 2, 3, l=l)
    with pytest.raises(HyperparameterError, match=r"tract: invalid l="):
        tract(nn.Linear(3, 2), l=l)
    with pytest.raises(HyperparameterError, match=r"tract_weight_grad: invalid l="):
        tract_weight_grad(torch.ones(2, 2), torch.ones(2, 2), l=l)
    layer = TrActLinear(3, 2)
    with pytest.raises(HyperparameterError, match=r"tract_linear: invalid l="):
        layer.l = l
    assert layer.l == 0.1


def test_lambda_bound_is_named() -> None:
    with pytest.raises(HyperparameterError, match=r"l must be a finite number > 0"):
        TrActLinear(3, 2, l=0.0)


def test_inv_type_is_one_of_two_solvers() -> None:
    with pytest.raises(HyperparameterError, match=r"tract: invalid inv_type='cholesky_inverse'.*'inverse'.*'cholesky'"):
        TrAct(nn.Linear(3, 2), inv_type="cholesky_inverse")
    layer = TrActConv2d(2, 2, 1)
    with pytest.raises(HyperparameterError, match=r"tract_conv2d: invalid inv_type='lu'"):
        layer.inv_type = "lu"
    assert layer.inv_type == "inverse"


def test_unknown_keywords_suggest_the_name() -> None:
    with pytest.raises(UnknownHyperparameterError, match=r"tract_linear: unknown hyperparameter lambda_=0.1"):
        TrActLinear(3, 2, lambda_=0.1)
    with pytest.raises(UnknownHyperparameterError, match=r"tract: unknown hyperparameter lam=0.1"):
        tract(nn.Linear(3, 2), lam=0.1)


def test_grouped_convolutions_are_refused() -> None:
    with pytest.raises(HyperparameterError, match=r"tract_conv2d: invalid groups=2; groups must be 1 \(TrAct"):
        TrActConv2d(4, 4, 3, groups=2)
    with pytest.raises(UnsupportedInputError, match=r"tract: unsupported layer groups: 4; groups must be 1"):
        tract(nn.Conv2d(4, 8, 3, groups=4))


def test_same_padding_needs_stride_one() -> None:
    with pytest.raises(HyperparameterError, match=r"tract_conv2d: invalid padding='same'"):
        TrActConv2d(3, 4, 3, stride=2, padding="same")


@pytest.mark.parametrize(
    ("layer", "shown"),
    [
        (nn.Conv1d(3, 4, 3), "Conv1d"),
        (nn.Conv3d(3, 4, 3), "Conv3d"),
        (nn.Sequential(nn.Linear(3, 2)), "Sequential"),
        (nn.Embedding(5, 3), "Embedding"),
        ("conv1", "str"),
    ],
)
def test_only_linear_and_conv2d_layers_are_wrapped(layer: object, shown: str) -> None:
    with pytest.raises(UnsupportedInputError, match=rf"tract: unsupported layer: {shown}; an nn.Linear or nn.Conv2d"):
        tract(layer)


class _ScaledLinear(nn.Linear):
    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002
        return 2 * super().forward(input)


class _WeightStandardisedConv(nn.Conv2d):
    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:  # noqa: A002
        return super()._conv_forward(input, weight - weight.mean(), bias)


@pytest.mark.parametrize(
    ("layer", "overridden"),
    [(_ScaledLinear(3, 2), "forward"), (_WeightStandardisedConv(3, 2, 3), "_conv_forward")],
)
def test_layers_with_their_own_forward_are_refused(layer: nn.Module, overridden: str) -> None:
    with pytest.raises(UnsupportedInputError, match=rf"tract: unsupported layer: \w+ \(overrides {overridden}\)"):
        tract(layer)


def test_lazy_and_parametrised_layers_are_refused() -> None:
    with pytest.raises(UnsupportedInputError, match=r"tract: unsupported layer: LazyLinear \(uninitialised\)"):
        tract(nn.LazyLinear(4))
    parametrised = nn.utils.parametrizations.weight_norm(nn.Linear(3, 2))
    with pytest.raises(UnsupportedInputError, match=r"tract: unsupported layer weight: Tensor; .*nn.Parameter"):
        tract(parametrised)


def test_bad_inputs_are_named() -> None:
    with pytest.raises(UnsupportedInputError, match=r"tract_linear: unsupported input shape: \(4, 5\); \(\.\.\., 3\)"):
        TrActLinear(3, 2)(torch.zeros(4, 5))
    with pytest.raises(UnsupportedInputError, match=r"tract_linear: unsupported input dtype: torch.int64"):
        TrActLinear(3, 2)(torch.zeros(4, 3, dtype=torch.long))
    with pytest.raises(UnsupportedInputError, match=r"tract_conv2d: unsupported input shape: \(2, 4, 5, 5\)"):
        TrActConv2d(3, 2, 3)(torch.zeros(2, 4, 5, 5))
    with pytest.raises(UnsupportedInputError, match=r"tract_conv2d: unsupported input shape: \(3, 5\); .*3-D or 4-D"):
        TrActConv2d(3, 2, 3)(torch.zeros(3, 5))
    with pytest.raises(UnsupportedInputError, match=r"tract_weight_grad: unsupported shapes: a \(4, 3\), grad_output"):
        tract_weight_grad(torch.zeros(4, 3), torch.zeros(5, 2))
    with pytest.raises(UnsupportedInputError, match=r"tract_weight_grad: unsupported a shape: \(4,\)"):
        tract_weight_grad(torch.zeros(4), torch.zeros(4, 2))
