"""gradhub-refined-schedules: linear decay and gradient-norm-refined schedules (Defazio et al., 2023).

The entry module: specs and hyperparameter models only, no torch and no numpy, so that
listing and inspecting the methods is cheap. Each method is declared once, here (``name=`` in
its spec), and once as an entry point in ``pyproject.toml``; the implementations bind to their
specs (``@validated(LINEAR_DECAY)``) for their names, defaults and bounds. They live in
:mod:`gradhub_refined_schedules.linear_decay` (the worst-case-optimal schedule),
:mod:`gradhub_refined_schedules.refinement` (median filter, closed-form refinement,
``RefinedLR``) and :mod:`gradhub_refined_schedules.recorder` (gradient-norm probe and
the ``GradNormRecorder`` that logs the norms a refinement needs).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, Strict, model_validator

from gradhub.errors import HyperparameterError
from gradhub.exports import lazy_exports
from gradhub.hyperparameters import Hyperparameters, PathOption, Probability, Real
from gradhub.specs import MethodSpec, Paper

PAPER = Paper(
    title="When, Why and How Much? Adaptive Learning Rate Scheduling by Refinement",
    authors=("Aaron Defazio", "Ashok Cutkosky", "Harsh Mehta", "Konstantin Mishchenko"),
    year=2023,
    arxiv="2310.07831",
    url="https://arxiv.org/abs/2310.07831",
    code="https://github.com/facebookresearch/adaptive_scheduling",
)

Steps = Annotated[int, Strict(), Field(ge=1)]
NonNegativeSteps = Annotated[int, Strict(), Field(ge=0)]
PositiveNorm = Annotated[float, Strict(), Field(gt=0)]


def _as_sequence(value: Any) -> Any:
    """Arrays and tensors (anything with ``tolist``) as nested lists, so a 1-D one validates as a tuple."""
    return value.tolist() if hasattr(value, "tolist") and not isinstance(value, (list, tuple)) else value


GradNorms = Annotated[
    tuple[PositiveNorm, ...],
    BeforeValidator(_as_sequence),
    Field(
        min_length=2,
        description="recorded gradient norms G_0..G_{T-1} of run 1 (a 1-D sequence, array or tensor; all > 0)",
    ),
]


class LinearDecayHyperparameters(Hyperparameters):
    """Linear warm-up to the base lr, then linear decay to ``final_frac`` x base lr at ``total_steps``."""

    total_steps: Steps = Field(description="steps of the run; the multiplier reaches final_frac at this step")
    warmup_steps: NonNegativeSteps = Field(0, description="linear warm-up steps (must be < total_steps)")
    final_frac: Probability = Field(0.0, description="final multiplier (fraction of the base lr)")

    @model_validator(mode="after")
    def _decay_has_a_length(self) -> LinearDecayHyperparameters:
        if self.warmup_steps >= self.total_steps:
            raise HyperparameterError(
                LINEAR_DECAY.name,
                "warmup_steps",
                self.warmup_steps,
                f"an integer < total_steps={self.total_steps} (0 for no warm-up)",
            )
        return self


class RefinementHyperparameters(Hyperparameters):
    """The refinement's own knobs (Algorithm 1 of the paper with the official README's median filter)."""

    tau: Real = Field(
        0.1,
        ge=0,
        le=1,
        description="median-filter width as a fraction of T (the official visual.py's sigma2 = 0.1); 0: no filter",
    )
    power: Real = Field(
        2.0,
        gt=0,
        le=16,
        description="weights a_t = G_t^-power: 2 for the L2 norm (SGD), 1 for the L1 norm (Adam variant)",
    )


class RefinedScheduleHyperparameters(RefinementHyperparameters):
    """``refined_lr(optimizer, grad_norms, tau, power, total_steps)``: the recorded norms enter as data."""

    grad_norms: GradNorms
    total_steps: Annotated[int, Strict(), Field(ge=1)] | None = Field(
        None, description="steps of the new run; None: len(grad_norms) (else the schedule is resampled)"
    )


class GradNormHyperparameters(Hyperparameters):
    """Which norm of the gradient to measure."""

    kind: Literal["l2", "l1_adam"] = Field(
        "l2", description="l2: global L2 norm (SGD refinement); l1_adam: global L1 norm (Adam refinement)"
    )


class GradNormRecorderHyperparameters(GradNormHyperparameters):
    """``GradNormRecorder``'s options."""

    sync_every: Annotated[int, Strict(), Field(ge=1), PathOption()] = Field(
        100, description="steps between copies of the on-device buffer to the host"
    )


_TAGS = ("learning-rate-schedule", "linear-decay", "warm-up")

LINEAR_DECAY = MethodSpec(
    name="linear_decay",
    kind="schedule",
    summary="Linear warm-up then linear decay of the learning rate (worst-case-optimal last-iterate schedule)",
    paper=PAPER,
    target="gradhub_refined_schedules.linear_decay",
    params=LinearDecayHyperparameters,
    example="gradhub_refined_schedules.examples:warmup_then_decay_over_40_steps",
    claims=("gradhub_refined_schedules.claims:linear_decay_beats_cosine",),
    tags=_TAGS,
    capabilities={"form": "factory"},
)
REFINED_SCHEDULE = MethodSpec(
    name="refined_schedule",
    kind="schedule",
    summary="LR schedule refined from a previous run's gradient norms: w_t = a_t sum_{p>t} a_p, a = G^-power",
    paper=PAPER,
    target="gradhub_refined_schedules.refinement:refined_lr",
    params=RefinedScheduleHyperparameters,
    example="gradhub_refined_schedules.examples:norms_falling_then_rising",
    claims=("gradhub_refined_schedules.claims:refinement_warms_up",),
    tags=(*_TAGS, "refinement"),
    capabilities={"form": "factory"},
)
GRAD_NORM_RECORDER = MethodSpec(
    name="grad_norm_recorder",
    kind="probe",
    summary="Records the global gradient norm of every training step on the device, for refinement",
    paper=PAPER,
    target="gradhub_refined_schedules.recorder:GradNormRecorder",
    params=GradNormRecorderHyperparameters,
    example="gradhub_refined_schedules.examples:tanh_mlp_trained_for_8_steps",
    claims=("gradhub_refined_schedules.claims:refinement_warms_up",),
    tags=("gradient-norm", "refinement"),
    dtypes=("float32", "float64", "bfloat16"),
    capabilities={"form": "recorder"},
)
GRAD_NORM = MethodSpec(
    name="grad_norm",
    kind="probe",
    summary="Global L2 (or L1) norm of a model's current gradients, as clip_grad_norm_ computes it",
    paper=PAPER,
    target="gradhub_refined_schedules.recorder",
    params=GradNormHyperparameters,
    example="gradhub_refined_schedules.examples:tanh_mlp_after_backward",
    tags=("gradient-norm", "refinement"),
    dtypes=("float32", "float64", "bfloat16"),
)


# No lazy ``linear_decay``: the submodule of that name shadows it (``from gradhub_refined_schedules.linear_decay
# import linear_decay``, or ``gradhub.get``).
_LAZY = {
    "median_filter": "gradhub_refined_schedules.refinement",
    "refine_schedule": "gradhub_refined_schedules.refinement",
    "refined_lr": "gradhub_refined_schedules.refinement",
    "RefinedLR": "gradhub_refined_schedules.refinement",
    GRAD_NORM.name: "gradhub_refined_schedules.recorder",
    "GradNormRecorder": "gradhub_refined_schedules.recorder",
}


__getattr__ = lazy_exports(__name__, _LAZY)
