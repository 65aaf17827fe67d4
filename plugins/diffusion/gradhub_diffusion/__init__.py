"""gradhub-diffusion: the Gaussian-path + denoiser core of diffusion models, as gradhub methods.

After "The Principles of Diffusion Models" (Lai, Song, Kim, Mitsufuji, Ermon; arXiv:2510.21890),
a monograph that presents the variational (DDPM), score (SDE) and flow-matching views over one
backbone: a Gaussian path ``x_t = alpha(t) x_0 + sigma(t) eps`` (data at t = 0 / sigma = 0) and a
denoiser ``D(x, t) ~ E[x_0 | x_t = x]``. The plugin ships that backbone: one schedule
(``gaussian_path``), four training losses and seven samplers over one denoiser contract.

This is the entry module: specs and hyperparameter models only (no torch). The implementation
lives in :mod:`gradhub_diffusion.paths`, :mod:`gradhub_diffusion.losses` and
:mod:`gradhub_diffusion.samplers`; :mod:`gradhub_diffusion.gmm` holds the exact Gaussian-mixture
denoiser the tests and claim checks use.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import Field, Strict

import gradhub
from gradhub.hyperparameters import Flag, Hyperparameters, Real
from gradhub.specs import MethodSpec, Paper

PAPER = Paper(
    title="The Principles of Diffusion Models",
    authors=("Chieh-Hsin Lai", "Yang Song", "Dongjun Kim", "Yuki Mitsufuji", "Stefano Ermon"),
    year=2025,
    arxiv="2510.21890",
    url="https://arxiv.org/abs/2510.21890",
    code="https://github.com/NVlabs/edm",
)

PATH_KINDS = ("vp_linear", "vp_cosine", "ve", "edm", "linear_fm")
PathKind = Literal["vp_linear", "vp_cosine", "ve", "edm", "linear_fm"]
Prediction = Literal["x0", "eps", "score", "v", "velocity"]
Reduction = Literal["mean", "sum", "none"]
Positive = Annotated[float, Strict(), Field(gt=0)]


class NoiseScheduleInstance:
    """A noise-schedule object (``t_min``, ``t_max``, ``alpha(t)``, ``sigma(t)``), e.g. a ``GaussianPath``.

    A pydantic type that accepts such an object as is, so a ``path=`` hyperparameter takes either a
    path kind's name or a configured path, without importing torch here.
    """

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        def check(value: Any) -> Any:
            if isinstance(value, str) or not all(hasattr(value, a) for a in ("t_min", "t_max", "alpha", "sigma")):
                raise ValueError("expected a noise schedule object with t_min, t_max, alpha(t), sigma(t)")
            return value

        return core_schema.no_info_plain_validator_function(check)

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        return {"type": "object", "description": "a GaussianPath (or any noise schedule object)"}


PathChoice = PathKind | NoiseScheduleInstance
PATH_HELP = "the Gaussian path: a kind's name or a GaussianPath instance"
PREDICTION_HELP = "what the model returns: x0 (denoiser, the default contract), eps, score, v or velocity"


class GaussianPathHyperparameters(Hyperparameters):
    """Defaults from the papers the monograph builds on; None picks the kind's default."""

    kind: PathKind = Field("vp_cosine", description="vp_linear | vp_cosine | ve | edm | linear_fm")
    beta_min: Positive = Field(0.1, description="vp_linear: beta(0) = T beta_1 (DDPM: 1000 x 1e-4)")
    beta_max: Positive = Field(20.0, description="vp_linear: beta(1) = T beta_T (DDPM: 1000 x 0.02)")
    cosine_s: Annotated[float, Strict(), Field(ge=0)] = Field(0.008, description="vp_cosine offset s (Nichol)")
    sigma_min: Positive | None = Field(None, description="ve: sigma(0) (default 0.01, Song et al. 2021)")
    sigma_max: Positive | None = Field(None, description="ve: sigma(1) (default 50); edm: t_max (default 80)")


class _LossHyperparameters(Hyperparameters):
    reduction: Reduction = Field("mean", description="over samples; 'none' gives one value per sample")


class DDPMEpsLossHyperparameters(_LossHyperparameters):
    path: PathChoice = Field("vp_linear", description=PATH_HELP)


class DSMLossHyperparameters(_LossHyperparameters):
    path: PathChoice = Field("ve", description=PATH_HELP)


class FlowMatchingLossHyperparameters(_LossHyperparameters):
    path: PathChoice = Field("linear_fm", description=PATH_HELP)


class EDMLossHyperparameters(_LossHyperparameters):
    """EDM's training defaults (Karras et al. 2022, Table 1; NVlabs/edm training/loss.py EDMLoss)."""

    P_mean: Real = Field(-1.2, description="mean of ln sigma")
    P_std: Positive = Field(1.2, description="standard deviation of ln sigma")
    sigma_data: Positive = Field(0.5, description="standard deviation of the data")


class _SamplerHyperparameters(Hyperparameters):
    prediction: Prediction = Field("x0", description=PREDICTION_HELP)
    return_trajectory: Flag = Field(False, description="also return x after every step, stacked (steps + 1, ...)")


class DDPMAncestralHyperparameters(_SamplerHyperparameters):
    path: PathChoice = Field("vp_linear", description=PATH_HELP)
    variance: Literal["beta", "beta_tilde"] = Field(
        "beta", description="step variance: beta_t (DDPM default) or the posterior beta~_t"
    )


class DDIMHyperparameters(_SamplerHyperparameters):
    path: PathChoice = Field("vp_linear", description=PATH_HELP)
    eta: Annotated[float, Strict(), Field(ge=0, le=1)] = Field(
        0.0, description="0: deterministic DDIM; 1: DDPM posterior variance"
    )


