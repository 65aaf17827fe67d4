"""The (B, W, lambda)-bursty model: generated patterns conform, hand-built violations are flagged where they are."""

from __future__ import annotations

import pytest
import torch
from gradhub_sgc.stragglers import (
    StragglerModelError,
    bursty_pattern,
    bursty_round_conforms,
    bursty_violations,
    per_round_violations,
    require_bursty,
)


def _pattern(rows: list[str]) -> torch.Tensor:
    """One string per worker, one character per round: 'x' straggles."""
    return torch.tensor([[char == "x" for char in row] for row in rows], dtype=torch.bool)


@pytest.mark.parametrize(
    "n,B,W,lam,p", [(20, 1, 3, 4, 0.05), (6, 2, 5, 2, 0.3), (8, 3, 4, 5, 0.5), (5, 1, 2, 5, 0.9), (4, 2, 7, 1, 0.4)]
)
def test_generated_patterns_follow_the_model_and_use_it(n: int, B: int, W: int, lam: int, p: float) -> None:
    for seed in range(4):
        pattern = bursty_pattern(n, 120, B, W, lam, p, seed)
        assert pattern.shape == (n, 120) and pattern.dtype == torch.bool
        assert bursty_violations(pattern, B, W, lam) == []
        assert int(pattern.sum()) > 0
        assert torch.equal(pattern, bursty_pattern(n, 120, B, W, lam, p, seed))  # seeded
    if B > 1 and p >= 0.3:  # bursts longer than one round happen
        assert bool((pattern[:, 1:] & pattern[:, :-1]).any())


def test_spatial_violation_names_the_round_and_the_newcomer() -> None:
    """lambda = 2, W = 3: workers 0, 1 straggle in round 1, worker 3 joins in round 2 (3 in rounds [0, 2])."""
    pattern = _pattern(["-x---", "-x---", "-----", "--x--"])
    violations = bursty_violations(pattern, 1, 3, 2)
    assert [(v.round, v.worker, v.rule) for v in violations] == [(2, 3, "spatial"), (3, 3, "spatial")]
    assert "[0, 1, 3]" in violations[0].detail
    # the same straggling rounds spread W = 3 apart are fine
    assert bursty_violations(_pattern(["x-----", "x-----", "-----x", "---x--"]), 1, 3, 2) == []


def test_temporal_violation_names_the_worker_and_both_rounds() -> None:
    """B = 1, W = 3: worker 2 straggles in rounds 1 and 3 (two bursts inside one window of 3 rounds)."""
    pattern = _pattern(["------", "------", "-x-x--", "------"])
    violations = bursty_violations(pattern, 1, 3, 1)
    assert [(v.round, v.worker, v.rule) for v in violations] == [(3, 2, "temporal")]
    assert "round 1" in violations[0].detail and "B=1" in violations[0].detail
    assert bursty_violations(_pattern(["-x--x-"]), 1, 3, 1) == []  # W rounds apart: a new window


def test_burst_length_is_bounded_by_b() -> None:
    assert bursty_violations(_pattern(["-xx----"]), 2, 4, 1) == []
    violations = bursty_violations(_pattern(["-xxx---"]), 2, 4, 1)
    assert [(v.round, v.worker, v.rule) for v in violations] == [(3, 0, "temporal")]
    # the official reading: the straggling rounds of a window lie within B consecutive rounds
    assert bursty_violations(_pattern(["x-x"]), 3, 4, 1) == []


def test_a_per_round_checker_misses_what_the_bursty_checker_flags() -> None:
    """Wrong variant: counting stragglers per round (GC's model) accepts both hand-built violations."""
    spatial = _pattern(["-x---", "-x---", "-----", "--x--"])
    temporal = _pattern(["------", "------", "-x-x--", "------"])
    assert per_round_violations(spatial, 2) == [] and bursty_violations(spatial, 1, 3, 2)
    assert per_round_violations(temporal, 1) == [] and bursty_violations(temporal, 1, 3, 1)


def test_require_bursty_raises_with_round_and_worker() -> None:
    with pytest.raises(StragglerModelError, match=r"round 3, worker 2: worker 2 straggles in round 3") as info:
        require_bursty(_pattern(["------", "------", "-x-x--", "------"]), 1, 3, 1, method="sr_sgc")
    assert info.value.round == 3 and info.value.worker == 2 and info.value.rule == "temporal"
    assert "sr_sgc" in str(info.value) and "(B=1, W=3, lam=1)-bursty model" in str(info.value)


def test_per_round_model() -> None:
    pattern = _pattern(["x-x", "x--", "xx-", "---"])
    violations = per_round_violations(pattern, 2)
    assert [(v.round, v.worker, v.rule) for v in violations] == [(0, 2, "per-round")]


def test_the_round_by_round_test_agrees_with_the_whole_pattern_check() -> None:
    """bursty_round_conforms (the master's test per round) extends a conforming prefix exactly when the
    vectorised checker finds nothing new in that round."""
    generator = torch.Generator(device="cpu").manual_seed(0)
    for _ in range(300):
        n, B, W, lam = 4, int(torch.randint(1, 3, (1,), generator=generator)), 4, 2
        pattern = torch.rand(n, 8, generator=generator) < 0.25
        r = 7
        prefix_ok = not bursty_violations(pattern[:, :r], B, W, lam)
        if not prefix_ok:
            continue
        whole_ok = not bursty_violations(pattern, B, W, lam)
        assert bursty_round_conforms(pattern[:, :r], pattern[:, r], B, W, lam) == whole_ok
