"""The claim check passes, and fails for deliberately wrong DIAs."""

from __future__ import annotations

from gradhub_dia.claims import dropout_does_not_protect

from .conftest import wrong_dia


def test_dropout_does_not_protect() -> None:
    """DIA: median MSE <= 0.3 x IG's, masks recovered on identifiable units; p = 0: DIA == IG, MSE < 1e-3."""
    result = dropout_does_not_protect()
    assert result.passed, result.report()
    assert result.measured["control p=0: identical"] == 1.0
    assert len(result.figures) == 2


def test_claim_fails_when_masks_are_not_optimised() -> None:
    """A DIA that keeps its random initial masks is no better than IG, and recovers no mask."""
    result = dropout_does_not_protect(dia=wrong_dia(optimise_masks=False), seeds=2)
    assert not result.passed, result.report()
    assert result.measured["MSE ratio DIA/IG"] > 0.3
    assert result.measured["DIA mask agreement, identifiable units (median)"] < 0.9
