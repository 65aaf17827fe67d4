"""The contrast-images claim check passes for TrAct and FAILS for a TrAct that forgets the 1/N of A^T A / N."""

from __future__ import annotations

from unittest import mock

import torch
from gradhub_tract import functional
from gradhub_tract.claims import SANITY_TOLERANCE, SPEEDUP, contrast_images_learning_speed, train
from gradhub_tract.layers import tract


def test_contrast_images_claim_passes() -> None:
    result = contrast_images_learning_speed()
    assert result.passed, result.report()
    assert result.measured["largest steps-to-90% ratio TrAct / plain"] <= SPEEDUP
    assert result.measured["sanity: largest relative loss deviation (lambda -> infinity)"] <= SANITY_TOLERANCE
    assert len(result.figures) == 3


def _without_the_mean(a: torch.Tensor, g: torch.Tensor, l: float, inv_type: str) -> torch.Tensor:  # noqa: E741
    """Wrong: G_W (A^T A + l I)^-1, the Gram matrix not divided by the N rows."""
    return g.mT @ a @ torch.linalg.inv(a.mT @ a + l * torch.eye(a.shape[1], dtype=a.dtype))


def test_claim_fails_when_the_gram_matrix_is_not_divided_by_n() -> None:
    with mock.patch.object(functional, "tract_gradient", _without_the_mean):
        result = contrast_images_learning_speed(seeds=(0,))
    assert not result.passed, result.report()
    assert result.measured["sanity: largest relative loss deviation (lambda -> infinity)"] > SANITY_TOLERANCE
    assert result.measured["largest steps-to-90% ratio TrAct / plain"] > SPEEDUP


def test_copies_trained_side_by_side_equal_separate_runs() -> None:
    """The claim trains its learning-rate grid at once; each copy must be the run at its own lr."""
    together = train(1, (0.03, 0.3), wrap=tract, dtype=torch.float64, steps=20)
    for run in together:
        (alone,) = train(1, (run.lr,), wrap=tract, dtype=torch.float64, steps=20)
        assert torch.allclose(run.losses, alone.losses, rtol=1e-10, atol=0)
        assert torch.equal(run.accuracy, alone.accuracy)
    assert not torch.allclose(together[0].losses, together[1].losses)
