"""The claim checks pass, and FAIL for deliberately wrong schedules and refinements."""

from __future__ import annotations

import numpy as np
import pytest
from gradhub_refined_schedules import refine_schedule
from gradhub_refined_schedules.claims import linear_decay_beats_cosine, refinement_warms_up
from gradhub_refined_schedules.refinement import filter_width, median_filter


def test_linear_decay_claim_passes() -> None:
    result = linear_decay_beats_cosine()
    assert result.passed, result.report()
    assert result.measured["linear / cosine"] <= 1.05


def test_linear_decay_claim_fails_for_a_rising_schedule() -> None:
    """A 'linear decay' with the direction wrong (t / T, rising) loses to constant and step decay."""
    result = linear_decay_beats_cosine(linear=lambda steps: (np.arange(steps) + 1.0) / steps)
    assert not result.passed, result.report()


def test_refinement_claim_passes() -> None:
    result = refinement_warms_up()
    assert result.passed, result.report()
    assert result.measured["min peak step / T"] > 0.02
    # The norms figure: the filter of the recorded norms, both lines (a scatter took the line's colour).
    recorded, filtered = result.figures[1].series
    assert recorded.style == filtered.style == "line"
    np.testing.assert_array_equal(filtered.y, median_filter(recorded.y, filter_width(len(recorded.y), 0.1)))


def _tail_reversed(norms: np.ndarray) -> np.ndarray:
    smoothed = median_filter(norms, filter_width(norms.size, 0.1))
    a = smoothed**-2.0
    w = a * np.concatenate([[0.0], np.cumsum(a)[:-1]])
    return w / w.max()


WRONG = {
    "tail-sum-reversed": _tail_reversed,
    "power-sign-flipped": lambda norms: refine_schedule(norms, weights=median_filter(norms, 301) ** 2.0),
}


@pytest.mark.parametrize("wrong", list(WRONG))
def test_refinement_claim_fails_for_wrong_refinements(wrong: str) -> None:
    result = refinement_warms_up(refine=WRONG[wrong])
    assert not result.passed, result.report()
    assert result.measured["median run2/run1"] > 1.5, result.report()
