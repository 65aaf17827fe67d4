"""gradhub-diffusion: the Gaussian-path + denoiser core of diffusion models, as gradhub methods.

After "The Principles of Diffusion Models" (Lai, Song, Kim, Mitsufuji, Ermon; arXiv:2510.21890),
a monograph that presents the variational (DDPM), score (SDE) and flow-matching views over one
backbone: a Gaussian path ``x_t = alpha(t) x_0 + sigma(t) eps`` (data at t = 0 / sigma = 0) and a
denoiser ``D(x, t) ~ E[x_0 | x_t = x]``. The plugin ships that backbone: one schedule
(``gaussian_path``), four training losses and seven samplers over one denoiser contract.

This is the entry module: specs and hyperparameter models only (no torch). Each method is
declared once, here (``name=`` in its spec), and once as an entry point in ``pyproject.toml``;
the implementations in :mod:`gradhub_diffusion.paths`, :mod:`gradhub_diffusion.losses` and
:mod:`gradhub_diffusion.samplers` bind to these specs for their names, defaults and bounds.
:mod:`gradhub_diffusion.gmm` holds the exact Gaussian-mixture denoiser the tests and claim checks use.
"""

from __future__ import annotations

import math
import typing
from typing import Annotated, Any, Literal

from pydantic import Field, Strict, model_validator

from gradhub.errors import HyperparameterError
from gradhub.hyperparameters import Hyperparameters, Real, object_or_name
from gradhub.specs import MethodSpec, Paper

PAPER = Paper(
    title="The Principles of Diffusion Models",
    authors=("Chieh-Hsin Lai", "Yang Song", "Dongjun Kim", "Yuki Mitsufuji", "Stefano Ermon"),
    year=2025,
    arxiv="2510.21890",
    url="https://arxiv.org/abs/2510.21890",
    code="https://github.com/NVlabs/edm",
)

PathKind = Literal["vp_linear", "vp_cosine", "ve", "edm", "linear_fm"]
Prediction = Literal["x0", "eps", "score", "v", "velocity"]
PATH_KINDS: tuple[str, ...] = typing.get_args(PathKind)
PREDICTIONS: tuple[str, ...] = typing.get_args(Prediction)
Reduction = Literal["mean", "sum", "none"]
Positive = Annotated[float, Strict(), Field(gt=0)]
NonNegative = Annotated[float, Strict(), Field(ge=0)]

KIND_SIGMAS: dict[str, tuple[float | None, float | None]] = {"ve": (0.01, 50.0), "edm": (None, 80.0)}
"""(sigma_min, sigma_max) where the user gives None: VE (Song et al. 2021), EDM (Karras et al. 2022, Table 1)."""


def kind_sigmas(kind: str, sigma_min: float | None, sigma_max: float | None) -> tuple[Any, Any]:
    """``sigma_min`` and ``sigma_max`` with None replaced by the kind's default (:data:`KIND_SIGMAS`)."""
    low, high = KIND_SIGMAS.get(kind, (None, None))
    return (low if sigma_min is None else sigma_min), (high if sigma_max is None else sigma_max)


PathChoice = object_or_name("gradhub_diffusion.paths:GaussianPath", PathKind)
"""A ``path=`` hyperparameter: validated to a GaussianPath (a kind's name is built with its defaults)."""


def _path(default: str) -> Any:
    return Field(default, description="the Gaussian path: a kind's name or a GaussianPath", validate_default=True)


class GaussianPathHyperparameters(Hyperparameters):
    """Defaults from the papers the monograph builds on; None picks the kind's default (:data:`KIND_SIGMAS`)."""

    kind: PathKind = Field("vp_cosine", description="vp_linear | vp_cosine | ve | edm | linear_fm")
    beta_min: Positive = Field(0.1, description="vp_linear: beta(0) = T beta_1 (DDPM: 1000 x 1e-4)")
    beta_max: Positive = Field(20.0, description="vp_linear: beta(1) = T beta_T (DDPM: 1000 x 0.02)")
    cosine_s: NonNegative = Field(0.008, description="vp_cosine offset s (Nichol & Dhariwal 2021, Eq. 17)")
    sigma_min: Positive | None = Field(None, description=f"ve: sigma(0) (None: {KIND_SIGMAS['ve'][0]})")
    sigma_max: Positive | None = Field(
        None, description=f"ve: sigma(1) (None: {KIND_SIGMAS['ve'][1]}); edm: t_max (None: {KIND_SIGMAS['edm'][1]})"
    )

    @model_validator(mode="after")
    def _ve_range(self) -> GaussianPathHyperparameters:
        low, high = kind_sigmas(self.kind, self.sigma_min, self.sigma_max)
        if self.kind == "ve" and high <= low:
            raise HyperparameterError(GAUSSIAN_PATH.name, "sigma_max", high, f"> sigma_min={low}")
        return self


