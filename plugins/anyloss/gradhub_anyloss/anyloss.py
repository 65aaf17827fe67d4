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

import torch
from torch import Tensor, nn

from gradhub.errors import UnsupportedInputError
from gradhub.kinds.inputs import require_matching_shapes, require_same_device, require_tensor, require_values
from gradhub.kinds.loss import loss
from gradhub_anyloss import (
    AMPLIFYING_SCALE,
    ANY_ACCURACY,
    ANY_BALANCED_ACCURACY,
    ANY_FBETA,
    ANY_GMEAN,
    ANYLOSS,
    CHECK_VALUES,
    WBCE_ANY,
)

Metric = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]


def approximation(p: Tensor, L: float) -> Tensor:
    """The approximation (amplifying) function ``A(p) = 1 / (1 + exp(-L (p - 0.5)))`` (Eq. 1).

    ``A(0.5) = 0.5`` and ``A'(0.5) = L / 4`` for every ``L``; ``torch.sigmoid`` evaluates it
    without overflow for any ``L``.
    """
    return torch.sigmoid(L * (p - 0.5))


class SoftConfusionMatrix:
    """The soft confusion matrix of one batch (Eq. 2), with the class counts it came from.

    ``tp``, ``fp`` and ``positives`` are computed on construction; ``tn``, ``fn`` and ``negatives``
    (one subtraction each) when first read, so a metric that does not use them (F-beta) does not
    pay for them.
    """

    __slots__ = ("_fn", "_negatives", "_tn", "count", "fp", "positives", "tp")

    def __init__(self, tp: Tensor, fp: Tensor, positives: Tensor, count: int) -> None:
        # tp = sum y A, fp = sum (1 - y) A, positives = y1 = sum y, count = N
        self.tp, self.fp, self.positives, self.count = tp, fp, positives, count
        self._negatives: Tensor | None = None
        self._tn: Tensor | None = None
        self._fn: Tensor | None = None

    @property
    def negatives(self) -> Tensor:
        """``y0 = N - y1``."""
        if self._negatives is None:
            self._negatives = self.count - self.positives
        return self._negatives

    @property
    def tn(self) -> Tensor:
        """``TN = y0 - FP``."""
        if self._tn is None:
            self._tn = self.negatives - self.fp
        return self._tn

    @property
    def fn(self) -> Tensor:
        """``FN = y1 - TP``."""
        if self._fn is None:
            self._fn = self.positives - self.tp
        return self._fn

    def __repr__(self) -> str:
        return f"SoftConfusionMatrix(tn={self.tn}, fp={self.fp}, fn={self.fn}, tp={self.tp}, count={self.count})"


def _confusion(scores: Tensor, y: Tensor) -> SoftConfusionMatrix:
    """Eq. 2 over flattened ``scores`` (``A(p)``, or raw ``p`` for ``wbce_any``) and labels ``y``:
    ``TP = sum y A``, ``FP = sum (1 - y) A``, ``FN = y1 - TP``, ``TN = y0 - FP``."""
    return SoftConfusionMatrix(tp=(y * scores).sum(), fp=((1 - y) * scores).sum(), positives=y.sum(), count=y.numel())


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


def _metric_value(method: str, metric: str | Metric, cm: SoftConfusionMatrix, beta: float, eps: float) -> Tensor:
    if isinstance(metric, str):
        return BUILT_IN_METRICS[metric](cm, beta, eps)
    value = metric(cm.tn, cm.fp, cm.fn, cm.tp)
    if not isinstance(value, Tensor) or value.numel() != 1:
        shown = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        allowed = "a metric callable must return a one-element tensor computed from its TN, FP, FN, TP arguments"
        raise UnsupportedInputError(method, "metric result", shown, allowed)
    return value.reshape(())


# --- inputs: one batch, pooled into one confusion matrix -------------------------------------

_PREDICTION_VALUES = {
    False: "probabilities must lie in [0, 1] (pass from_logits=True for logits)",
    True: "logits must not be NaN",
}


