"""The Laplacian claim passes, and its criterion fails for deliberately wrong denoisers (the same trained
networks, reused from the claim's per-process cache, so each variant costs one evaluation, not a training)."""

from __future__ import annotations

import copy

import torch
from gradhub_lpn.claims import assess, laplacian_map_and_prior, train_denoisers


def test_claim_passes() -> None:
    """Trains two LPNs on CPU (~3-5 s, once per process), then inverts each on 61 points."""
    result = laplacian_map_and_prior()
    assert result.passed, result.report()
    assert len(result.figures) == 2
    assert result.measured["inversion residual max ||f(y*) - x||"] <= 1e-6


def test_l2_denoiser_fails_the_map_criterion() -> None:
    """Wrong variant: a denoiser trained with L2 (the MMSE) where the proximal-matching one belongs."""
    _, l2, _, _ = train_denoisers(0)
    result = assess(l2, l2)
    assert not result.passed
    assert result.measured["PM max |f(y)|, |y| <= 0.7"] > 0.25
    assert result.measured["PM prior max |R - |x| - c|, |x| <= 1.5"] > 0.25


def test_broken_convexity_fails() -> None:
    """Wrong variant: the trained PM network with its last W negated (the constraint w >= 0 broken): psi is no
    longer convex and f decreases, which the monotonicity criterion catches."""
    pm, l2, _, _ = train_denoisers(0)
    broken = copy.deepcopy(pm)
    with torch.no_grad():
        broken.lin[-1].weight.neg_()
    assert broken.convexity_violation() > 0
    result = assess(broken, l2)
    assert not result.passed and result.measured["PM f monotone"] == 0.0
    assert pm.convexity_violation() == 0.0  # the cached, trained network is untouched
