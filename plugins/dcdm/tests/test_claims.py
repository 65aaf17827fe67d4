"""The claim check passes for DCDM and FAILS for deliberately wrong variants."""

from __future__ import annotations

import torch
from gradhub_dcdm.claims import poisson_iteration_growth, trained_network_iterations
from gradhub_dcdm.dcdm import dcdm


def test_claim_passes() -> None:
    result = poisson_iteration_growth()
    assert result.passed, result.report()
    assert len(result.figures) == 3


def test_claim_fails_without_a_orthogonalisation() -> None:
    result = poisson_iteration_growth(lambda *args, **kwargs: dcdm(*args, n_orth=0, **kwargs))
    assert not result.passed
    assert result.measured["DCDM iterations N=64"] > 40


def test_claim_fails_with_wrong_step_size(monkeypatch) -> None:
    """Step p^T r / p^T p (the A dropped from the line search) instead of p^T r / p^T A p."""
    import gradhub_dcdm.dcdm as module

    original = module._rowwise_dot
    calls = {"n": 0}

    def wrong(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        # _rowwise_dot is called for curvature (p, Ap) then for (p, r) each iteration: replace p^T A p by p^T p.
        calls["n"] += 1
        if calls["n"] % 2 == 1:
            return (first * first).sum(-1)
        return original(first, second)

    monkeypatch.setattr(module, "_rowwise_dot", wrong)
    result = poisson_iteration_growth()
    assert not result.passed


def test_trained_network_claim_passes() -> None:
    """~12 s on 2 CPU cores: trains DCDMNet (1000 Adam steps at N=16), then solves at N = 16, 32, 64."""
    result = trained_network_iterations()
    assert result.passed, result.report()
    assert result.measured["held-out loss ratio trained/identity"] < 0.1
    assert len(result.figures) == 4


def test_trained_network_claim_fails_when_undertrained() -> None:
    """100 Adam steps: DCDM with that net stalls at N = 32, 64 (~6 s)."""
    result = trained_network_iterations(steps=100)
    assert not result.passed
    assert result.measured["DCDM iterations N=64"] > 300
