"""The gradual-shift claim passes for RMT and FAILS for a wrong self-training loss.

The wrong variant keeps only the forward cross-entropy CE(q -> p) (the symmetric term CE(p -> q)
dropped, contrastive loss kept): its accuracy collapses towards the end of the stream.
"""

from __future__ import annotations

import torch
from gradhub_rmt.claims import gradual_shift
from gradhub_rmt.losses import cross_entropy_between
from gradhub_rmt.rmt import RMT


class ForwardCrossEntropyOnly(RMT):
    """Wrong: 1/2 [CE(q -> p) + CE(q -> p')], no reverse direction (the plain mean-teacher consistency)."""

    def self_training_loss(self, logits: torch.Tensor, teacher_logits: torch.Tensor, aug_logits: torch.Tensor):
        return (
            0.5
            * (cross_entropy_between(teacher_logits, logits) + cross_entropy_between(teacher_logits, aug_logits)).mean()
        )


def test_gradual_shift_claim_passes() -> None:
    result = gradual_shift()
    assert result.passed, result.report()
    assert result.measured["RMT mean online accuracy"] > 0.95
    assert len(result.figures) == 1 and len(result.figures[0].series) == 4


def test_gradual_shift_claim_fails_without_the_symmetric_term() -> None:
    result = gradual_shift(ForwardCrossEntropyOnly, seeds=(0, 1))
    assert not result.passed, result.report()
    assert result.measured["RMT accuracy, last 5 batches"] < result.measured["RMT accuracy, batches 5-10"] - 0.03
