"""gradhub-dale-langevin: a multiplicative (geometric-Brownian-motion) denoising diffusion model.

"Dale meets Langevin: A Multiplicative Denoising Diffusion Model", Nishanth Shetty, Madhava Prasath,
Chandra Sekhar Seelamantula, 2025, arXiv:2510.02730 (no official code). Positive data are noised by a
geometric Brownian motion ``dx = mu x dt + sigma(t) x dW`` (so ``log x_t`` is Gaussian around
``log x_0``); a network learns the score with the multiplicative denoising score-matching loss
(Hyvarinen's non-negative weighting ``x^2``); the reverse-time SDE, discretised in the log domain, is a
multiplicative, exponentiated-gradient update that keeps every sample strictly positive (the
"Dale-Langevin" sampler: signs never flip, as synapses under Dale's law).

This is the entry module: specs and hyperparameter models only (no torch; the implementations are served lazily
by ``__getattr__``). Each method is declared once,
here (``name=`` in its spec), and once as an entry point in ``pyproject.toml``; the implementations in
:mod:`gradhub_dale_langevin.schedule`, :mod:`gradhub_dale_langevin.loss` and
:mod:`gradhub_dale_langevin.sampler` bind to these specs for their names, defaults and bounds.
"""

from __future__ import annotations

import typing
from typing import Annotated, Literal

from pydantic import Field, Strict, model_validator

from gradhub.errors import HyperparameterError
from gradhub.exports import lazy_exports
from gradhub.hyperparameters import Flag, Hyperparameters, InputCheck, Real, object_or_name
from gradhub.specs import MethodSpec, Paper

PAPER = Paper(
    title="Dale meets Langevin: A Multiplicative Denoising Diffusion Model",
    authors=("Nishanth Shetty", "Madhava Prasath", "Chandra Sekhar Seelamantula"),
    year=2025,
    arxiv="2510.02730",
    url="https://arxiv.org/abs/2510.02730",
)

ScheduleKind = Literal["geometric", "linear"]
SCHEDULE_KINDS: tuple[str, ...] = typing.get_args(ScheduleKind)
Weighting = Literal["x2", "x2_sigma2", "none"]
WEIGHTINGS: tuple[str, ...] = typing.get_args(Weighting)
Param = Literal["score", "log_score"]
PARAMS: tuple[str, ...] = typing.get_args(Param)
Reduction = Literal["mean", "sum", "none"]
Positive = Annotated[float, Strict(), Field(gt=0)]

SIGMA_MAX_BOUND = 8.0
"""Largest s(1): with the Ito shift m = -s^2/2, ``log x_t = log x_0 - s^2/2 + s eps`` stays inside float32's
exponent range (|log| < 87) for |eps| <= 4 and data within exp(+-20)."""


ScheduleChoice = object_or_name("gradhub_dale_langevin.schedule:GBMSchedule", ScheduleKind)
"""A ``schedule=`` hyperparameter: validated to a GBMSchedule (a kind's name is built with its defaults)."""

SCHEDULE_HELP = "the GBM forward process: a GBMSchedule, or a kind's name ('geometric', 'linear') for its defaults"
PARAM_HELP = (
    "what the model returns: 'score' = grad_x log p_t(x) in the positive domain, or 'log_score' = "
    "grad_y log p_t(y) at y = log x (= x * score + 1)"
)


class GBMScheduleHyperparameters(Hyperparameters):
    """The log-std s(t) of the GBM marginal runs from sigma_min (t = 0, data) to sigma_max (t = 1, noise)."""

    sigma_min: Positive = Field(0.01, description="s(0): log-std of the marginal at t = 0 (the data end)")
    sigma_max: Annotated[float, Strict(), Field(gt=0, le=SIGMA_MAX_BOUND)] = Field(
        1.0, description=f"s(1): log-std of the marginal at t = 1 (the noise end), <= {SIGMA_MAX_BOUND:g}"
    )
    kind: ScheduleKind = Field(
        "geometric", description="geometric: s(t) = s0 (s1/s0)^t; linear: s(t) = s0 + t (s1 - s0)"
    )
    mu: Real = Field(0.0, description="constant drift mu of dx = mu x dt + sigma(t) x dW")

    @model_validator(mode="after")
    def _increasing(self) -> GBMScheduleHyperparameters:
        if self.sigma_max <= self.sigma_min:
            raise HyperparameterError(GBM_SCHEDULE.name, "sigma_max", self.sigma_max, f"> sigma_min={self.sigma_min}")
        return self