def _batch(
    method: str, prediction: Tensor, target: Tensor, from_logits: bool, check_values: bool
) -> tuple[Tensor, Tensor]:
    """``prediction`` and ``target`` checked and flattened, in float32 at least (``exp(-73 / 2)``
    underflows in float16); their values only with ``check_values`` (in a loss, deferred to the loss frame's
    one host read; in ``soft_confusion_matrix``, one read)."""
    usual = (
        isinstance(prediction, Tensor)
        and isinstance(target, Tensor)
        and prediction.shape == target.shape
        and prediction.device == target.device
        and prediction.is_floating_point()
        and not target.is_complex()
        and prediction.numel() > 0
    )
    if not usual:  # the checks one by one, for the error that says what is wrong (or (N, 1) with (N,))
        kind = "logits" if from_logits else "probabilities"
        require_tensor(method, "prediction", prediction, nonempty=True, what=f"of {kind}")
        require_tensor(method, "target", target, dtype="real", what="of 0/1 labels")
        require_same_device(method, prediction=prediction, target=target)
        require_matching_shapes(method, squeeze=True, prediction=prediction, target=target)
    if check_values:
        not_binary = (target != 0) & (target != 1)
        require_values(method, "target", not_binary, target, "target must hold binary labels 0 and 1")
        outside = prediction.isnan() if from_logits else ~((prediction >= 0) & (prediction <= 1))
        require_values(method, "prediction", outside, prediction, _PREDICTION_VALUES[from_logits])
    dtype = torch.promote_types(prediction.dtype, torch.float32)
    return _flat(prediction, dtype), _flat(target, dtype)


def _flat(value: Tensor, dtype: torch.dtype) -> Tensor:
    """``value.reshape(-1).to(dtype)`` without the calls that would change nothing (a small batch's
    loss is dominated by per-op dispatch)."""
    if value.dim() != 1:
        value = value.reshape(-1)
    return value if value.dtype == dtype else value.to(dtype)


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
    """``1 - metric`` of the soft confusion matrix of ``A(p)`` (Eq. 1-3), in the prediction's dtype."""
    p, y = _batch(method, prediction, target, from_logits, check_values)
    cm = _confusion(approximation(torch.sigmoid(p) if from_logits else p, L), y)
    value = 1 - _metric_value(method, metric, cm, beta, eps)
    return value if value.dtype == prediction.dtype else value.to(prediction.dtype)


def soft_confusion_matrix(
    prediction: Tensor,
    target: Tensor,
    L: float = AMPLIFYING_SCALE.default,
    from_logits: bool = False,
    check_values: bool = CHECK_VALUES.default,
) -> SoftConfusionMatrix:
    """The soft confusion matrix of a batch (Eq. 2) of ``A(p)``, in float32 for half inputs
    (``check_values=True``: labels and probabilities checked, as in the losses)."""
    p, y = _batch("soft_confusion_matrix", prediction, target, from_logits, check_values)
    return _confusion(approximation(torch.sigmoid(p) if from_logits else p, L), y)


# --- the methods ---------------------------------------------------------------------------


@loss(ANYLOSS)
class AnyLoss(nn.Module):
    """``1 - metric(soft confusion matrix of A(p))`` over the batch (Eqs. 1-3).

    ``metric`` is ``"accuracy"``, ``"f1"``, ``"fbeta"`` (with ``beta``), ``"gmean"`` (the
    surrogate TPR x TNR), ``"balanced_accuracy"``, or a callable ``metric(TN, FP, FN, TP)``
    returning a scalar tensor (its arguments are 0-d tensors carrying gradients).
    ``forward(prediction, target)`` takes probabilities (or logits with ``from_logits=True``) and
    0/1 labels of the same shape (up to size-1 dimensions; ``(N, 1)`` and ``(N,)`` agree) and
    returns one scalar: the metric is a property of the whole batch, so there is no
    ``reduction`` (use batches holding both classes; larger ones for imbalanced data).
    ``check_values=True`` checks that labels are 0/1 and probabilities in [0, 1] (logits not NaN),
    one host sync each, so it is off by default; shapes, dtypes and devices are always checked.
    """

    def __init__(
        self, *, metric: str | Metric, L: float, beta: float, eps: float, from_logits: bool, check_values: bool
    ) -> None:
        super().__init__()
        self.metric, self.L, self.beta, self.eps = metric, L, beta, eps
        self.from_logits, self.check_values = from_logits, check_values

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        hyperparameters = self.metric, self.L, self.beta, self.eps, self.from_logits, self.check_values
        return _metric_loss(ANYLOSS.name, prediction, target, *hyperparameters)

    def extra_repr(self) -> str:
        name = self.metric if isinstance(self.metric, str) else getattr(self.metric, "__name__", "callable")
        return f"metric={name!r}, L={self.L}, beta={self.beta}, eps={self.eps}, from_logits={self.from_logits}"


