"""AnyLoss: confusion-matrix metrics as differentiable losses.

Paper: "AnyLoss: Transforming Classification Metrics into Loss Functions", Doheon Han,
Nuno Moniz, Nitesh V. Chawla, KDD 2024, arXiv:2405.14745. Official code (TensorFlow/Keras):
https://github.com/doheonhan/anyloss_extension (``AnyLoss_Code.ipynb``, ``README.md``; the
paper's own experiments are the ``[Section ...] AnyLoss_org`` notebooks of that repository).

The method, for binary classification with predicted probabilities ``p`` and labels ``y``:

1. the approximation (amplifying) function ``A(p) = 1 / (1 + exp(-L (p - 0.5)))`` (Eq. 1)
   pushes each probability towards 0 or 1, so that
2. the soft confusion matrix of the batch, ``TP = sum y A``, ``FN = sum y (1 - A)``,
   ``FP = sum (1 - y) A``, ``TN = sum (1 - y)(1 - A)`` (Eq. 2), approximates the hard one
   at threshold 0.5, and
3. the loss is ``1 - M(TN, FP, FN, TP)`` for the metric ``M`` (Eq. 3 and Table 1), whose
   gradient reaches ``p`` through ``A``.

Readings taken from the official code (what the paper leaves open):

- ``L = 73`` by default (the value set in the ``AnyLoss_org`` notebooks); the extension's
  README suggests ``L`` in [2, 70] and its 102-dataset experiment uses 30.
- ``eps`` (the code's ``s = 1e-5``) sits in the denominators exactly as in ``AnyLoss_Code.ipynb``:
  ``F_beta = (1 + b^2) TP / (b^2 y1 + sum A + eps)``, G-mean surrogate
  ``TP TN / (y1 y0 + eps)``, balanced accuracy ``(y0 TP + y1 TN) / (2 y1 y0 + eps)``;
  accuracy ``(TP + TN) / N`` has none.
- "gmean" is the extension's surrogate ``TPR x TNR`` (the square of the G-mean; both are
  maximised by the same classifier). The ``AnyLoss_org`` notebooks take its square root; pass
  ``metric=lambda tn, fp, fn, tp: (tp * tn / ((tp + fn) * (tn + fp))).sqrt()`` for that.
- ``wbce_any`` follows the extension's ``WBCE*`` losses: the class-weighted BCE with
  ``w1 = y0 / N`` and ``w0 = y1 / N`` per batch, ``log(p + eps)``, averaged over the batch,
  plus ``r (1 - metric)`` where the metric is computed on the *raw* probabilities (the
  official ``WBCEFL``/``WBCEGL``/``WBCEBL`` do not apply ``A``); ``L=...`` applies ``A``.

What differs from the official code: the confusion matrix is built as ``TP = sum y A``,
``FP = sum (1 - y) A``, ``FN = y1 - TP``, ``TN = y0 - FP`` (the same values and gradients as
the code's ``N - y1 - sum A + TP``, without its cancellation in float32); in float16/bfloat16
``A`` and the sums are computed in float32 (``exp(-73 / 2)`` underflows in float16) and the loss
is returned in the input's dtype; ``from_logits=True`` takes logits ``z`` and uses
``A(sigmoid(z))``; inputs of any shape are pooled into one confusion matrix (micro-averaging).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gradhub.errors import HyperparameterError, UnsupportedInputError
from gradhub.hyperparameters import validated
from gradhub_anyloss import (
    AnyAccuracyHyperparameters,
    AnyFbetaHyperparameters,
    AnyLossHyperparameters,
    AnyRatesHyperparameters,
    WBCEAnyHyperparameters,
)

__all__ = [
    "AnyLoss",
    "SoftConfusionMatrix",
    "any_accuracy",
    "any_balanced_accuracy",
    "any_fbeta",
    "any_gmean",
    "approximation",
    "soft_confusion_matrix",
    "wbce_any",
]

Metric = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]


def approximation(p: Tensor, L: float = 73.0) -> Tensor:
    """The approximation (amplifying) function ``A(p) = 1 / (1 + exp(-L (p - 0.5)))`` (Eq. 1).

    ``A(0.5) = 0.5`` and ``A'(0.5) = L / 4`` for every ``L``; ``torch.sigmoid`` evaluates it
    without overflow for any ``L``.
    """
    return torch.sigmoid(L * (p - 0.5))


@dataclass(frozen=True)
class SoftConfusionMatrix:
    """The soft confusion matrix of one batch (Eq. 2), with the class counts it came from."""

    tn: Tensor
    fp: Tensor
    fn: Tensor
    tp: Tensor
    positives: Tensor
    """``y1 = sum y``."""
    negatives: Tensor
    """``y0 = N - y1``."""
    count: int
    """``N``, the number of predictions pooled."""


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _prepare(
    method: str, prediction: object, target: object, from_logits: bool, check_values: bool
) -> tuple[Tensor, Tensor]:
    """Validate the inputs; return them flattened, in the compute dtype (float32 for half types)."""
    what = "logits" if from_logits else "probabilities"
    if not isinstance(prediction, Tensor):
        raise UnsupportedInputError(
            method, "prediction", type(prediction).__name__, f"prediction must be a tensor of {what}"
        )
    if not isinstance(target, Tensor):
        raise UnsupportedInputError(method, "target", type(target).__name__, "target must be a tensor of 0/1 labels")
    if not prediction.is_floating_point():
        raise UnsupportedInputError(
            method, "prediction dtype", prediction.dtype, f"prediction must be a floating-point tensor of {what}"
        )
    if target.is_complex():
        raise UnsupportedInputError(
            method, "target dtype", target.dtype, "target must be bool, integer or floating point (0/1 labels)"
        )
    if prediction.device != target.device:
        raise UnsupportedInputError(
            method,
            "devices",
            f"prediction on {prediction.device}, target on {target.device}",
            "prediction and target must be on the same device",
        )
    if prediction.numel() == 0:
        raise UnsupportedInputError(
            method, "prediction shape", tuple(prediction.shape), "the batch must hold at least one prediction"
        )
    if prediction.shape != target.shape and prediction.squeeze().shape != target.squeeze().shape:
        raise UnsupportedInputError(
            method,
            "shapes",
            f"prediction {tuple(prediction.shape)}, target {tuple(target.shape)}",
            "prediction and target must have the same shape, up to dimensions of size 1 (e.g. (N, 1) and (N,))",
        )
    dtype = _compute_dtype(prediction.dtype)
    p = prediction.reshape(-1).to(dtype)
    y = target.reshape(-1).to(dtype)
    if check_values:
        labels = target.reshape(-1)
        bad_target = (labels != 0) & (labels != 1)
        bad_prediction = p.isnan() if from_logits else ~((p >= 0) & (p <= 1))
        # One host sync for both checks.
        target_is_bad, prediction_is_bad = torch.stack((bad_target.any(), bad_prediction.any())).tolist()
        if target_is_bad:
            first = labels[bad_target.nonzero()[0, 0]].item()
            count = int(bad_target.sum())
            raise UnsupportedInputError(
                method,
                "target values",
                f"{first!r} ({count} of {y.numel()} entries are neither 0 nor 1)",
                "target must hold binary labels 0 and 1",
            )
        if prediction_is_bad:
            first = prediction.reshape(-1)[bad_prediction.nonzero()[0, 0]].item()
            count = int(bad_prediction.sum())
            if from_logits:
                shown, allowed = f"{first!r} ({count} of {p.numel()} logits are NaN)", "logits must not be NaN"
            else:
                shown = f"{first!r} ({count} of {p.numel()} entries outside [0, 1] or NaN)"
                allowed = "probabilities must lie in [0, 1] (pass from_logits=True for logits)"
            raise UnsupportedInputError(method, "prediction values", shown, allowed)
    return p, y


def _confusion(scores: Tensor, y: Tensor) -> SoftConfusionMatrix:
    """Eq. 2 over flattened ``scores`` (``A(p)``, or raw ``p`` for ``wbce_any``) and labels ``y``."""
    count = y.numel()
    positives = y.sum()
    negatives = count - positives
    tp = (y * scores).sum()
    fp = ((1 - y) * scores).sum()
    return SoftConfusionMatrix(
        tn=negatives - fp, fp=fp, fn=positives - tp, tp=tp, positives=positives, negatives=negatives, count=count
    )


def _amplified(p: Tensor, L: float, from_logits: bool) -> Tensor:
    return approximation(torch.sigmoid(p) if from_logits else p, L)


def soft_confusion_matrix(
    prediction: Tensor, target: Tensor, L: float = 73.0, from_logits: bool = False
) -> SoftConfusionMatrix:
    """The soft confusion matrix of a batch (Eq. 2) of ``A(p)``, in float32 for half inputs."""
    p, y = _prepare("soft_confusion_matrix", prediction, target, from_logits, True)
    return _confusion(_amplified(p, L, from_logits), y)


# --- the metrics of Table 1, with eps placed as in the official code -----------------------


def _accuracy(cm: SoftConfusionMatrix, beta: float, eps: float) -> Tensor:
    return (cm.tp + cm.tn) / cm.count


def _fbeta(cm: SoftConfusionMatrix, beta: float, eps: float) -> Tensor:
    # (1 + b^2) TP / ((1 + b^2) TP + b^2 FN + FP), written as the official b^2 y1 + sum A.
    b2 = beta * beta
    return (1 + b2) * cm.tp / (b2 * cm.positives + (cm.tp + cm.fp) + eps)


def _gmean_surrogate(cm: SoftConfusionMatrix, beta: float, eps: float) -> Tensor:
    # TPR x TNR = TP TN / (y1 y0): the official "sur_gmean", the square of the G-mean.
    return cm.tp * cm.tn / (cm.positives * cm.negatives + eps)


def _balanced_accuracy(cm: SoftConfusionMatrix, beta: float, eps: float) -> Tensor:
    # (TPR + TNR) / 2 = (y0 TP + y1 TN) / (2 y1 y0).
    return (cm.negatives * cm.tp + cm.positives * cm.tn) / (2 * cm.positives * cm.negatives + eps)


BUILT_IN_METRICS: dict[str, Callable[[SoftConfusionMatrix, float, float], Tensor]] = {
    "accuracy": _accuracy,
    "f1": _fbeta,
    "fbeta": _fbeta,
    "gmean": _gmean_surrogate,
    "balanced_accuracy": _balanced_accuracy,
}


def _check_metric_beta(method: str, metric: str | Metric, beta: float) -> None:
    if metric == "f1" and beta != 1:
        raise HyperparameterError(method, "beta", beta, "1 with metric='f1' (use metric='fbeta' for another beta)")


def _metric_value(method: str, metric: str | Metric, cm: SoftConfusionMatrix, beta: float, eps: float) -> Tensor:
    if isinstance(metric, str):
        return BUILT_IN_METRICS[metric](cm, beta, eps)
    value = metric(cm.tn, cm.fp, cm.fn, cm.tp)
    if not isinstance(value, Tensor) or value.numel() != 1:
        shown = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise UnsupportedInputError(
            method,
            "metric result",
            shown,
            "a metric callable must return a one-element tensor computed from its TN, FP, FN, TP arguments",
        )
    return value.reshape(())


def _metric_loss(
    method: str,
    prediction: Tensor,
    target: Tensor,
    metric: str | Metric,
    L: float,
    beta: float,
    eps: float,
    from_logits: bool,
    check_values: bool,
) -> Tensor:
    p, y = _prepare(method, prediction, target, from_logits, check_values)
    cm = _confusion(_amplified(p, L, from_logits), y)
    return (1 - _metric_value(method, metric, cm, beta, eps)).to(prediction.dtype)


class AnyLoss(nn.Module):
    """``1 - metric(soft confusion matrix of A(p))`` over the batch (Eqs. 1-3).

    ``metric`` is ``"accuracy"``, ``"f1"``, ``"fbeta"`` (with ``beta``), ``"gmean"`` (the
    surrogate TPR x TNR), ``"balanced_accuracy"``, or a callable ``metric(TN, FP, FN, TP)``
    returning a scalar tensor (its arguments are 0-d tensors carrying gradients).
    ``forward(prediction, target)`` takes probabilities (or logits with ``from_logits=True``) and
    0/1 labels of the same shape (up to size-1 dimensions; ``(N, 1)`` and ``(N,)`` agree) and
    returns one scalar: the metric is a property of the whole batch, so there is no
    ``reduction`` (use batches holding both classes; larger ones for imbalanced data).
    """

    @validated("anyloss", AnyLossHyperparameters)
    def __init__(
        self,
        metric: str | Metric = "f1",
        L: float = 73.0,
        beta: float = 1.0,
        eps: float = 1e-5,
        from_logits: bool = False,
        check_values: bool = True,
    ) -> None:
        super().__init__()
        _check_metric_beta("anyloss", metric, beta)
        self.metric = metric
        self.L = L
        self.beta = beta
        self.eps = eps
        self.from_logits = from_logits
        self.check_values = check_values

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        return _metric_loss(
            "anyloss",
            prediction,
            target,
            self.metric,
            self.L,
            self.beta,
            self.eps,
            self.from_logits,
            self.check_values,
        )

    def extra_repr(self) -> str:
        name = self.metric if isinstance(self.metric, str) else getattr(self.metric, "__name__", "callable")
        return f"metric={name!r}, L={self.L}, beta={self.beta}, eps={self.eps}, from_logits={self.from_logits}"


@validated("any_accuracy", AnyAccuracyHyperparameters)
def any_accuracy(
    prediction: Tensor, target: Tensor, L: float = 73.0, from_logits: bool = False, check_values: bool = True
) -> Tensor:
    """``1 - (TP + TN) / N`` of the soft confusion matrix (Table 1, accuracy)."""
    return _metric_loss("any_accuracy", prediction, target, "accuracy", L, 1.0, 0.0, from_logits, check_values)


@validated("any_fbeta", AnyFbetaHyperparameters)
def any_fbeta(
    prediction: Tensor,
    target: Tensor,
    L: float = 73.0,
    beta: float = 1.0,
    eps: float = 1e-5,
    from_logits: bool = False,
    check_values: bool = True,
) -> Tensor:
    """``1 - (1 + b^2) TP / (b^2 y1 + sum A + eps)`` (Table 1, F-beta; F1 for ``beta = 1``)."""
    return _metric_loss("any_fbeta", prediction, target, "fbeta", L, beta, eps, from_logits, check_values)


@validated("any_gmean", AnyRatesHyperparameters)
def any_gmean(
    prediction: Tensor,
    target: Tensor,
    L: float = 73.0,
    eps: float = 1e-5,
    from_logits: bool = False,
    check_values: bool = True,
) -> Tensor:
    """``1 - TP TN / (y1 y0 + eps)``: the official G-mean surrogate TPR x TNR (no square root)."""
    return _metric_loss("any_gmean", prediction, target, "gmean", L, 1.0, eps, from_logits, check_values)


@validated("any_balanced_accuracy", AnyRatesHyperparameters)
def any_balanced_accuracy(
    prediction: Tensor,
    target: Tensor,
    L: float = 73.0,
    eps: float = 1e-5,
    from_logits: bool = False,
    check_values: bool = True,
) -> Tensor:
    """``1 - (y0 TP + y1 TN) / (2 y1 y0 + eps)`` (Table 1, balanced accuracy)."""
    return _metric_loss(
        "any_balanced_accuracy", prediction, target, "balanced_accuracy", L, 1.0, eps, from_logits, check_values
    )


@validated("wbce_any", WBCEAnyHyperparameters)
def wbce_any(
    prediction: Tensor,
    target: Tensor,
    metric: str | Metric = "f1",
    r: float = 0.5,
    L: float | None = None,
    beta: float = 1.0,
    eps: float = 1e-5,
    from_logits: bool = False,
    check_values: bool = True,
) -> Tensor:
    """``(1 - r) WBCE + r (1 - metric)``, the extension repository's ``WBCE*`` losses.

    ``WBCE = -mean(w1 y log(p + eps) + w0 (1 - y) log(1 - p + eps))`` with ``w1 = y0 / N`` and
    ``w0 = y1 / N`` computed on the batch. As in the official ``WBCEFL``/``WBCEGL``/``WBCEBL``,
    the metric term uses the raw probabilities unless ``L`` is given (then ``A(p)``).
    With ``from_logits=True`` and ``eps = 0`` the logs are ``logsigmoid(+-z)``.
    """
    _check_metric_beta("wbce_any", metric, beta)
    z_or_p, y = _prepare("wbce_any", prediction, target, from_logits, check_values)
    p = torch.sigmoid(z_or_p) if from_logits else z_or_p
    count = y.numel()
    positives = y.sum()
    weight_positive = (count - positives) / count
    weight_negative = positives / count
    if from_logits and eps == 0:
        log_p, log_not_p = nn.functional.logsigmoid(z_or_p), nn.functional.logsigmoid(-z_or_p)
    else:
        log_p, log_not_p = torch.log(p + eps), torch.log(1 - p + eps)
    wbce = -(weight_positive * y * log_p + weight_negative * (1 - y) * log_not_p).mean()
    cm = _confusion(p if L is None else approximation(p, L), y)
    value = _metric_value("wbce_any", metric, cm, beta, eps)
    return ((1 - r) * wbce + r * (1 - value)).to(prediction.dtype)
