"""gradhub-anyloss: AnyLoss (Han, Moniz & Chawla, KDD 2024) as gradhub losses.

This is the plugin's entry module: specs and hyperparameter models only, no torch and no
implementation, so listing and inspecting the methods stays cheap. Each method is declared
once, here (``name=`` in its spec), and once as an entry point in ``pyproject.toml``; the
losses in :mod:`gradhub_anyloss.anyloss` bind to these specs (``@validated(ANY_FBETA)``) for
their names, defaults and bounds.

Every method is a *batch-level* loss: one confusion matrix is built from the whole batch,
so there is no per-sample value and no ``reduction`` argument (``capabilities.reductions``
is empty).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema, model_validator

from gradhub.errors import HyperparameterError
from gradhub.hyperparameters import Epsilon, Flag, Hyperparameters, InputCheck, Real
from gradhub.specs import MethodSpec, Paper

PAPER = Paper(
    title="AnyLoss: Transforming Classification Metrics into Loss Functions",
    authors=("Doheon Han", "Nuno Moniz", "Nitesh V. Chawla"),
    year=2024,
    venue="ACM SIGKDD Conference on Knowledge Discovery and Data Mining (KDD 2024)",
    arxiv="2405.14745",
    url="https://arxiv.org/abs/2405.14745",
    code="https://github.com/doheonhan/anyloss_extension",
)

MetricName = Literal["accuracy", "f1", "fbeta", "gmean", "balanced_accuracy"]
MetricCallable = Annotated[
    Callable[..., Any],
    WithJsonSchema({"description": "a callable metric(TN, FP, FN, TP) -> scalar tensor in [0, 1]"}),
]

# Each hyperparameter's default, bound and meaning, written once and shared by the models below.
METRIC = Field(
    "f1", description="a built-in metric name, or a callable metric(TN, FP, FN, TP) returning a scalar tensor"
)
AMPLIFYING_SCALE = Field(
    73.0,
    gt=0,
    description="amplifying scale L of A(p) = 1 / (1 + exp(-L (p - 0.5))) (Eq. 1); the paper recommends 73",
)
BETA = Field(1.0, gt=0, description="beta of F-beta (recall weighted beta times as much as precision)")
EPS = Field(
    1e-5,
    description="added to the denominators of F-beta, G-mean and balanced accuracy (and inside WBCE's logs), "
    "as the official s",
)
FROM_LOGITS = Field(False, description="inputs are logits z: A(sigmoid(z)) is used (an addition, not in the paper)")
CHECK_VALUES = Field(
    False,
    description="opt-in: check that targets are 0/1 and probabilities in [0, 1] (or logits not NaN), raising "
    "UnsupportedInputError naming the first bad value; read with the finite-loss check (off: two elementwise "
    "passes over the batch saved per call)",
)


def _f1_takes_no_beta(method: str, metric: object, beta: float) -> None:
    """F1 is F-beta at beta = 1 (Table 1): another beta with metric="f1" is a mistake."""
    if metric == "f1" and beta != 1:
        raise HyperparameterError(method, "beta", beta, "1 with metric='f1' (use metric='fbeta' for another beta)")


class AnyLossHyperparameters(Hyperparameters):
    """``AnyLoss``: the metric, the amplifying scale and F-beta's beta."""

    metric: MetricName | MetricCallable = METRIC
    L: Real = AMPLIFYING_SCALE
    beta: Real = BETA
    eps: Epsilon = EPS
    from_logits: Flag = FROM_LOGITS
    check_values: InputCheck = CHECK_VALUES

    @model_validator(mode="after")
    def _metric_and_beta(self) -> AnyLossHyperparameters:
        _f1_takes_no_beta(ANYLOSS.name, self.metric, self.beta)
        return self


class AnyAccuracyHyperparameters(Hyperparameters):
    """``any_accuracy``: (TP + TN) / N has no denominator to protect, hence no eps."""

    L: Real = AMPLIFYING_SCALE
    from_logits: Flag = FROM_LOGITS
    check_values: InputCheck = CHECK_VALUES