@loss(ANY_ACCURACY)
def any_accuracy(prediction: Tensor, target: Tensor, *, L: float, from_logits: bool, check_values: bool) -> Tensor:
    """``1 - (TP + TN) / N`` of the soft confusion matrix (Table 1, accuracy)."""
    return _metric_loss(ANY_ACCURACY.name, prediction, target, "accuracy", L, 1.0, 0.0, from_logits, check_values)


@loss(ANY_FBETA)
def any_fbeta(
    prediction: Tensor, target: Tensor, *, L: float, beta: float, eps: float, from_logits: bool, check_values: bool
) -> Tensor:
    """``1 - (1 + b^2) TP / (b^2 y1 + sum A + eps)`` (Table 1, F-beta; F1 for ``beta = 1``)."""
    return _metric_loss(ANY_FBETA.name, prediction, target, "fbeta", L, beta, eps, from_logits, check_values)


@loss(ANY_GMEAN)
def any_gmean(
    prediction: Tensor, target: Tensor, *, L: float, eps: float, from_logits: bool, check_values: bool
) -> Tensor:
    """``1 - TP TN / (y1 y0 + eps)``: the official G-mean surrogate TPR x TNR (no square root)."""
    return _metric_loss(ANY_GMEAN.name, prediction, target, "gmean", L, 1.0, eps, from_logits, check_values)


@loss(ANY_BALANCED_ACCURACY)
def any_balanced_accuracy(
    prediction: Tensor, target: Tensor, *, L: float, eps: float, from_logits: bool, check_values: bool
) -> Tensor:
    """``1 - (y0 TP + y1 TN) / (2 y1 y0 + eps)`` (Table 1, balanced accuracy)."""
    return _metric_loss(
        ANY_BALANCED_ACCURACY.name, prediction, target, "balanced_accuracy", L, 1.0, eps, from_logits, check_values
    )


@loss(WBCE_ANY)
def wbce_any(
    prediction: Tensor,
    target: Tensor,
    *,
    metric: str | Metric,
    r: float,
    L: float | None,
    beta: float,
    eps: float,
    from_logits: bool,
    check_values: bool,
) -> Tensor:
    """``(1 - r) WBCE + r (1 - metric)``, the extension repository's ``WBCE*`` losses.

    ``WBCE = -mean(w1 y log(p + eps) + w0 (1 - y) log(1 - p + eps))`` with ``w1 = y0 / N`` and
    ``w0 = y1 / N`` computed on the batch. As in the official ``WBCEFL``/``WBCEGL``/``WBCEBL``,
    the metric term uses the raw probabilities unless ``L`` is given (then ``A(p)``).
    With ``from_logits=True`` and ``eps = 0`` the logs are ``logsigmoid(+-z)``.
    """
    z_or_p, y = _batch(WBCE_ANY.name, prediction, target, from_logits, check_values)
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
    value = _metric_value(WBCE_ANY.name, metric, cm, beta, eps)
    return ((1 - r) * wbce + r * (1 - value)).to(prediction.dtype)


# The public names, from the objects themselves: each method's name is written once, in its spec.
__all__ = [
    exported.__name__
    for exported in (
        AnyLoss,
        SoftConfusionMatrix,
        any_accuracy,
        any_balanced_accuracy,
        any_fbeta,
        any_gmean,
        approximation,
        soft_confusion_matrix,
        wbce_any,
    )
]