class SigmaSamplerHyperparameters(_SamplerHyperparameters):
    """Samplers over a decreasing sigma grid, EDM form (alpha = 1, sigma(t) = t)."""


class HeunEDMHyperparameters(_SamplerHyperparameters):
    """EDM Algorithm 2 (Karras et al. 2022); defaults are the deterministic sampler (Algorithm 1)."""

    S_churn: Annotated[float, Strict(), Field(ge=0)] = Field(0.0, description="total stochasticity")
    S_tmin: Annotated[float, Strict(), Field(ge=0)] = Field(0.0, description="churn only for sigma >= S_tmin")
    S_tmax: Annotated[float, Strict(), Field(ge=0, allow_inf_nan=True)] = Field(
        math.inf, description="churn only for sigma <= S_tmax (inf allowed)"
    )
    S_noise: Annotated[float, Strict(), Field(ge=0)] = Field(1.0, description="scale of the churn noise")


class FMEulerHyperparameters(_SamplerHyperparameters):
    prediction: Prediction = Field("velocity", description=PREDICTION_HELP)
    path: PathChoice = Field("linear_fm", description=PATH_HELP)


_LOSS = dict(
    kind="loss",
    # Training objectives over a model: fn(model, x0, generator=g, **hparams); gradients flow into
    # the model's parameters and the noise and times come from g.
    capabilities={"form": "model", "gradient": "exact", "reductions": ("none", "mean", "sum")},
)
SOLVER_CLAIMS = ("gradhub_diffusion.claims:solver_orders", "gradhub_diffusion.claims:heun_sample_quality")
TRAINING_CLAIM = "gradhub_diffusion.claims:flow_matching_training"  # slow: ~10 s of CPU
_COMMON = dict(paper=PAPER, dtypes=("float32", "float64"))


def _sampler(name: str, summary: str, params: type[Hyperparameters], deterministic: bool = False) -> MethodSpec:
    return MethodSpec(
        name=name,
        kind="sampler",
        summary=summary,
        target=f"gradhub_diffusion.samplers:{name}",
        params=params,
        example=f"gradhub_diffusion.examples:{name}_example",
        tags=("diffusion", "sampling"),
        # An ODE sampler from a given x_T draws nothing: its samples must not depend on the generator.
        capabilities={"stochastic": not deterministic},
        claims=(*SOLVER_CLAIMS, TRAINING_CLAIM) if name == "fm_euler" else SOLVER_CLAIMS,
        **_COMMON,
    )


def _loss(name: str, summary: str, params: type[Hyperparameters]) -> MethodSpec:
    return MethodSpec(
        name=name,
        summary=summary,
        target=f"gradhub_diffusion.losses:{name}",
        params=params,
        example=f"gradhub_diffusion.examples:{name}_example",
        tags=("diffusion", "training"),
        claims=(TRAINING_CLAIM,) if name == "flow_matching_loss" else (),
        **_LOSS,
        **_COMMON,
    )


SPECS = (
    MethodSpec(
        name="gaussian_path",
        kind="schedule",
        summary="Gaussian path x_t = alpha(t) x0 + sigma(t) eps (VP linear/cosine, VE, EDM, flow matching)",
        target="gradhub_diffusion.paths:GaussianPath",
        params=GaussianPathHyperparameters,
        example="gradhub_diffusion.examples:gaussian_path_example",
        tags=("diffusion", "noise-schedule"),
        capabilities={"form": "noise"},
        claims=SOLVER_CLAIMS,
        **_COMMON,
    ),
    _loss(
        "ddpm_eps_loss",
        "DDPM epsilon-prediction loss ||eps - eps_theta(x_t, t)||^2, t uniform",
        DDPMEpsLossHyperparameters,
    ),
    _loss(
        "dsm_loss",
        "Denoising score matching, sigma_t^2-weighted: ||sigma_t s_theta(x_t, t) + eps||^2",
        DSMLossHyperparameters,
    ),
    _loss(
        "edm_loss",
        "EDM loss: lambda(sigma) ||D(x0 + sigma eps; sigma) - x0||^2, ln sigma ~ N(P_mean, P_std^2)",
        EDMLossHyperparameters,
    ),
    _loss(
        "flow_matching_loss",
        "Conditional flow matching: ||u_theta(x_t, t) - (alpha' x0 + sigma' eps)||^2",
        FlowMatchingLossHyperparameters,
    ),
    _sampler(
        "ddpm_ancestral", "DDPM ancestral sampling on any time grid of a Gaussian path", DDPMAncestralHyperparameters
    ),
    _sampler(
        "ddim", "DDIM (eta = 0 deterministic, eta = 1 DDPM-like) on a time grid of a Gaussian path", DDIMHyperparameters
    ),
    _sampler(
        "euler_ode",
        "Euler on the probability-flow ODE dx/dsigma = (x - D(x; sigma)) / sigma",
        SigmaSamplerHyperparameters,
        deterministic=True,
    ),
    _sampler(
        "heun_edm", "EDM Heun sampler (Karras et al. 2022, Algorithm 2) with optional churn", HeunEDMHyperparameters
    ),
    _sampler(
        "dpmpp_2m",
        "DPM-Solver++(2M): multistep second-order data-prediction solver of the PF-ODE",
        SigmaSamplerHyperparameters,
        deterministic=True,
    ),
    _sampler("euler_maruyama_sde", "Euler-Maruyama on the reverse SDE in EDM/VE form", SigmaSamplerHyperparameters),
    _sampler(
        "fm_euler",
        "Euler on the flow-matching ODE dx/dt = u(x, t), t from 1 to 0",
        FMEulerHyperparameters,
        deterministic=True,
    ),
)


@gradhub.hookimpl
def register_methods(register: Callable[[MethodSpec], None]) -> None:
    for spec in SPECS:
        register(spec)
