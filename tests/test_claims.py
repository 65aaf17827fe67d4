"""The claim-check runner behind `gradhub demo`."""

from __future__ import annotations

import pytest

import gradhub
from gradhub.claims import ClaimResult, claim_paths, run_claims

PAPER = {"title": "T", "authors": ["A"], "year": 2024}


def passing_claim() -> ClaimResult:
    return ClaimResult(claim="it works", criterion="x > 1", measured={"x": 2.0}, passed=True)


def raising_claim() -> ClaimResult:
    raise RuntimeError("the experiment crashed")


@pytest.fixture
def claimed_methods() -> list[str]:
    base = {"kind": "loss", "summary": "s", "paper": PAPER, "target": "torch.nn:MSELoss", "example": "m:f"}
    shared = f"{__name__}:passing_claim"
    gradhub.register({**base, "name": "claim-a", "claims": (shared,)})
    gradhub.register({**base, "name": "claim-b", "claims": (shared, f"{__name__}:raising_claim")})
    yield ["claim-a", "claim-b"]
    for name in ("claim-a", "claim-b"):
        gradhub._registry.unregister(name)


def test_shared_claims_run_once(claimed_methods: list[str]) -> None:
    assert claim_paths(claimed_methods) == {
        f"{__name__}:passing_claim": ["claim-a", "claim-b"],
        f"{__name__}:raising_claim": ["claim-b"],
    }


def test_a_crashing_claim_is_a_failed_result(claimed_methods: list[str]) -> None:
    passed, crashed = run_claims(claimed_methods)
    assert passed.passed and passed.methods == ("claim-a", "claim-b") and passed.measured == {"x": 2.0}
    assert not crashed.passed and "the experiment crashed" in crashed.details
    assert "[FAIL] claim-b" in crashed.report() and "[PASS] claim-a, claim-b" in passed.report()
