"""The synthetic SSL claim passes for GroCo and FAILS when the sorted negatives are the easiest, not the hardest."""

from __future__ import annotations

import torch
from gradhub_groco.claims import synthetic_ssl
from gradhub_groco.groco import GroCoLoss

from gradhub.figures import Histogram, ImageGrid, LinePlot


class EasiestNegatives(GroCoLoss):
    """WRONG: the k *smallest* similarities as negatives (``topk(largest=False)``), not the k hardest."""

    @staticmethod
    def _hardest(negatives: torch.Tensor, k: int) -> torch.Tensor:
        others = negatives.masked_fill(negatives.isinf(), float("inf"))  # the anchor itself is not a negative
        return others.topk(k, dim=-1, largest=False).values


def test_synthetic_ssl_claim_passes() -> None:
    result = synthetic_ssl()
    assert result.passed, result.report()
    kinds = [type(figure) for figure in result.figures]
    assert kinds == [LinePlot, Histogram, LinePlot, ImageGrid]


def test_synthetic_ssl_claim_fails_with_the_easiest_negatives() -> None:
    result = synthetic_ssl(groco=EasiestNegatives, seeds=(0,))
    assert not result.passed, result.report()
    measured = result.measured
    assert measured["ordering fraction, GroCo"] < measured["ordering fraction, untrained"]
    assert measured["kNN accuracy, GroCo"] < measured["kNN accuracy, untrained"] + 0.06
