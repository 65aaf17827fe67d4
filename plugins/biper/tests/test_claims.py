"""The claim checks pass, and their criteria fail deliberately wrong binarisers."""

from __future__ import annotations

import math

import torch
from gradhub_biper import claims
from gradhub_biper.functional import biper_binarize, square_wave
from gradhub_biper.layers import BiPerLinear


def test_quantization_error_claim_passes() -> None:
    result = claims.quantization_error()
    assert result.passed, result.report()
    assert abs(result.measured["QE(omega=1)"] - 0.9229) < 1e-3
    assert abs(result.measured["QE(omega=20)"] - 0.2746) < 1e-3
    assert len(result.figures) == 2


def test_quantization_error_criterion_fails_wrong_binarizers() -> None:
    plain_sign = claims.quantization_error(lambda w, omega: torch.sign(w), with_figures=False)  # not periodic
    assert not plain_sign.passed
    wrong_period = claims.quantization_error(lambda w, omega: biper_binarize(w, freq=2 * omega), with_figures=False)
    assert not wrong_period.passed
    no_binarization = claims.quantization_error(lambda w, omega: torch.sin(omega * w), with_figures=False)
    assert not no_binarization.passed


def test_uniform_phase_limit() -> None:
    assert math.isclose(claims.UNIFORM_PHASE_QE, 0.5 - 4 / math.pi + 1)


def test_training_claim_passes() -> None:
    result = claims.binary_mlp_training()
    assert result.passed, result.report()
    assert result.measured["stage-2 weights exactly binary (all seeds)"] == 1.0
    assert len(result.figures[0].series) == 4 and len(result.figures[0].series[0].x) == 10


class _WrongPeriodForward(BiPerLinear):
    """Stage 2 forward sign(sin(2 omega W)): a square wave whose period is not the sine's."""

    def quantized_weight(self) -> torch.Tensor:
        if self.stage == 1:
            return super().quantized_weight()
        sine = torch.sin(self.freq * self.weight)
        return sine + (square_wave(torch.sin(2 * self.freq * self.weight.detach())) - sine).detach()


class _NeverBinary(BiPerLinear):
    """Ignores the stage: keeps the sine weights in stage 2."""

    def quantized_weight(self) -> torch.Tensor:
        return torch.sin(self.freq * self.weight)


def test_training_criterion_fails_wrong_period_and_missing_binarisation() -> None:
    wrong = claims.binary_mlp_training(_WrongPeriodForward, seeds=1, stage_epochs=3)
    assert not wrong.passed
    assert wrong.measured["BiPer mean (%)"] < wrong.measured["baseline mean (%)"] - 1.0
    never = claims.binary_mlp_training(_NeverBinary, seeds=1, stage_epochs=1)
    assert not never.passed
    assert never.measured["stage-2 weights exactly binary (all seeds)"] == 0.0