class MultiplicativeDSMHyperparameters(Hyperparameters):
    schedule: ScheduleChoice = Field("geometric", description=SCHEDULE_HELP, validate_default=True)
    weighting: Weighting = Field(
        "x2",
        description="x2: ||x_t (s - grad log p(x_t|x_0))||^2 (Hyvarinen's non-negative weighting); x2_sigma2: "
        "the same times s_t^2 (= the log-domain eps-prediction loss); none: ||s - grad log p(x_t|x_0)||^2",
    )
    param: Param = Field("score", description=PARAM_HELP)
    reduction: Reduction = Field("mean", description="over samples; 'none' gives one value per sample")
    check_values: InputCheck = Field(
        True,
        description="x0 > 0 and finite, t inside (t_min, t_max]: an UnsupportedInputError naming the count and the "
        "smallest value, read with the loss frame's finite-loss check (no extra host sync)",
    )


class GBMSamplerHyperparameters(Hyperparameters):
    schedule: ScheduleChoice = Field("geometric", description=SCHEDULE_HELP, validate_default=True)
    param: Param = Field("score", description=PARAM_HELP)
    final_denoise: Flag = Field(
        True, description="last step: Tweedie in log space, log x0 = log x - m_t + s_t^2 grad_y log p_t, no noise"
    )


SAMPLES_OVER_DATA = "gradhub_dale_langevin.claims:positive_mixture_exact_score"
TRAINED_SAMPLES = "gradhub_dale_langevin.claims:positive_mixture_trained"

GBM_SCHEDULE = MethodSpec(
    name="gbm_schedule",
    kind="schedule",
    summary="GBM forward process dx = mu x dt + sigma(t) x dW: log x_t ~ N(log x_0 + m_t, s_t^2)",
    paper=PAPER,
    target="gradhub_dale_langevin.schedule:GBMSchedule",
    params=GBMScheduleHyperparameters,
    example="gradhub_dale_langevin.examples:geometric_schedule",
    tags=("diffusion", "noise-schedule", "positive-data"),
    # In the log domain the process is a Gaussian path: log x_t - m_t = log x_0 + s_t eps, i.e. alpha = 1, sigma = s_t.
    capabilities={"form": "noise"},
    inert={
        "mu": "it shifts the log-mean m_t = mu t - s_t^2/2, which the centred log's alpha(t), sigma(t) (what the "
        "suite reads) do not carry; tested against the SDE"
    },
    claims=(SAMPLES_OVER_DATA,),
)
MULTIPLICATIVE_DSM = MethodSpec(
    name="multiplicative_dsm",
    kind="loss",
    summary="Multiplicative denoising score matching: E ||x_t (s_theta(x_t, t) - grad log p(x_t | x_0))||^2",
    paper=PAPER,
    target="gradhub_dale_langevin.loss",
    params=MultiplicativeDSMHyperparameters,
    example="gradhub_dale_langevin.examples:tiny_mlp_on_positive_mixture",
    tags=("diffusion", "training", "score-matching", "positive-data"),
    # A training objective over a model: fn(model, x0, generator=g); times and noise come from g.
    capabilities={"form": "model", "gradient": "exact", "reductions": ("none", "mean", "sum")},
    claims=(TRAINED_SAMPLES,),
)
GBM_SAMPLER = MethodSpec(
    name="gbm_sampler",
    kind="sampler",
    summary="Dale-Langevin sampler: reverse GBM SDE in the log domain, x <- x exp(...): samples stay > 0",
    paper=PAPER,
    target="gradhub_dale_langevin.sampler",
    params=GBMSamplerHyperparameters,
    example="gradhub_dale_langevin.examples:exact_score_on_positive_mixture",
    tags=("diffusion", "sampling", "positive-data"),
    capabilities={"stochastic": True},
    claims=(SAMPLES_OVER_DATA, TRAINED_SAMPLES),
)

__getattr__ = lazy_exports(
    __name__,
    {
        "GBMSchedule": "gradhub_dale_langevin.schedule",
        MULTIPLICATIVE_DSM.name: "gradhub_dale_langevin.loss",
        GBM_SAMPLER.name: "gradhub_dale_langevin.sampler",
        "LogNormalMixture": "gradhub_dale_langevin.lognormal",
    },
)
"""``from gradhub_dale_langevin import GBMSchedule, multiplicative_dsm, gbm_sampler`` imports torch only then."""
