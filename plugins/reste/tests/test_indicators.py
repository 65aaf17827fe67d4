"""The probe reste_indicators: estimating error and gradient stability as the official utils/tools.py computes them."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from gradhub_reste import RESTE_INDICATORS
from gradhub_reste.indicators import ReSTEIndicators, estimating_error, gradient_stability, reste_indicators
from gradhub_reste.layers import ReSTEConv2d, ReSTELinear
from torch import Tensor, nn

import gradhub
from gradhub.testing import assert_model_unchanged, fingerprint


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(
        ReSTEConv2d(2, 3, 3, padding=1), nn.Flatten(), nn.Linear(48, 8), ReSTELinear(8, 5), ReSTELinear(5, 2)
    ).double()
    x = torch.randn(4, 2, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    model(x).square().mean().backward()
    return model


def official_forward(values: Tensor, o: float) -> Tensor:
    """utils/tools.py's ReSTE_Forward: x^(1/o) for x > 0, -(-x)^(1/o) for x <= 0 (boolean-mask writes)."""
    result = values.clone()
    result[values > 0] = torch.pow(values[values > 0], 1 / o)
    result[values <= 0] = -torch.pow(-values[values <= 0], 1 / o)
    return result


def official_indicators(model: nn.Module, o: float) -> tuple[float, float]:
    """get_fitting_error and get_stability_var over the model's binarised layers."""
    error, stability = 0.0, 0.0
    for module in model.modules():
        if isinstance(module, ReSTEConv2d | ReSTELinear):
            weights = module.weight.detach().reshape(-1)
            error += float(torch.norm(official_forward(weights, o) - weights.sign(), p=2))
            stability += float(torch.var(module.weight.grad.reshape(-1).abs()))
    return error, stability


@pytest.mark.parametrize("o", (1.0, 2.0, 3.0))
def test_matches_the_official_indicators(o: float) -> None:
    model = _model()
    before = fingerprint(model)
    result = reste_indicators(model, o=o)
    assert_model_unchanged(RESTE_INDICATORS, before, model)
    assert isinstance(result, ReSTEIndicators) and list(result.layer_errors) == ["0", "3", "4"]
    error, stability = official_indicators(model, o)
    assert math.isclose(float(result.estimating_error), error, rel_tol=1e-12)
    assert math.isclose(float(result.gradient_stability), stability, rel_tol=1e-12)
    assert float(estimating_error(model, o)) == float(result.estimating_error)
    assert float(gradient_stability(model)) == float(result.gradient_stability)
    assert gradhub.get(RESTE_INDICATORS.name) is reste_indicators


def test_wrong_indicators_differ() -> None:
    """The same comparison fails for an inverted exponent, a clipped F_o and the biased variance."""
    model = _model()
    result = reste_indicators(model, o=3.0)
    error, _ = official_indicators(model, 1 / 3.0)  # F with |w|^o instead of |w|^(1/o)
    assert not math.isclose(float(result.estimating_error), error, rel_tol=1e-3)
    weights = [m.weight for m in model.modules() if isinstance(m, ReSTEConv2d | ReSTELinear)]
    clipped = sum(
        float(
            torch.norm(official_forward(w.detach().reshape(-1).clamp(-0.05, 0.05), 3.0) - w.detach().reshape(-1).sign())
        )
        for w in weights
    )
    assert not math.isclose(float(result.estimating_error), clipped, rel_tol=1e-3)
    biased = sum(float(torch.var(w.grad.reshape(-1).abs(), correction=0)) for w in weights)
    assert not math.isclose(float(result.gradient_stability), biased, rel_tol=1e-3)


def test_estimating_error_falls_with_o_on_a_model() -> None:
    model = _model()
    values = [float(estimating_error(model, o)) for o in (1.0, 1.5, 2.0, 3.0, 5.0)]
    assert all(b < a for a, b in itertools.pairwise(values))


def test_bfloat16_model() -> None:
    model = _model().to(torch.bfloat16)
    for module in model.modules():
        if isinstance(module, ReSTEConv2d | ReSTELinear):
            module.weight.grad = module.weight.grad.to(torch.bfloat16)
    result = reste_indicators(model)
    assert result.estimating_error.dtype == torch.float32
    assert bool(torch.isfinite(result.estimating_error)) and bool(torch.isfinite(result.gradient_stability))


def test_errors() -> None:
    with pytest.raises(gradhub.UnsupportedInputError, match=r"reste_indicators: unsupported model: Linear; .*ReSTE"):
        reste_indicators(nn.Linear(2, 2))
    with pytest.raises(gradhub.UnsupportedInputError, match=r"reste_indicators: unsupported model: str"):
        reste_indicators("model")
    with pytest.raises(gradhub.UnsupportedInputError, match=r"unsupported gradient: layer 1 has no .grad.*backward"):
        reste_indicators(nn.Sequential(nn.Linear(2, 3), ReSTELinear(3, 2)))
    assert float(estimating_error(nn.Sequential(ReSTELinear(3, 2)))) > 0  # needs no gradient
    with pytest.raises(gradhub.UnsupportedInputError, match=r"at least 2 weights"):
        estimating_error(ReSTELinear(1, 1))
    with pytest.raises(gradhub.HyperparameterError, match=r"reste_indicators: invalid o=0.5; o must be a finite"):
        reste_indicators(_model(), o=0.5)
    with pytest.raises(gradhub.HyperparameterError, match=r"reste_indicators: invalid o=0.5"):
        estimating_error(_model(), 0.5)
    model = _model()
    with torch.no_grad():
        model[3].weight[0, 0] = math.nan
    with pytest.raises(gradhub.UnsupportedInputError, match=r"unsupported estimating error: nan at layer 3; .*finite"):
        reste_indicators(model)
    model = _model()
    model[4].weight.grad[0, 0] = math.inf
    with pytest.raises(gradhub.UnsupportedInputError, match=r"unsupported gradient stability: nan at layer 4"):
        gradient_stability(model)
