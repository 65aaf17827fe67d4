"""The claim check passes for AnyLoss and FAILS for deliberately wrong losses, for the right reason.

The criterion runs on the real AnyLoss, on a control (the right metrics written as user
callables, which must pass too), and on wrong losses: no amplification (L = 1), FP and FN
swapped in balanced accuracy (precision + NPV instead of TPR + TNR), labels flipped (TP
counted on the negatives), and A without the 0.5 shift (sigmoid(L p), which calls every
p >= 0 positive). The BCE baselines are cached in-process by the claim module.
"""

from __future__ import annotations

import pytest
import torch
from gradhub_anyloss.anyloss import AnyLoss
from gradhub_anyloss.claims import (
    BALANCED_ACCURACY_MARGIN_OVER_BCE,
    F1_GAP_TO_BEST_THRESHOLD,
    F1_MARGIN_OVER_BCE,
    imbalanced_f1_and_balanced_accuracy,
)
from torch import Tensor

EPS = 1e-5


def f1_callable(tn: Tensor, fp: Tensor, fn: Tensor, tp: Tensor) -> Tensor:
    return 2 * tp / (2 * tp + fp + fn + EPS)


def balanced_accuracy_callable(tn: Tensor, fp: Tensor, fn: Tensor, tp: Tensor) -> Tensor:
    return (tp / (tp + fn + EPS) + tn / (tn + fp + EPS)) / 2


def balanced_accuracy_fp_fn_swapped(tn: Tensor, fp: Tensor, fn: Tensor, tp: Tensor) -> Tensor:
    return (tp / (tp + fp + EPS) + tn / (tn + fn + EPS)) / 2


def f1_labels_flipped(tn: Tensor, fp: Tensor, fn: Tensor, tp: Tensor) -> Tensor:
    return 2 * fp / (2 * fp + tn + tp + EPS)


def unshifted_f1(p: Tensor, y: Tensor) -> Tensor:
    amplified = torch.sigmoid(73.0 * p)
    return 1 - 2 * (y * amplified).sum() / (y.sum() + amplified.sum() + EPS)


def unshifted_balanced_accuracy(p: Tensor, y: Tensor) -> Tensor:
    amplified = torch.sigmoid(73.0 * p)
    true_positive_rate = (y * amplified).sum() / y.sum()
    true_negative_rate = ((1 - y) * (1 - amplified)).sum() / (1 - y).sum()
    return 1 - (true_positive_rate + true_negative_rate) / 2


def test_claim_passes() -> None:
    """AnyLoss(f1) >= converged BCE + 0.05 in test F1 and within 0.02 of BCE's best-threshold F1;
    AnyLoss(balanced_accuracy) >= converged BCE + 0.10 in balanced accuracy."""
    result = imbalanced_f1_and_balanced_accuracy()
    assert result.passed, result.report()
    measured = result.measured
    # The first-proposed BCE baseline (Adam, 1000 steps) is not converged: converged BCE is better.
    assert measured["test F1 BCE (converged)"] > measured["test F1 BCE (Adam, 1000 steps)"]
    assert len(result.figures) == 4
    # The F1s at 0.5 are drawn as levels after the swept curve (a one-point "points" series was drawn
    # under it, hiding BCE's), each ending at the threshold 0.5 at the measured value.
    swept, *levels = result.figures[0].series
    assert len(swept.x) == 99
    for level, name in zip(levels, ("test F1 AnyLoss(f1)", "test F1 BCE (converged)"), strict=True):
        assert level.style != "points" and level.x[-1] == 0.5 and level.y == [measured[name]] * 2, level


def test_control_callables_pass() -> None:
    """The right metrics as user callables pass: the failures below come from the mistakes."""
    result = imbalanced_f1_and_balanced_accuracy(
        AnyLoss(metric=f1_callable), AnyLoss(metric=balanced_accuracy_callable)
    )
    assert result.passed, result.report()


def f1_fails(measured: dict[str, float]) -> bool:
    f1 = measured["test F1 AnyLoss(f1)"]
    return (
        f1 < measured["test F1 BCE (converged)"] + F1_MARGIN_OVER_BCE
        or f1 < measured["test F1 BCE best threshold"] - F1_GAP_TO_BEST_THRESHOLD
    )


def balanced_accuracy_fails(measured: dict[str, float]) -> bool:
    value = measured["test balanced accuracy AnyLoss(balanced_accuracy)"]
    return value < measured["test balanced accuracy BCE (converged)"] + BALANCED_ACCURACY_MARGIN_OVER_BCE


WRONG = {
    # no amplification breaks F1 (balanced accuracy survives L = 1, so it is paired with a swap)
    "L=1 / FP-FN swapped": (AnyLoss(metric="f1", L=1.0), AnyLoss(metric=balanced_accuracy_fp_fn_swapped)),
    "labels flipped / unshifted A": (AnyLoss(metric=f1_labels_flipped), unshifted_balanced_accuracy),
    "unshifted A / FP-FN swapped": (unshifted_f1, AnyLoss(metric=balanced_accuracy_fp_fn_swapped)),
}


@pytest.mark.parametrize("wrong", list(WRONG))
def test_claim_fails_for_wrong_losses(wrong: str) -> None:
    """Both halves of the criterion fail for each wrong pair."""
    result = imbalanced_f1_and_balanced_accuracy(*WRONG[wrong])
    assert not result.passed, result.report()
    assert f1_fails(result.measured), result.report()
    assert balanced_accuracy_fails(result.measured), result.report()
