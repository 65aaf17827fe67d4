"""The three claim checks pass, and their criteria fail deliberately wrong estimators."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from gradhub_reste import claims
from gradhub_reste.functional import rectified_derivative
from gradhub_reste.layers import ReSTELinear
from torch import Tensor


class _SignWith(torch.autograd.Function):
    """sign(x) forward, the gradient multiplied by ``phi(x)``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, phi: Callable[[Tensor], Tensor]) -> Tensor:
        ctx.save_for_backward(x)
        ctx.phi = phi
        return torch.sign(x)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        return grad_output * ctx.phi(x).to(grad_output.dtype), None


def inverted_phi(x: Tensor, o: float, t: float = 1.5, interval: float = 0.1) -> Tensor:
    """Wrong: the derivative of sign(x)|x|^o (o inverted), chord interval^o / interval inside."""
    m = x.abs()
    return torch.where(
        m <= interval, interval**o / interval, torch.where(m <= t, o * m.clamp_min(interval) ** (o - 1), 0.0)
    )


def zero_inside_phi(x: Tensor, o: float, t: float = 1.5, interval: float = 0.1) -> Tensor:
    """Wrong: no gradient on |x| <= interval (the interval branch dropped)."""
    return torch.where(x.abs() <= interval, 0.0, rectified_derivative(x, o, t, interval))


def chord_value_phi(x: Tensor, o: float, t: float = 1.5, interval: float = 0.1) -> Tensor:
    """Wrong: the chord's value interval^(1/o) instead of its slope (0.1 at o = 1, not 1)."""
    return torch.where(x.abs() <= interval, interval ** (1 / o), rectified_derivative(x, o, t, interval))


def layer_with(phi: Callable[..., Tensor]) -> type[ReSTELinear]:
    class WrongLayer(ReSTELinear):
        def binarize(self, values: Tensor, t: float) -> Tensor:
            return _SignWith.apply(values, lambda v: phi(v, self.o, t, self.interval))

    return WrongLayer


def test_equilibrium_claim_passes() -> None:
    result = claims.equilibrium()
    assert result.passed, result.report()
    assert abs(result.measured["E(o=1)"] - 212.5) < 0.5
    assert abs(result.measured["E(o=3)"] - 120.1) < 0.5
    assert abs(result.measured["Var|grad|(o=1)"] - 0.362) < 0.005
    assert abs(result.measured["Var|grad|(o=3)"] - 2.806) < 0.02
    assert len(result.figures) == 2 and len(result.figures[0].series[0].x) == 21


def test_equilibrium_criterion_fails_wrong_estimators() -> None:
    inverted = claims.equilibrium(
        lambda x, o: _SignWith.apply(x, lambda v: inverted_phi(v, o)),
        lambda x, o: torch.sign(x) * x.abs() ** o,
        with_figures=False,
    )
    assert not inverted.passed
    assert inverted.measured["E(o=3)"] > inverted.measured["E(o=1)"]
    plain_ste = claims.equilibrium(
        lambda x, o: _SignWith.apply(x, lambda v: (v.abs() <= 1.5).to(v.dtype)), lambda x, o: x, with_figures=False
    )
    assert not plain_ste.passed  # o changes nothing: neither sequence moves


def test_training_claim_passes() -> None:
    result = claims.training_non_inferiority()
    assert result.passed, result.report()
    assert result.measured["ReSTE losses and parameters finite (all seeds)"] == 1.0
    assert result.measured["ReSTE - STE, test (points)"] >= -1.0
    assert result.measured["ReSTE - STE, train (points)"] >= 2.0
    accuracy, stability = result.figures
    assert len(accuracy.series[0].x) == 15 and len(stability.series[0].y) == 15


def test_training_criterion_fails_wrong_estimators() -> None:
    inverted = claims.training_non_inferiority(layer_with(inverted_phi), seeds=1)
    assert not inverted.passed
    assert inverted.measured["ReSTE - STE, train (points)"] < 0.0
    dropped = claims.training_non_inferiority(layer_with(zero_inside_phi), seeds=1)
    assert not dropped.passed
    assert dropped.measured["ReSTE - STE, test (points)"] < -1.0


def test_o_one_claim_passes_and_fails_a_wrong_interval_branch() -> None:
    result = claims.o_one_is_ste()
    assert result.passed, result.report()
    assert result.measured["steps"] == 150.0 and result.measured["losses differing, o = 2 vs STE"] > 0
    wrong = claims.o_one_is_ste(layer_with(chord_value_phi), epochs=1)
    assert not wrong.passed
    assert wrong.measured["parameters and buffers differing, o = 1 vs STE"] > 0
