"""The claim checks pass, and fail for deliberately wrong variants."""

from __future__ import annotations

import gradhub_mfac.optimizer
import gradhub_mfac.pruning
import pytest
import torch
from gradhub_mfac import claims


def test_optimizer_claim() -> None:
    result = claims.optimizer_beats_sgd()
    assert result.passed, result.report()


def test_optimizer_claim_fails_without_the_low_rank_correction() -> None:
    """M-FAC with the Woodbury correction dropped is SGD on g / damp (dampened momentum): it must fail."""

    def no_correction(params, lr):
        return torch.optim.SGD(params, lr=lr / 0.1, momentum=0.9, dampening=0.9)

    result = claims.optimizer_beats_sgd(no_correction)
    assert not result.passed, result.report()


def test_optimizer_claim_fails_with_the_wrong_correction_sign(monkeypatch: pytest.MonkeyPatch) -> None:
    original = gradhub_mfac.optimizer.woodbury_solve
    monkeypatch.setattr(gradhub_mfac.optimizer, "woodbury_solve", lambda *args: -original(*args))
    result = claims.optimizer_beats_sgd()
    assert not result.passed, result.report()


def test_pruning_claim() -> None:
    result = claims.pruning_beats_magnitude()
    assert result.passed, result.report()


def test_pruning_claim_fails_when_the_fisher_is_ignored() -> None:
    """With a huge damping F^-1 is a scaled identity: OBS becomes magnitude pruning and must fail."""

    def identity_fisher(model, params, losses, mask, sparsity):
        return claims.mfac_gradual_prune(model, params, losses, mask, sparsity, damp=1e4)

    result = claims.pruning_beats_magnitude(identity_fisher)
    assert not result.passed, result.report()


def test_pruning_claim_fails_with_the_wrong_update_sign(monkeypatch: pytest.MonkeyPatch) -> None:
    original = gradhub_mfac.pruning.StaticIHVP

    class Flipped(original):  # type: ignore[valid-type, misc]
        def mul(self, x: torch.Tensor) -> torch.Tensor:
            return -super().mul(x)

    monkeypatch.setattr(gradhub_mfac.pruning, "StaticIHVP", Flipped)
    result = claims.pruning_beats_magnitude()
    assert not result.passed, result.report()
