"""BiPerConv2d and BiPerLinear: layers with BiPer binary weights, and the two-stage switch.

Paper: "BiPer: Binary Neural Networks using a Periodic Function", Edwin Vargas, Claudia V.
Correa, Carlos Hinojosa, Henry Arguello, CVPR 2024, arXiv:2404.01278.
Official code: https://github.com/edmav4/BiPer (``cifar10/modules/binarized_modules.py``,
class ``BinarizeConv2d``).

Forward of one layer (official ``BinarizeConv2d.forward``):

1. activations, when ``binarize_act``: in training mode and with ``act_norm``,
   ``a0 = a / sqrt(var(a) + 1e-5)`` per sample (unbiased variance over every non-batch
   dimension, as the official ``a.var([1, 2, 3])``); ``A_b = sign(a0)`` with the triangle
   surrogate (:func:`gradhub_biper.functional.sign_act`). In eval mode ``a0 = a``: the
   forward output is the same either way (sign is scale-invariant), only the surrogate's
   support differs.
2. weights: stage 1 ``W_s = sin(omega W)`` (continuous, the warm-up stage); stage 2
   ``W_b = sign(sin(omega W))`` with gradient ``omega cos(omega W)`` (Eq. 4-5).
3. ``y = (conv(A_b, W_b) + bias) * alpha``, alpha one learnable scale per output channel,
   initialised U(0, 1) as official (the bias, off by default, is added inside the
   convolution and so is scaled by alpha too, as in the official code).

:func:`set_biper_stage` switches every BiPer layer of a model between the stages without
touching a parameter (the official stage 2 reloads the stage-1 checkpoint with a flag set).

Differences from the official code: sign(0) = +1 (see :mod:`gradhub_biper.functional`);
the sine is computed in float32 for bfloat16 weights; ``freq`` and ``stage`` are per layer
instead of global command-line flags; BiPerLinear is an addition (the paper binarises
convolutions only); latent weights keep nn.Conv2d's / nn.Linear's default initialisation
(the official ResNets re-initialise every convolution with ``kaiming_normal_``); the
official training scripts also add ``tau * mean(sin^2(omega W))`` to the loss, which is
a training-recipe term and not part of the layer.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import validate_hyperparameters, validated
from gradhub.kinds.layer import DropInConv2d, DropInLinear
from gradhub_biper import (
    BIPER_CONV2D,
    BIPER_LINEAR,
    BiPerBinarizeHyperparameters,
    BiPerRegularizationHyperparameters,
    BiPerStageHyperparameters,
)
from gradhub_biper.functional import binarize_weight, sign_act, sine_weight

__all__ = ["BiPerConv2d", "BiPerLinear", "biper_regularization", "normalize_per_sample", "set_biper_stage"]

ACTIVATION_EPS = 1e-5


def normalize_per_sample(activations: torch.Tensor, batched: bool) -> torch.Tensor:
    """a / sqrt(var(a) + 1e-5), the unbiased variance taken per sample over non-batch dims.

    The variance is computed in float32 at least so that bfloat16 inputs do not lose it.
    """
    dims = tuple(range(1, activations.ndim)) if batched else tuple(range(activations.ndim))
    wide = activations.to(torch.promote_types(activations.dtype, torch.float32))
    scale = torch.rsqrt(wide.var(dim=dims, keepdim=True) + ACTIVATION_EPS)
    return (wide * scale).to(activations.dtype)


class _BiPerLayer:
    """What BiPerConv2d and BiPerLinear share: freq and stage (validated), the binarisers."""

    method: str
    """Set by ``@validated(SPEC)``: the method's name, for error messages."""
    weight: torch.Tensor
    binarize_act: bool
    act_norm: bool
    training: bool
    _freq: float
    _stage: int

    @property
    def freq(self) -> float:
        """omega_0, the square wave's angular frequency (period 2 pi / freq)."""
        return self._freq

    @freq.setter
    def freq(self, value: float) -> None:
        self._freq = validate_hyperparameters(self.method, BiPerBinarizeHyperparameters, {"freq": value})["freq"]

    @property
    def stage(self) -> int:
        """1: sine weights sin(omega W); 2: binary weights sign(sin(omega W))."""
        return self._stage

    @stage.setter
    def stage(self, value: int) -> None:
        self._stage = validate_hyperparameters(self.method, BiPerStageHyperparameters, {"stage": value})["stage"]

    def configure(self, *, freq: float, stage: int, binarize_act: bool, act_norm: bool) -> None:
        """BiPer's options, validated by the spec's model (called by the drop-in constructor)."""
        self._freq, self._stage = freq, stage
        self.binarize_act, self.act_norm = binarize_act, act_norm

    def quantized_weight(self) -> torch.Tensor:
        """The weights the forward uses: sin(omega W) in stage 1, sign(sin(omega W)) in stage 2."""
        if self._stage == 1:
            return sine_weight(self.weight, self._freq)
        return binarize_weight(self.weight, self._freq)

    def quantized_input(self, inputs: torch.Tensor, batched: bool) -> torch.Tensor:
        if not self.binarize_act:
            return inputs
        if self.act_norm and self.training:
            inputs = normalize_per_sample(inputs, batched)
        return sign_act(inputs)