class AnyFbetaHyperparameters(Hyperparameters):
    L: Real = AMPLIFYING_SCALE
    beta: Real = BETA
    eps: Epsilon = EPS
    from_logits: Flag = FROM_LOGITS
    check_values: InputCheck = CHECK_VALUES


class AnyRatesHyperparameters(Hyperparameters):
    """``any_gmean`` and ``any_balanced_accuracy``."""

    L: Real = AMPLIFYING_SCALE
    eps: Epsilon = EPS
    from_logits: Flag = FROM_LOGITS
    check_values: InputCheck = CHECK_VALUES


class WBCEAnyHyperparameters(Hyperparameters):
    """``wbce_any``: (1 - r) WBCE + r (1 - metric), the extension repository's combination."""

    metric: MetricName | MetricCallable = METRIC
    r: Real = Field(0.5, ge=0, le=1, description="weight of the metric term (the official code uses r in (0, 1))")
    L: Annotated[Real, Field(gt=0)] | None = Field(
        None,
        description="None: the metric term uses the raw probabilities, as the official WBCE* losses do; "
        "a number: it uses A(p) with this L",
    )
    beta: Real = BETA
    eps: Epsilon = EPS
    from_logits: Flag = FROM_LOGITS
    check_values: InputCheck = CHECK_VALUES

    @model_validator(mode="after")
    def _metric_and_beta(self) -> WBCEAnyHyperparameters:
        _f1_takes_no_beta(WBCE_ANY.name, self.metric, self.beta)
        return self


_COMMON: dict[str, Any] = dict(
    kind="loss",
    paper=PAPER,
    tags=("classification", "imbalanced", "metric-optimization", "confusion-matrix"),
    dtypes=("float32", "float64", "bfloat16", "float16"),
    capabilities={"gradient": "exact", "reductions": ()},
    claims=("gradhub_anyloss.claims:imbalanced_f1_and_balanced_accuracy",),
)

ANYLOSS = MethodSpec(
    name="anyloss",
    summary="1 - metric(soft confusion matrix of amplified probabilities): any confusion-matrix metric as a loss",
    target="gradhub_anyloss.anyloss:AnyLoss",
    params=AnyLossHyperparameters,
    example="gradhub_anyloss.examples:f1_module_on_batch",
    **_COMMON,
)
ANY_ACCURACY = MethodSpec(
    name="any_accuracy",
    summary="AnyLoss for accuracy: 1 - (TP + TN) / N of the soft confusion matrix",
    target="gradhub_anyloss.anyloss",
    params=AnyAccuracyHyperparameters,
    example="gradhub_anyloss.examples:amplified_batch",
    **_COMMON,
)
ANY_FBETA = MethodSpec(
    name="any_fbeta",
    summary="AnyLoss for F-beta: 1 - (1 + b^2) TP / (b^2 (TP + FN) + TP + FP) of the soft confusion matrix",
    target="gradhub_anyloss.anyloss",
    params=AnyFbetaHyperparameters,
    example="gradhub_anyloss.examples:amplified_batch_beta_2",
    **_COMMON,
)
ANY_GMEAN = MethodSpec(
    name="any_gmean",
    summary="AnyLoss for G-mean, with the official surrogate TPR x TNR (the square of G-mean)",
    target="gradhub_anyloss.anyloss",
    params=AnyRatesHyperparameters,
    example="gradhub_anyloss.examples:amplified_batch",
    **_COMMON,
)
ANY_BALANCED_ACCURACY = MethodSpec(
    name="any_balanced_accuracy",
    summary="AnyLoss for balanced accuracy: 1 - (TPR + TNR) / 2 of the soft confusion matrix",
    target="gradhub_anyloss.anyloss",
    params=AnyRatesHyperparameters,
    example="gradhub_anyloss.examples:amplified_batch",
    **_COMMON,
)
WBCE_ANY = MethodSpec(
    name="wbce_any",
    summary="(1 - r) class-weighted BCE + r (1 - metric), from the authors' AnyLoss extension code",
    target="gradhub_anyloss.anyloss",
    params=WBCEAnyHyperparameters,
    example="gradhub_anyloss.examples:raw_batch_balanced_accuracy",
    **{**_COMMON, "claims": ()},
)
