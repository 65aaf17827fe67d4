"""gradhub-rmt: Robust Mean Teacher for continual and gradual test-time adaptation (Döbler et al., CVPR 2023).

This is the plugin's entry module: specs and hyperparameter models only, no torch, so listing and
inspecting the methods stays cheap. Each method is declared once, here (``name=`` in its spec), and
once as an entry point in ``pyproject.toml``; the implementations bind to these specs for their
names, defaults and bounds.

* :mod:`gradhub_rmt.losses`: the symmetric cross-entropy between student and teacher
  (``symmetric_cross_entropy``, the loss ``symmetric_ce``) and the multi-view contrastive loss
  (``contrastive_loss``);
* :mod:`gradhub_rmt.ema`: the mean teacher's momentum (``mean_teacher_ema``, a schedule) and its
  update ``teacher <- m teacher + (1 - m) student`` (``ema_update``, one ``torch._foreach`` pass);
* :mod:`gradhub_rmt.rmt`: the test-time adapter ``RMT`` (``forward(x)`` adapts on the batch and
  returns the ensemble logits) and the solver ``rmt``, which runs it over a stream of test batches.

``RMT``, ``RMTResult``, ``StreamPredictions``, ``symmetric_cross_entropy``, ``contrastive_loss`` and
``ema_update`` are importable from here too, loaded on first attribute access (this module stays
torch-free). The solver itself is ``gradhub.get("rmt")`` or ``from gradhub_rmt.rmt import rmt`` (the
name ``rmt`` here is its module).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, Strict

from gradhub.exports import lazy_exports
from gradhub.hyperparameters import Hyperparameters, LearningRate, NonNegative, Probability, Real
from gradhub.specs import MethodSpec, Paper

PAPER = Paper(
    title="Robust Mean Teacher for Continual and Gradual Test-Time Adaptation",
    authors=("Mario Döbler", "Robert A. Marsden", "Bin Yang"),
    year=2023,
    venue="IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR 2023)",
    arxiv="2211.13081",
    url="https://arxiv.org/abs/2211.13081",
    code="https://github.com/mariodoebler/test-time-adaptation",
)

Count = Annotated[int, Strict(), Field(ge=0)]
PositiveCount = Annotated[int, Strict(), Field(ge=1)]

MOMENTUM = Field(
    0.999,
    description="teacher momentum m of teacher <- m teacher + (1 - m) student, in [0, 1] "
    "(official _C.M_TEACHER.MOMENTUM = 0.999; 0 copies the student, 1 freezes the teacher)",
)


class SymmetricCEHyperparameters(Hyperparameters):
    """The symmetric cross-entropy of Eq. 6 (official ``symmetric_entropy`` / ``softmax_entropy``)."""

    reduction: Literal["none", "mean", "sum"] = Field(
        "mean", description="over the batch: 'none' gives the per-sample loss; official: mean"
    )


class MeanTeacherEMAHyperparameters(Hyperparameters):
    """The mean teacher's exponential moving average (Sec. 3.1; official ``update_ema_variables``)."""

    momentum: Probability = MOMENTUM


class RMTAdapterHyperparameters(Hyperparameters):
    """RMT's hyperparameters, official defaults (``conf.py``: ``_C.RMT.*``, ``_C.CONTRAST.*``; CIFAR10-C
    yaml: Adam, lr 1e-3, betas (0.9, 0.999), no weight decay)."""

    lr: LearningRate = Field(1e-3, description="learning rate of the default Adam (betas 0.9, 0.999, no decay)")
    teacher_momentum: Probability = MOMENTUM
    lambda_ce_trg: NonNegative = Field(1.0, description="weight of the symmetric cross-entropy L_sce (Eq. 6)")
    lambda_cont: NonNegative = Field(1.0, description="weight of the contrastive loss L_cont (Eq. 3)")
    lambda_ce_src: NonNegative = Field(
        1.0, description="weight of the cross-entropy on replayed labelled source batches; 0: source-free"
    )
    temperature: Real = Field(0.1, gt=0, description="temperature tau of the contrastive loss (official 0.1)")
    projection_dim: Count = Field(
        128,
        description="output width of the projector Linear-ReLU-Linear of the contrastive loss; 0: no projector "
        "(official DomainNet-126 setting)",
    )
    contrast_mode: Literal["all", "one"] = Field(
        "all", description="anchors of the contrastive loss: every view ('all', official) or the prototype view"
    )
    warmup_samples: Count = Field(
        50000,
        description="source samples of the warm-up (official NUM_SAMPLES_WARM_UP); its steps are this over the "
        "source batch size; 0 or no source_loader: no warm-up",
    )


class RMTHyperparameters(RMTAdapterHyperparameters):
    """The ``rmt`` solver: RMT's hyperparameters and when to stop reading the stream."""

    tol: Real = Field(
        0.0,
        ge=0,
        description="stop once the student-teacher symmetric cross-entropy on a batch is <= tol; "
        "0 (default): adapt on the whole stream (continual TTA never stops)",
    )
    max_iter: PositiveCount = Field(1_000_000, description="most test batches adapted on")


_COMMON = dict(
    paper=PAPER,
    tags=("test-time-adaptation", "mean-teacher", "continual-learning", "domain-shift"),
    claims=("gradhub_rmt.claims:gradual_shift",),
)

SYMMETRIC_CE = MethodSpec(
    name="symmetric_ce",
    kind="loss",
    summary="Symmetric cross-entropy between student and teacher logits (with an augmented student view)",
    target="gradhub_rmt.losses:symmetric_cross_entropy",
    params=SymmetricCEHyperparameters,
    example="gradhub_rmt.examples:student_teacher_logits",
    capabilities={"gradient": "exact", "reductions": ("none", "mean", "sum")},
    **_COMMON,
)
RMT_SPEC = MethodSpec(
    name="rmt",
    kind="solver",
    summary="Robust Mean Teacher test-time adaptation over a stream of test batches (online ensemble predictions)",
    target="gradhub_rmt.rmt",
    params=RMTHyperparameters,
    example="gradhub_rmt.examples:gaussian_stream",
    **_COMMON,
)
MEAN_TEACHER_EMA = MethodSpec(
    name="mean_teacher_ema",
    kind="schedule",
    summary="Mean-teacher momentum m at each step, for teacher <- m teacher + (1 - m) student (ema_update)",
    target="gradhub_rmt.ema",
    params=MeanTeacherEMAHyperparameters,
    example="gradhub_rmt.examples:official_momentum",
    capabilities={"form": "step"},
    **_COMMON,
)

__getattr__ = lazy_exports(
    __name__,
    {
        "RMT": "gradhub_rmt.rmt",
        "RMTResult": "gradhub_rmt.rmt",
        "StreamPredictions": "gradhub_rmt.rmt",
        "symmetric_cross_entropy": "gradhub_rmt.losses",
        "contrastive_loss": "gradhub_rmt.losses",
        "ema_update": "gradhub_rmt.ema",
    },
)