@validated(BIPER_CONV2D)
class BiPerConv2d(_BiPerLayer, DropInConv2d):
    """Drop-in ``nn.Conv2d`` with BiPer weights (stage 1 sine, stage 2 square wave) and binary inputs.

    nn.Conv2d's arguments keep its positions; BiPer's (``freq``, ``stage``, ``binarize_act``,
    ``act_norm``) are keyword-only. Extra parameter: ``alpha`` of shape (out_channels, 1, 1),
    U(0, 1). ``freq`` and ``stage`` can be changed after construction (validated);
    :func:`set_biper_stage` does it for a whole model.
    """

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if getattr(self, "alpha", None) is None:  # the first call, from nn.Conv2d's constructor
            self.alpha = nn.Parameter(
                torch.empty(self.out_channels, 1, 1, device=self.weight.device, dtype=self.weight.dtype)
            )
        nn.init.uniform_(self.alpha, 0.0, 1.0)

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 (nn.Conv2d's name)
        self.check_input(input)
        activations = self.quantized_input(input, batched=input.ndim == 4)
        return self._conv_forward(activations, self.quantized_weight(), self.bias) * self.alpha

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, freq={self._freq}, stage={self._stage}, "
            f"binarize_act={self.binarize_act}, act_norm={self.act_norm}"
        )


@validated(BIPER_LINEAR)
class BiPerLinear(_BiPerLayer, DropInLinear):
    """``nn.Linear`` with BiPer weights and binary inputs; ``alpha`` has shape (out_features,).

    nn.Linear's arguments keep their positions; BiPer's are keyword-only. The input is
    (..., in_features); the per-sample normalisation of step 1 is over every dimension but
    the first (a 1-D input is one sample).
    """

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if getattr(self, "alpha", None) is None:  # the first call, from nn.Linear's constructor
            self.alpha = nn.Parameter(
                torch.empty(self.out_features, device=self.weight.device, dtype=self.weight.dtype)
            )
        nn.init.uniform_(self.alpha, 0.0, 1.0)

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 (nn.Linear's name)
        self.check_input(input)
        activations = self.quantized_input(input, batched=input.ndim >= 2)
        return F.linear(activations, self.quantized_weight(), self.bias) * self.alpha

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, freq={self._freq}, stage={self._stage}, "
            f"binarize_act={self.binarize_act}, act_norm={self.act_norm}"
        )


def _biper_layers(method: str, model: nn.Module, what: str) -> list[_BiPerLayer]:
    if not isinstance(model, nn.Module):
        raise UnsupportedInputError(method, "model", type(model).__name__, "an nn.Module is needed")
    layers = [module for module in model.modules() if isinstance(module, _BiPerLayer)]
    if not layers:
        raise UnsupportedInputError(
            method, "model", type(model).__name__, f"it contains no BiPerConv2d or BiPerLinear layer {what}"
        )
    return layers


def biper_regularization(
    model: nn.Module, tau: float = BiPerRegularizationHyperparameters.model_fields["tau"].default
) -> torch.Tensor:
    """The periodic penalty the official training adds to the loss: ``tau * sum_l mean(sin^2(freq_l W_l))``.

    The official ``main.py``/``main_stage2.py`` add ``tau * mean(0.5 - 0.5 cos(2 freq W))`` for
    every binarised layer (the same quantity), with ``tau`` constant (``tau_min = tau_max``;
    ``run_stg1.sh`` uses 0.037). The paper does not mention it. Add it to the task loss in both
    stages to reproduce the official recipe. Computed in float32 or wider; a 0-d tensor.
    """
    tau = validate_hyperparameters("biper_regularization", BiPerRegularizationHyperparameters, {"tau": tau})["tau"]
    layers = _biper_layers("biper_regularization", model, "to regularise")
    total = torch.zeros(
        (), device=layers[0].weight.device, dtype=torch.promote_types(layers[0].weight.dtype, torch.float32)
    )
    for layer in layers:
        weight = layer.weight.to(torch.promote_types(layer.weight.dtype, torch.float32))
        total = total + torch.sin(layer.freq * weight).square().mean().to(total.dtype)
    return tau * total


def set_biper_stage(model: nn.Module, stage: int) -> int:
    """Switch every BiPer layer of ``model`` to ``stage`` (1: sine weights, 2: binary weights).

    Parameters, buffers and alpha are untouched: stage 2 starts from the stage-1 weights, as
    the official ``main_stage2.py`` does by reloading the stage-1 checkpoint. Returns the
    number of layers switched; a model without BiPer layers is an error.
    """
    stage = validate_hyperparameters("set_biper_stage", BiPerStageHyperparameters, {"stage": stage})["stage"]
    layers = _biper_layers("set_biper_stage", model, "to switch")
    for layer in layers:
        layer.stage = stage
    return len(layers)
