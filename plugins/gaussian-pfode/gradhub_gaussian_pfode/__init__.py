"""gradhub-gaussian-pfode: the closed-form Gaussian probability-flow ODE and analytical step skipping.

After "Diffusion Models Generate Images Like Painters: an Analytical Theory of Outline First,
Details Later" (Binxu Wang, John J. Vastola, 2023, arXiv:2303.02490; extended as "The Unreasonable
Effectiveness of Gaussian Score Approximation for Diffusion Models and its Applications", TMLR 2024,
arXiv:2412.09726). For data ``x0 ~ N(mu, Sigma)`` the probability-flow ODE of a diffusion model has
a closed-form solution; the early, high-noise part of a learned model's trajectory follows it
closely, so those steps can be skipped analytically ("teleported") and a numerical sampler started
later.

This is the entry module: specs and hyperparameter models only (no torch). Each method is declared
once, here (``name=`` in its spec), and once as an entry point in ``pyproject.toml``:

* ``gaussian_pfode`` (solver): :func:`gradhub_gaussian_pfode.gaussian.gaussian_pfode`, the flow map
  ``x(sigma_T) -> x(sigma)`` of a :class:`gradhub_gaussian_pfode.gaussian.GaussianPFODE` under the
  core's solver frame. The closed form needs no iteration: the result has ``iterations = 0`` and its
  residual is the defect of the flow's conserved (whitened) coordinates, a check of round-off.
  :class:`~gradhub_gaussian_pfode.gaussian.GaussianPFODE` itself (``fit``, ``solve``, ``score``,
  ``denoise``, ``trajectory``) is importable from here lazily.
* ``gaussian_skip_sampler`` (sampler): :func:`gradhub_gaussian_pfode.hybrid.gaussian_skip_sampler`,
  the jump from ``sigmas[0]`` to ``sigmas[skip_to_index]`` with the closed form, then any gradhub
  sigma-grid sampler (EDM's Heun by default) over the rest of the grid.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field, PlainValidator, Strict

from gradhub.exports import lazy_exports
from gradhub.hyperparameters import Hyperparameters, Real
from gradhub.specs import MethodSpec, Paper

PAPER = Paper(
    title="Diffusion Models Generate Images Like Painters: an Analytical Theory of Outline First, Details Later",
    authors=("Binxu Wang", "John J. Vastola"),
    year=2023,
    arxiv="2303.02490",
    url="https://arxiv.org/abs/2303.02490",
    code="https://github.com/Animadversio/GaussianTeleportationDiffusion",
)

Count = Annotated[int, Strict(), Field(ge=0)]

FRAME_KEYWORDS = ("generator", "progress", "return_trajectory", "enable_grad", "check_finite")
"""Keywords the skip sampler passes on to the sampler it hands over to itself (not allowed in sampler_options)."""


class SigmaGridSampler:
    """A sampler function ``sampler(model, x_T, sigmas, *, generator, progress, ...) -> SampleResult`` (EDM form):
    its name in error messages and the JSON schema; :data:`SamplerChoice` does the checking."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.any_schema()

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        return {"type": "string", "description": "a gradhub sampler's name, or a sampler function"}


def _as_sampler(value: Any) -> str | Callable[..., Any]:
    """A registered sampler's name (checked against the registry's metadata, torch-free) or a callable."""
    if isinstance(value, str):
        import gradhub

        try:
            spec = gradhub.spec(value)
        except Exception as error:
            raise ValueError(f"no installed method is named {value!r}: {error}") from None
        if spec.kind.value != "sampler":
            raise ValueError(f"{value!r} is a {spec.kind.value}, not a sampler")
        return value
    if callable(value) and not isinstance(value, type):
        return value
    raise ValueError("expected a sampler's name (a string) or a sampler function")


SamplerChoice = Annotated[
    str | SigmaGridSampler, PlainValidator(_as_sampler, json_schema_input_type=str | SigmaGridSampler)
]
"""``sampler=``: a gradhub sampler's name (checked to be a sampler) or a sampler function."""


