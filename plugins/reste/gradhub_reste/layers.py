"""ReSTEConv2d and ReSTELinear: binary weights and activations trained through ReSTE, and ``set_reste_o``.

Paper: "Estimator Meets Equilibrium Perspective: A Rectified Straight Through Estimator for
Binary Neural Networks Training", Xiao-Ming Wu, Dian Zheng, Zuhao Liu, Wei-Shi Zheng,
ICCV 2023, arXiv:2308.06689. Official code: https://github.com/DravenALG/ReSTE
(``model/binary_module/binarized_modules.py``, class ``BinarizeConv2d``).

Forward of one layer (official ``BinarizeConv2d.forward`` with ``--estimator ReSTE``):

1. weights ``W_b = reste_sign(W; o, t_w) * mean(|W|)``: one scalar scale per layer, the mean
   over the whole weight tensor, and the gradient flows through it too (it is not detached:
   dL/dW = m phi(W) G + sign(W) sum(G * sign(W)) / numel(W), with G = dL/dW_b, m = mean|W|);
2. activations ``A_b = reste_sign(a; o, t_a)`` (``binarize_activations=True``, 1W1A), or ``a``
   itself (``False``, the official ``--a32`` 1W32A networks);
3. ``y = conv(A_b, W_b) + bias`` (``F.linear`` for ReSTELinear); bias off by default.

Weights and activations share one o, as the official schedule sets both to the same value
(:func:`set_reste_o`, :class:`gradhub_reste.schedules.ReSTEPowerSchedule`). o is a Python
number, not a tensor: it is no part of ``state_dict`` (the schedule sets it again each epoch).

Differences from the official code: o is one attribute (official keeps ``o`` and ``o_a``, always
set equal); the interval is a hyperparameter (official hard-codes 0.1); ReSTELinear is an
addition (the paper binarises convolutions only); latent weights keep nn.Conv2d's / nn.Linear's
default initialisation; an input whose dtype or device differs from the weights' is an error.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn
from torch.nn import functional as F

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import validate_hyperparameters, validated
from gradhub.kinds.layer import DropInConv2d, DropInLinear
from gradhub_reste import RESTE_CONV2D, RESTE_LINEAR, PowerHyperparameters
from gradhub_reste.functional import binarize


class ReSTELayer:
    """What ReSTEConv2d and ReSTELinear share: o (validated when set), the binarisers, the input checks."""

    method: str
    """Set by ``@validated(SPEC)``: the method's name, for error messages."""
    weight: Tensor
    t_w: float
    t_a: float
    interval: float
    binarize_activations: bool
    _o: float

    @property
    def o(self) -> float:
        """The power of F_o(x) = sign(x)|x|^(1/o) used by the backward of weights and activations."""
        return self._o

    @o.setter
    def o(self, value: float) -> None:
        self._o = validate_hyperparameters(self.method, PowerHyperparameters, {"o": value})["o"]

    def configure(self, *, o: float, t_w: float, t_a: float, interval: float, binarize_activations: bool) -> None:
        """ReSTE's options, validated by the spec's model (called by the drop-in constructor)."""
        self._o, self.t_w, self.t_a, self.interval = o, t_w, t_a, interval
        self.binarize_activations = binarize_activations

    def binarize(self, values: Tensor, t: float) -> Tensor:
        """sign(values) with the ReSTE backward at this layer's o and interval and threshold ``t``."""
        return binarize(self.method, values, self._o, t, self.interval)

    def binarized_weight(self) -> Tensor:
        """W_b = sign(W) * mean(|W|): ReSTE backward through sign, autograd's through the scale."""
        return self.binarize(self.weight, self.t_w) * self.weight.abs().mean()

    def binarized_input(self, inputs: Tensor) -> Tensor:
        return self.binarize(inputs, self.t_a) if self.binarize_activations else inputs

    def _reste_repr(self) -> str:
        return (
            f"o={self._o}, t_w={self.t_w}, t_a={self.t_a}, interval={self.interval}, "
            f"binarize_activations={self.binarize_activations}"
        )


@validated(RESTE_CONV2D)
class ReSTEConv2d(ReSTELayer, DropInConv2d):
    """Drop-in ``nn.Conv2d`` whose weights and inputs are binarised with ReSTE (1W1A; 1W32A without activations).

    nn.Conv2d's arguments keep their positions (bias defaults to False); ReSTE's (``o``, ``t_w``,
    ``t_a``, ``interval``, ``binarize_activations``) are keyword-only. ``o`` can be changed at any
    time (validated); the schedule does it for a whole model.
    """

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002 (nn.Conv2d's name)
        self.check_input(input)
        return self._conv_forward(self.binarized_input(input), self.binarized_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self._reste_repr()}"


@validated(RESTE_LINEAR)
class ReSTELinear(ReSTELayer, DropInLinear):
    """``nn.Linear`` whose weights and inputs are binarised with ReSTE; ReSTE's arguments keyword-only."""

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002 (nn.Linear's name)
        self.check_input(input)
        return F.linear(self.binarized_input(input), self.binarized_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self._reste_repr()}"


def reste_layers(method: str, model: Any) -> list[tuple[str, ReSTELayer]]:
    """Every ReSTE layer of ``model`` with its name, in ``named_modules`` order; an error if there is none."""
    if not isinstance(model, nn.Module):
        raise UnsupportedInputError(method, "model", type(model).__name__, "an nn.Module is needed")
    layers = [(name, module) for name, module in model.named_modules() if isinstance(module, ReSTELayer)]
    if not layers:
        raise UnsupportedInputError(
            method, "model", type(model).__name__, "the model must contain a ReSTEConv2d or ReSTELinear layer"
        )
    return layers


def set_reste_o(model: nn.Module, o: float) -> int:
    """Set ``o`` on every ReSTE layer of ``model`` (weights and activations alike); returns how many.

    Validated once (o >= 1); a model without ReSTE layers is an error. Parameters are untouched.
    """
    o = validate_hyperparameters("set_reste_o", PowerHyperparameters, {"o": o})["o"]
    layers = reste_layers("set_reste_o", model)
    for _, layer in layers:
        layer._o = o
    return len(layers)


__all__ = ["ReSTEConv2d", "ReSTELayer", "ReSTELinear", "reste_layers", "set_reste_o"]
