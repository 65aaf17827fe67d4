"""ReSTE's two indicators of the estimator's equilibrium: estimating error and gradient stability.

Paper: "Estimator Meets Equilibrium Perspective: A Rectified Straight Through Estimator for
Binary Neural Networks Training", Wu et al., ICCV 2023, arXiv:2308.06689 (Sec. 4.1-4.2).
Official code: https://github.com/DravenALG/ReSTE, ``utils/tools.py`` (``get_fitting_error``,
``get_stability_var``, ``ReSTE_Forward``), called from ``main.py`` after each training step
with ``o = --o_end`` (3).

Over the binarised layers l of a model (official: the residual blocks' convolutions, whose
parameter names contain "layer" and "conv"; here: every ReSTEConv2d and ReSTELinear):

* estimating error  E = sum_l || F_o(w_l) - sign(w_l) ||_2, with F_o(x) = sign(x)|x|^(1/o) unclipped,
  w_l the flattened latent weights: how far the surrogate the backward differentiates is from
  the sign the forward uses (small for large o);
* gradient stability  S = sum_l Var(|dL/dw_l|), the unbiased variance (``torch.var``) over the
  layer's elements of the gradient magnitudes currently in ``.grad`` (large for large o: the
  backward is steeper near 0 and flatter elsewhere).

The paper's equilibrium: increasing o lowers E and raises S; ReSTE's schedule moves o so that
neither dominates. Both are computed in float32 or wider, without touching the model (no
gradient is taken: S reads the ``.grad`` a training step left, so call it after ``backward()``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import validate_hyperparameters, validated
from gradhub_reste import RESTE_INDICATORS, ReSTEIndicatorsHyperparameters
from gradhub_reste.functional import power_surrogate, surrogate_dtype
from gradhub_reste.layers import ReSTELayer, reste_layers


@dataclass(frozen=True)
class ReSTEIndicators:
    """The two indicators (0-d tensors, float32 or wider, on the first layer's device), and per layer."""

    estimating_error: Tensor
    """E = sum_l ||F_o(w_l) - sign(w_l)||_2."""
    gradient_stability: Tensor
    """S = sum_l Var(|dL/dw_l|) (unbiased)."""
    layer_errors: dict[str, Tensor]
    """||F_o(w_l) - sign(w_l)||_2 by layer name (``named_modules``)."""
    layer_stabilities: dict[str, Tensor]
    """Var(|dL/dw_l|) by layer name."""


def _layers(model: nn.Module) -> list[tuple[str, ReSTELayer]]:
    layers = reste_layers(RESTE_INDICATORS.name, model)
    for name, layer in layers:
        if layer.weight.numel() < 2:
            raise UnsupportedInputError(
                RESTE_INDICATORS.name,
                "layer",
                f"{name or '<root>'} with {layer.weight.numel()} weight",
                "every ReSTE layer needs at least 2 weights (a variance over one element is undefined)",
            )
    return layers


def _layer_error(weight: Tensor, o: float) -> Tensor:
    flat = weight.detach().reshape(-1)
    return torch.linalg.vector_norm(power_surrogate(flat, o) - torch.sign(flat.to(surrogate_dtype(flat.dtype))))


def _layer_stability(name: str, weight: Tensor) -> Tensor:
    if weight.grad is None:
        raise UnsupportedInputError(
            RESTE_INDICATORS.name,
            "gradient",
            f"layer {name or '<root>'} has no .grad",
            "gradient stability reads the gradients of a training step: call it after loss.backward()",
        )
    grad = weight.grad.detach().reshape(-1)
    return torch.var(grad.to(surrogate_dtype(grad.dtype)).abs())


def _total(kind: str, values: dict[str, Tensor]) -> Tensor:
    """The sum over layers; one host read to refuse a non-finite indicator, naming the layer."""
    device = next(iter(values.values())).device
    stacked = torch.stack([value.to(device) for value in values.values()])
    finite = torch.isfinite(stacked)
    if not bool(finite.all()):
        index = int((~finite).nonzero()[0, 0])
        name = list(values)[index]
        raise UnsupportedInputError(
            RESTE_INDICATORS.name,
            kind,
            f"{stacked[index].item()!r} at layer {name or '<root>'}",
            f"the {kind} must be finite: the layer's weights and gradients must be finite",
        )
    return stacked.sum()


def _layer_errors(model: nn.Module, o: float) -> dict[str, Tensor]:
    with torch.no_grad():
        return {name: _layer_error(layer.weight, o) for name, layer in _layers(model)}


def _layer_stabilities(model: nn.Module) -> dict[str, Tensor]:
    with torch.no_grad():
        return {name: _layer_stability(name, layer.weight) for name, layer in _layers(model)}


def estimating_error(model: nn.Module, o: float = 3.0) -> Tensor:
    """E = sum over the ReSTE layers of ||F_o(w) - sign(w)||_2 (official ``get_fitting_error``), a 0-d tensor."""
    o = validate_hyperparameters(RESTE_INDICATORS.name, ReSTEIndicatorsHyperparameters, {"o": o})["o"]
    return _total("estimating error", _layer_errors(model, o))


def gradient_stability(model: nn.Module) -> Tensor:
    """S = sum over the ReSTE layers of Var(|dL/dw|) (official ``get_stability_var``); needs ``.grad``."""
    return _total("gradient stability", _layer_stabilities(model))


@validated(RESTE_INDICATORS)
def reste_indicators(model: nn.Module, *, generator: torch.Generator | None = None, o: float) -> ReSTEIndicators:
    """Both indicators of ``model``'s ReSTE layers, after a ``backward()``; reads, never writes.

    ``o`` is the power of F_o in the estimating error (official: o_end = 3, whatever o training is
    at). ``generator`` is unused (the probe is deterministic). A model without ReSTE layers, a layer
    without ``.grad`` or with non-finite weights or gradients raises ``gradhub.UnsupportedInputError``.
    """
    errors, stabilities = _layer_errors(model, o), _layer_stabilities(model)
    return ReSTEIndicators(
        estimating_error=_total("estimating error", errors),
        gradient_stability=_total("gradient stability", stabilities),
        layer_errors=errors,
        layer_stabilities=stabilities,
    )


__all__ = ["ReSTEIndicators", "estimating_error", "gradient_stability", reste_indicators.__name__]