def _as_options(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise ValueError("expected a dict of keyword arguments for the hand-over sampler")
    reserved = sorted(set(value) & set(FRAME_KEYWORDS))
    if reserved:
        raise ValueError(f"{reserved} are passed on by the skip sampler itself; give them to it directly")
    return dict(value)


SamplerOptions = Annotated[dict[str, Any] | None, PlainValidator(_as_options, json_schema_input_type=dict | None)]


class GaussianPFODEHyperparameters(Hyperparameters):
    """The solver frame's two: the closed form takes no iteration, so they only decide ``converged``."""

    tol: Real = Field(
        1e-4,
        ge=0,
        description="converged when the answer's conserved (whitened) coordinates match x_T's to this relative "
        "error: a round-off check (about 1e-7 in float32, 1e-16 in float64)",
    )
    max_iter: Count = Field(0, description="iterations allowed; the closed form takes none")


class GaussianSkipSamplerHyperparameters(Hyperparameters):
    """Where to hand over from the closed form to the numerical sampler, and to which."""

    skip_to_index: Count = Field(
        description="grid index the Gaussian flow jumps to (0: no jump, the plain sampler; len(sigmas) - 1: all "
        "analytic). The paper skips roughly the first 20-40% of an EDM grid",
    )
    sampler: SamplerChoice = Field(
        "heun_edm",
        description="the sampler for the rest of the grid: a gradhub sigma-grid sampler's name (EDM form: "
        "heun_edm, euler_ode, dpmpp_2m, euler_maruyama_sde) or such a function",
    )
    sampler_options: SamplerOptions = Field(
        None, description="keyword arguments for that sampler (e.g. {'S_churn': 10.0}, {'prediction': 'eps'})"
    )


_CLAIMS = (
    "gradhub_gaussian_pfode.claims:closed_form_matches_ode",
    "gradhub_gaussian_pfode.claims:outline_first",
    "gradhub_gaussian_pfode.claims:step_skipping",
)

GAUSSIAN_PFODE = MethodSpec(
    name="gaussian_pfode",
    kind="solver",
    summary="Closed-form probability-flow ODE flow map of a Gaussian (full, low-rank or diagonal; VE/EDM or VP)",
    paper=PAPER,
    target="gradhub_gaussian_pfode.gaussian",
    params=GaussianPFODEHyperparameters,
    example="gradhub_gaussian_pfode.examples:flow_to_half",
    claims=_CLAIMS[:2],
    dtypes=("float32", "float64"),
    tags=("diffusion", "probability-flow-ode", "closed-form", "gaussian"),
    inert={
        "tol": "the closed form's residual is round-off (about 1e-16 in float64), below every tol the check tries",
        "max_iter": "the closed form takes no iteration, whatever the limit",
    },
)
GAUSSIAN_SKIP_SAMPLER = MethodSpec(
    name="gaussian_skip_sampler",
    kind="sampler",
    summary="Skip the early diffusion steps with the Gaussian closed form, then hand over to any sigma-grid sampler",
    paper=PAPER,
    target="gradhub_gaussian_pfode.hybrid",
    params=GaussianSkipSamplerHyperparameters,
    example="gradhub_gaussian_pfode.examples:mixture_skip_two",
    claims=_CLAIMS[2:],
    dtypes=("float32", "float64"),
    # Deterministic with the default hand-over (EDM's Heun without churn): the generator is passed on to
    # the hand-over sampler, which draws from it only when it is stochastic (heun_edm with S_churn > 0).
    capabilities={"stochastic": False},
    tags=("diffusion", "sampling", "acceleration", "gaussian"),
)

__getattr__ = lazy_exports(
    __name__,
    {
        "GaussianPFODE": "gradhub_gaussian_pfode.gaussian",
        GAUSSIAN_PFODE.name: "gradhub_gaussian_pfode.gaussian",  # the functions are named like their methods
        GAUSSIAN_SKIP_SAMPLER.name: "gradhub_gaussian_pfode.hybrid",
    },
)
