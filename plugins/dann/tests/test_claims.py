"""The rotated-moons claim check passes for DANN and FAILS for a DANN whose reversal layer has the wrong sign."""

from __future__ import annotations

import torch
from gradhub_dann.claims import rotated_moons_adaptation
from gradhub_dann.dann import DANN
from gradhub_dann.reversal import grad_reverse


class SignFlippedDANN(DANN):
    """Wrong: the features get +lambda dL_d (they help the domain classifier instead of fooling it)."""

    def domain_logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.domain_head(grad_reverse(grad_reverse(features, lambd=self.lambd), lambd=1.0)).squeeze(1)


def test_rotated_moons_claim_passes() -> None:
    result = rotated_moons_adaptation()
    assert result.passed, result.report()
    assert len(result.figures) == 3


def test_rotated_moons_claim_fails_for_sign_flipped_reversal() -> None:
    result = rotated_moons_adaptation(model_class=SignFlippedDANN)
    assert not result.passed, result.report()
    assert result.measured["DANN target accuracy"] < result.measured["source-only target accuracy"] + 0.03