class _LossHyperparameters(Hyperparameters):
    reduction: Reduction = Field("mean", description="over samples; 'none' gives one value per sample")


class DDPMEpsLossHyperparameters(_LossHyperparameters):
    path: PathChoice = _path("vp_linear")


class DSMLossHyperparameters(_LossHyperparameters):
    path: PathChoice = _path("ve")


class FlowMatchingLossHyperparameters(_LossHyperparameters):
    path: PathChoice = _path("linear_fm")


class EDMLossHyperparameters(_LossHyperparameters):
    """EDM's training defaults (Karras et al. 2022, Table 1; NVlabs/edm training/loss.py EDMLoss)."""

    P_mean: Real = Field(-1.2, description="mean of ln sigma")
    P_std: Positive = Field(1.2, description="standard deviation of ln sigma")
    sigma_data: Positive = Field(0.5, description="standard deviation of the data")


PREDICTION_HELP = "what the model returns: x0 (denoiser, the default contract), eps, score, v or velocity"


class _SamplerHyperparameters(Hyperparameters):
    prediction: Prediction = Field("x0", description=PREDICTION_HELP)


class DDPMAncestralHyperparameters(_SamplerHyperparameters):
    path: PathChoice = _path("vp_linear")
    variance: Literal["beta", "beta_tilde"] = Field(
        "beta", description="step variance: beta_t (DDPM default) or the posterior beta~_t"
    )


class DDIMHyperparameters(_SamplerHyperparameters):
    path: PathChoice = _path("vp_linear")
    eta: Annotated[float, Strict(), Field(ge=0, le=1)] = Field(
        0.0, description="0: deterministic DDIM; 1: DDPM posterior variance"
    )


class SigmaSamplerHyperparameters(_SamplerHyperparameters):
    """Samplers over a decreasing sigma grid, EDM form (alpha = 1, sigma(t) = t)."""


class HeunEDMHyperparameters(_SamplerHyperparameters):
    """EDM Algorithm 2 (Karras et al. 2022); defaults are the deterministic sampler (Algorithm 1)."""

    S_churn: NonNegative = Field(0.0, description="total stochasticity")
    S_tmin: NonNegative = Field(0.0, description="churn only for sigma >= S_tmin")
    S_tmax: Annotated[float, Strict(), Field(ge=0, allow_inf_nan=True)] = Field(
        math.inf, description="churn only for sigma <= S_tmax (inf allowed)"
    )
    S_noise: NonNegative = Field(1.0, description="scale of the churn noise")

    @model_validator(mode="after")
    def _churn_window(self) -> HeunEDMHyperparameters:
        """Algorithm 2 churns only for sigma in [S_tmin, S_tmax]: the window must not be empty."""
        if self.S_tmax < self.S_tmin:
            raise HyperparameterError(HEUN_EDM.name, "S_tmax", self.S_tmax, f">= S_tmin={self.S_tmin}")
        return self


class FMEulerHyperparameters(_SamplerHyperparameters):
    prediction: Prediction = Field("velocity", description=PREDICTION_HELP)
    path: PathChoice = _path("linear_fm")


# Each method lists the claim checks that are about it (a report section is headed by the methods sharing a
# check): the solver orders measure Euler, Heun and DPM++(2M); the sample quality Heun; the training check
# the flow-matching loss and its Euler sampler. The other samplers and the path have no claim check of their own.
SOLVER_ORDERS = "gradhub_diffusion.claims:solver_orders"
HEUN_SAMPLE_QUALITY = "gradhub_diffusion.claims:heun_sample_quality"
TRAINING_CLAIM = "gradhub_diffusion.claims:flow_matching_training"  # slow: ~10 s of CPU
_COMMON = dict(paper=PAPER)
_LOSS = dict(
    kind="loss",
    target="gradhub_diffusion.losses",
    example="gradhub_diffusion.examples:tiny_mlp_on_mixture",
    tags=("diffusion", "training"),
    # Training objectives over a model: fn(model, x0, generator=g, **hparams); gradients flow into
    # the model's parameters and the noise and times come from g.
    capabilities={"form": "model", "gradient": "exact", "reductions": ("none", "mean", "sum")},
    **_COMMON,
)
_SAMPLER = dict(kind="sampler", target="gradhub_diffusion.samplers", tags=("diffusion", "sampling"), **_COMMON)
# An ODE sampler from a given x_T draws nothing: its samples must not depend on the generator.
_ODE, _SDE = {"stochastic": False}, {"stochastic": True}

