"""AnyLoss pinned to its definition: sklearn's metrics at hard probabilities, A's shape, gradients,
invariances, degenerate batches, half precision, logits, and wbce_any's two limits."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from gradhub_anyloss import ANY_FBETA, ANY_GMEAN, ANYLOSS
from gradhub_anyloss.anyloss import (
    AnyLoss,
    any_accuracy,
    any_balanced_accuracy,
    any_fbeta,
    any_gmean,
    approximation,
    soft_confusion_matrix,
    wbce_any,
)
from sklearn import metrics

import gradhub

METRICS = ("accuracy", "f1", "fbeta", "gmean", "balanced_accuracy")


def random_batch(seed: int, count: int = 200, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities in (0.05, 0.95) and 0/1 labels (about 30% positive, both classes present)."""
    generator = torch.Generator().manual_seed(seed)
    probabilities = (torch.rand(count, generator=generator, dtype=torch.float64) * 0.9 + 0.05).to(dtype)
    labels = (torch.rand(count, generator=generator) < 0.3).double()
    labels[:2] = torch.tensor([0.0, 1.0])
    return probabilities, labels


def sklearn_scores(labels: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    recall = metrics.recall_score(labels, predicted, pos_label=1)
    specificity = metrics.recall_score(labels, predicted, pos_label=0)
    return {
        "accuracy": metrics.accuracy_score(labels, predicted),
        "f1": metrics.f1_score(labels, predicted),
        "f2": metrics.fbeta_score(labels, predicted, beta=2.0),
        "f0.5": metrics.fbeta_score(labels, predicted, beta=0.5),
        "gmean": recall * specificity,
        "balanced_accuracy": metrics.balanced_accuracy_score(labels, predicted),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hard_probabilities_reproduce_sklearn(seed: int) -> None:
    """p in {0, 1}, L = 1000: the soft confusion matrix is sklearn's and 1 - loss is sklearn's metric
    (F1, F2, F0.5, accuracy, balanced accuracy, TPR x TNR) to 1e-6, for the functions and AnyLoss."""
    generator = torch.Generator().manual_seed(seed)
    labels = (torch.rand(200, generator=generator) < 0.3).double()
    hard = (torch.rand(200, generator=generator) < 0.4).double()
    expected = sklearn_scores(labels.numpy(), hard.numpy())
    cm = soft_confusion_matrix(hard, labels, L=1000.0)
    tn, fp, fn, tp = metrics.confusion_matrix(labels.numpy(), hard.numpy()).ravel()
    for soft, count in ((cm.tn, tn), (cm.fp, fp), (cm.fn, fn), (cm.tp, tp)):
        assert soft.item() == pytest.approx(count, abs=1e-9)
    measured = {
        "accuracy": 1 - any_accuracy(hard, labels, L=1000.0),
        "f1": 1 - any_fbeta(hard, labels, L=1000.0),
        "f2": 1 - any_fbeta(hard, labels, L=1000.0, beta=2.0),
        "f0.5": 1 - any_fbeta(hard, labels, L=1000.0, beta=0.5),
        "gmean": 1 - any_gmean(hard, labels, L=1000.0),
        "balanced_accuracy": 1 - any_balanced_accuracy(hard, labels, L=1000.0),
    }
    for name in METRICS:
        module = AnyLoss(metric=name, L=1000.0, beta=2.0 if name == "fbeta" else 1.0)
        measured[f"module {name}"] = 1 - module(hard, labels)
    for name, value in measured.items():
        reference = expected[{"module fbeta": "f2"}.get(name, name.removeprefix("module "))]
        assert value.item() == pytest.approx(reference, abs=1e-6), name


def test_large_L_thresholds_at_one_half() -> None:
    """Probabilities away from 0.5 (|p - 0.5| >= 0.05) with L = 1000 give the metrics of p > 0.5."""
    probabilities, labels = random_batch(3, count=500)
    probabilities = torch.where((probabilities - 0.5).abs() < 0.05, probabilities + 0.1, probabilities)
    expected = sklearn_scores(labels.numpy(), (probabilities > 0.5).double().numpy())
    assert 1 - any_fbeta(probabilities, labels, L=1000.0).item() == pytest.approx(expected["f1"], abs=1e-6)
    balanced = 1 - any_balanced_accuracy(probabilities, labels, L=1000.0).item()
    assert balanced == pytest.approx(expected["balanced_accuracy"], abs=1e-6)


@pytest.mark.parametrize("L", [0.5, 1.0, 5.0, 30.0, 73.0, 1000.0])
def test_approximation_centre_slope_and_monotonicity(L: float) -> None:
    """A(0.5) = 0.5 and A'(0.5) = L / 4 for every L; A is increasing on [0, 1] (strictly where unsaturated)."""
    centre = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    value = approximation(centre, L)
    (slope,) = torch.autograd.grad(value, centre)
    assert value.item() == 0.5
    assert slope.item() == pytest.approx(L / 4, rel=1e-12)
    grid = torch.linspace(0, 1, 1001, dtype=torch.float64)
    values = approximation(grid, L)
    assert bool((values.diff() >= 0).all())
    unsaturated = (values > 1e-12) & (values < 1 - 1e-12)
    assert bool((values.diff()[unsaturated[1:] & unsaturated[:-1]] > 0).all())
    assert values[0].item() == pytest.approx(1 / (1 + math.exp(L / 2)), rel=1e-12)


LOSSES = {
    "any_accuracy": lambda p, y: any_accuracy(p, y, L=5.0),
    "any_fbeta": lambda p, y: any_fbeta(p, y, L=5.0),
    "any_fbeta beta=2": lambda p, y: any_fbeta(p, y, L=5.0, beta=2.0),
    "any_gmean": lambda p, y: any_gmean(p, y, L=5.0),
    "any_balanced_accuracy": lambda p, y: any_balanced_accuracy(p, y, L=5.0),
    **{f"AnyLoss {name}": AnyLoss(metric=name, L=5.0, beta=0.7 if name == "fbeta" else 1.0) for name in METRICS},
    "wbce_any raw": lambda p, y: wbce_any(p, y, metric="gmean", r=0.3),
    "wbce_any L=5": lambda p, y: wbce_any(p, y, metric="f1", r=0.6, L=5.0),
}


@pytest.mark.parametrize("name", list(LOSSES))
def test_gradcheck_float64(name: str) -> None:
    """The autograd gradient w.r.t. p is the true gradient at random interior points (L = 5)."""
    probabilities, labels = random_batch(4, count=24)
    leaf = probabilities.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: LOSSES[name](p, labels), (leaf,), eps=1e-6, atol=1e-8, rtol=1e-6)


def test_gradcheck_from_logits() -> None:
    generator = torch.Generator().manual_seed(5)
    logits = torch.randn(24, generator=generator, dtype=torch.float64, requires_grad=True)
    _, labels = random_batch(5, count=24)
    loss = AnyLoss(metric="balanced_accuracy", L=5.0, from_logits=True)
    assert torch.autograd.gradcheck(lambda z: loss(z, labels), (logits,), eps=1e-6, atol=1e-8, rtol=1e-6)


def test_gradient_closed_form_f1() -> None:
    """dF1/dp_i = A'(p_i) (2 y_i S - 2 TP) / S^2 with S = y1 + sum A + eps (differentiating Eq. 3)."""
    probabilities, labels = random_batch(6, count=50)
    leaf = probabilities.clone().requires_grad_(True)
    any_fbeta(leaf, labels, L=10.0).backward()
    amplified = approximation(probabilities, 10.0)
    total = labels.sum() + amplified.sum() + 1e-5
    tp = (labels * amplified).sum()
    slope = 10.0 * amplified * (1 - amplified)
    expected = -slope * (2 * labels * total - 2 * tp) / total**2
    torch.testing.assert_close(leaf.grad, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", list(LOSSES))
def test_permutation_invariance(name: str) -> None:
    probabilities, labels = random_batch(7)
    permutation = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    original = LOSSES[name](probabilities, labels)
    permuted = LOSSES[name](probabilities[permutation], labels[permutation])
    torch.testing.assert_close(original, permuted, rtol=1e-13, atol=1e-15)


def test_user_callable_matches_builtin_f1() -> None:
    """metric(TN, FP, FN, TP) = 2TP / (2TP + FP + FN + eps) gives the built-in F1's value and gradient."""
    probabilities, labels = random_batch(8)
    builtin_leaf = probabilities.clone().requires_grad_(True)
    callable_leaf = probabilities.clone().requires_grad_(True)
    builtin = AnyLoss(metric="f1")(builtin_leaf, labels)
    custom = AnyLoss(metric=lambda tn, fp, fn, tp: 2 * tp / (2 * tp + fp + fn + 1e-5))(callable_leaf, labels)
    builtin.backward()
    custom.backward()
    torch.testing.assert_close(custom, builtin, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(callable_leaf.grad, builtin_leaf.grad, rtol=1e-10, atol=1e-14)
    assert builtin_leaf.grad.abs().max() > 0


def test_callable_receives_tn_fp_fn_tp_in_order() -> None:
    probabilities, labels = random_batch(9)
    seen = {}

    def record(tn: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor, tp: torch.Tensor) -> torch.Tensor:
        seen.update(tn=tn, fp=fp, fn=fn, tp=tp)
        return tp / (tp + fn)

    AnyLoss(metric=record, L=1000.0)((probabilities > 0.5).double(), labels)
    tn, fp, fn, tp = metrics.confusion_matrix(labels.numpy(), (probabilities > 0.5).numpy()).ravel()
    assert [seen[k].item() for k in ("tn", "fp", "fn", "tp")] == pytest.approx([tn, fp, fn, tp], abs=1e-9)


@pytest.mark.parametrize("labels_value", [0.0, 1.0])
@pytest.mark.parametrize("name", list(LOSSES))
def test_single_class_batch_is_finite(name: str, labels_value: float) -> None:
    """A batch with no positives (or no negatives): finite loss and gradient (eps in the denominators)."""
    probabilities, _ = random_batch(10, count=40)
    labels = torch.full_like(probabilities, labels_value)
    leaf = probabilities.clone().requires_grad_(True)
    loss = LOSSES[name](leaf, labels)
    loss.backward()
    assert torch.isfinite(loss) and bool(torch.isfinite(leaf.grad).all())


def test_no_positives_at_default_L_all_predicted_negative() -> None:
    """y = 0 everywhere and p = 0: F1's 0/0 becomes 0 through eps, not NaN (loss 1, zero gradient)."""
    probabilities = torch.zeros(16, dtype=torch.float32, requires_grad=True)
    labels = torch.zeros(16)
    for loss_function in (any_fbeta, any_gmean, any_balanced_accuracy):
        loss = loss_function(probabilities, labels)
        (gradient,) = torch.autograd.grad(loss, probabilities)
        assert loss.item() == pytest.approx(1.0) and bool(torch.isfinite(gradient).all())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", METRICS)
def test_half_precision_computes_in_float32(name: str, dtype: torch.dtype) -> None:
    """Half inputs: the loss equals the float32 computation on the same (rounded) values, returned in
    the input dtype; at L = 73 nothing underflows to NaN, and the gradient is finite."""
    probabilities, labels = random_batch(11, count=300)
    half = probabilities.to(dtype).requires_grad_(True)
    loss = AnyLoss(metric=name, beta=2.0 if name == "fbeta" else 1.0)(half, labels.to(dtype))
    reference = AnyLoss(metric=name, beta=2.0 if name == "fbeta" else 1.0)(half.detach().float(), labels.float())
    assert loss.dtype == dtype
    assert loss.float().item() == pytest.approx(reference.item(), abs=float(torch.finfo(dtype).eps))
    loss.backward()
    assert half.grad.dtype == dtype and bool(torch.isfinite(half.grad).all())


def test_from_logits_matches_probabilities_and_is_stable() -> None:
    generator = torch.Generator().manual_seed(12)
    logits = torch.randn(100, generator=generator, dtype=torch.float64) * 3
    _, labels = random_batch(12, count=100)
    for name in METRICS:
        torch.testing.assert_close(
            AnyLoss(metric=name, from_logits=True)(logits, labels), AnyLoss(metric=name)(torch.sigmoid(logits), labels)
        )
    extreme = torch.tensor([-1e4, -100.0, 100.0, 1e4], requires_grad=True)
    loss = AnyLoss(metric="f1", from_logits=True)(extreme, torch.tensor([0, 1, 1, 0]))
    loss.backward()
    assert torch.isfinite(loss) and bool(torch.isfinite(extreme.grad).all())
    assert loss.item() == pytest.approx(1 - 2 * 1 / (2 + 2), abs=1e-5)  # TP=1, FN=1, FP=1


def test_target_dtypes_and_column_shapes_agree() -> None:
    """Integer, bool and float targets give one value; (N, 1) predictions with (N,) targets work."""
    probabilities, labels = random_batch(13)
    expected = AnyLoss(metric="balanced_accuracy")(probabilities, labels)
    for target in (labels.long(), labels.bool(), labels.float(), labels.view(-1, 1)):
        torch.testing.assert_close(AnyLoss(metric="balanced_accuracy")(probabilities, target), expected)
    torch.testing.assert_close(AnyLoss(metric="balanced_accuracy")(probabilities.view(-1, 1), labels), expected)


def test_larger_L_approaches_the_hard_metric() -> None:
    """The gap between soft and hard F1 shrinks as L grows (the point of amplification)."""
    probabilities, labels = random_batch(14, count=1000)
    hard = metrics.f1_score(labels.numpy(), (probabilities > 0.5).numpy())
    gaps = [abs(1 - any_fbeta(probabilities, labels, L=L).item() - hard) for L in (1.0, 5.0, 20.0, 73.0, 500.0)]
    assert all(a > b for a, b in itertools.pairwise(gaps)), gaps
    assert gaps[-1] < 1e-3


def test_wbce_any_limits() -> None:
    """r = 0 is the official WBCE (w1 = y0/N, w0 = y1/N, log(p + eps), batch mean); r = 1 is 1 - metric
    on the raw probabilities (official WBCE* losses do not amplify), or on A(p) when L is given."""
    probabilities, labels = random_batch(15)
    p, y = probabilities.numpy(), labels.numpy()
    count, positives = len(y), y.sum()
    w1, w0 = (count - positives) / count, positives / count
    wbce = -np.mean(w1 * y * np.log(p + 1e-5) + w0 * (1 - y) * np.log(1 - p + 1e-5))
    assert wbce_any(probabilities, labels, r=0.0).item() == pytest.approx(wbce, rel=1e-12)
    tp, fp = (y * p).sum(), ((1 - y) * p).sum()
    raw_f1 = 2 * tp / (positives + tp + fp + 1e-5)
    assert wbce_any(probabilities, labels, r=1.0).item() == pytest.approx(1 - raw_f1, rel=1e-12)
    half = wbce_any(probabilities, labels, r=0.5).item()
    assert half == pytest.approx(0.5 * wbce + 0.5 * (1 - raw_f1), rel=1e-12)
    amplified = wbce_any(probabilities, labels, metric="gmean", r=1.0, L=30.0)
    torch.testing.assert_close(amplified, AnyLoss(metric="gmean", L=30.0)(probabilities, labels))


def test_wbce_any_from_logits_eps_zero_uses_logsigmoid() -> None:
    logits = torch.tensor([-200.0, -3.0, 0.5, 200.0], dtype=torch.float64)
    labels = torch.tensor([1.0, 0.0, 1.0, 0.0])
    value = wbce_any(logits, labels, r=0.0, eps=0.0, from_logits=True)
    # w1 = w0 = 1/2; positives: log sigmoid(z); negatives: log(1 - sigmoid(z)) = logsigmoid(-z).
    negatives = torch.nn.functional.logsigmoid(torch.tensor([3.0, -200.0], dtype=torch.float64)).sum()
    positives = torch.nn.functional.logsigmoid(torch.tensor([-200.0, 0.5], dtype=torch.float64)).sum()
    expected = -(0.5 * positives + 0.5 * negatives) / 4
    assert torch.isfinite(value)
    torch.testing.assert_close(value, expected)


def test_registered_and_loadable() -> None:
    assert gradhub.get(ANYLOSS.name) is AnyLoss
    assert gradhub.get(ANY_FBETA.name) is any_fbeta
    assert gradhub.spec(ANYLOSS.name).capabilities.reductions == ()
    assert "L" in gradhub.spec(ANY_GMEAN.name).params.model_fields