GAUSSIAN_PATH = MethodSpec(
    name="gaussian_path",
    kind="schedule",
    summary="Gaussian path x_t = alpha(t) x0 + sigma(t) eps (VP linear/cosine, VE, EDM, flow matching)",
    target="gradhub_diffusion.paths:GaussianPath",
    params=GaussianPathHyperparameters,
    example="gradhub_diffusion.examples:vp_cosine_schedule",
    tags=("diffusion", "noise-schedule"),
    capabilities={"form": "noise"},
    **_COMMON,
)
DDPM_EPS_LOSS = MethodSpec(
    name="ddpm_eps_loss",
    summary="DDPM epsilon-prediction loss ||eps - eps_theta(x_t, t)||^2, t uniform",
    params=DDPMEpsLossHyperparameters,
    **_LOSS,
)
DSM_LOSS = MethodSpec(
    name="dsm_loss",
    summary="Denoising score matching, sigma_t^2-weighted: ||sigma_t s_theta(x_t, t) + eps||^2",
    params=DSMLossHyperparameters,
    **_LOSS,
)
EDM_LOSS = MethodSpec(
    name="edm_loss",
    summary="EDM loss: lambda(sigma) ||D(x0 + sigma eps; sigma) - x0||^2, ln sigma ~ N(P_mean, P_std^2)",
    params=EDMLossHyperparameters,
    **_LOSS,
)
FLOW_MATCHING_LOSS = MethodSpec(
    name="flow_matching_loss",
    summary="Conditional flow matching: ||u_theta(x_t, t) - (alpha' x0 + sigma' eps)||^2",
    params=FlowMatchingLossHyperparameters,
    claims=(TRAINING_CLAIM,),
    **_LOSS,
)
DDPM_ANCESTRAL = MethodSpec(
    name="ddpm_ancestral",
    summary="DDPM ancestral sampling on any time grid of a Gaussian path",
    params=DDPMAncestralHyperparameters,
    example="gradhub_diffusion.examples:mixture_on_vp_linear",
    capabilities=_SDE,
    **_SAMPLER,
)
DDIM = MethodSpec(
    name="ddim",
    summary="DDIM (eta = 0 deterministic, eta = 1 DDPM-like) on a time grid of a Gaussian path",
    params=DDIMHyperparameters,
    example="gradhub_diffusion.examples:mixture_on_vp_cosine_half_eta",
    capabilities=_SDE,
    **_SAMPLER,
)
EULER_ODE = MethodSpec(
    name="euler_ode",
    summary="Euler on the probability-flow ODE dx/dsigma = (x - D(x; sigma)) / sigma",
    params=SigmaSamplerHyperparameters,
    example="gradhub_diffusion.examples:mixture_on_edm_sigmas",
    capabilities=_ODE,
    claims=(SOLVER_ORDERS,),
    **_SAMPLER,
)
HEUN_EDM = MethodSpec(
    name="heun_edm",
    summary="EDM Heun sampler (Karras et al. 2022, Algorithm 2) with optional churn",
    params=HeunEDMHyperparameters,
    example="gradhub_diffusion.examples:mixture_with_churn",
    capabilities=_SDE,
    claims=(SOLVER_ORDERS, HEUN_SAMPLE_QUALITY),
    **_SAMPLER,
)
DPMPP_2M = MethodSpec(
    name="dpmpp_2m",
    summary="DPM-Solver++(2M): multistep second-order data-prediction solver of the PF-ODE",
    params=SigmaSamplerHyperparameters,
    example="gradhub_diffusion.examples:mixture_on_edm_sigmas",
    capabilities=_ODE,
    claims=(SOLVER_ORDERS,),
    **_SAMPLER,
)
EULER_MARUYAMA_SDE = MethodSpec(
    name="euler_maruyama_sde",
    summary="Euler-Maruyama on the reverse SDE in EDM/VE form",
    params=SigmaSamplerHyperparameters,
    example="gradhub_diffusion.examples:mixture_on_six_edm_sigmas",
    capabilities=_SDE,
    **_SAMPLER,
)
FM_EULER = MethodSpec(
    name="fm_euler",
    summary="Euler on the flow-matching ODE dx/dt = u(x, t), t from 1 to 0",
    params=FMEulerHyperparameters,
    example="gradhub_diffusion.examples:velocity_on_linear_fm",
    capabilities=_ODE,
    claims=(TRAINING_CLAIM,),
    **_SAMPLER,
)
