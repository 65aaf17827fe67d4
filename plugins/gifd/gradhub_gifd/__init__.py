"""gradhub-gifd: GIFD, generative gradient inversion over feature domains (Fang et al., ICCV 2023).

This is the plugin's entry module: specs and hyperparameter models only, no torch, so listing
and inspecting the methods stays cheap. Each method is declared once, here (``name=`` in its
spec), and once as an entry point in ``pyproject.toml``; the implementations bind to the specs.

- ``GIFD`` (attack): :func:`gradhub_gifd.attack.gifd`, the staged feature-domain inversion
- ``GIFD_LATENT`` (attack): :func:`gradhub_gifd.attack.gifd_latent`, its latent-only baseline (stage 0)
- ``GRADIENT_MATCHING_COSINE`` (loss): :func:`gradhub_gifd.matching.cosine_grad_loss`
- ``L1_BALL_PROJECTION`` (solver): :func:`gradhub_gifd.projection.l1_ball_projection` (the plain
  function :func:`gradhub_gifd.projection.project_l1_ball` returns the tensor alone)

Torch-side helpers are importable from here lazily (``from gradhub_gifd import SequentialGenerator``
imports torch only then).
"""

from __future__ import annotations

from itertools import pairwise
from typing import Annotated, Literal

from pydantic import Field, Strict, model_validator

from gradhub.errors import HyperparameterError
from gradhub.exports import lazy_exports
from gradhub.hyperparameters import Flag, Hyperparameters, NonNegative, Real
from gradhub.specs import MethodSpec, Paper

PAPER = Paper(
    title="GIFD: A Generative Gradient Inversion Method with Feature Domain Optimization",
    authors=("Hao Fang", "Bin Chen", "Xuan Wang", "Zhi Wang", "Shu-Tao Xia"),
    year=2023,
    venue="IEEE/CVF International Conference on Computer Vision (ICCV)",
    arxiv="2308.04699",
    url="https://arxiv.org/abs/2308.04699",
    code="https://github.com/ffhibnese/GIFD_Gradient_Inversion_Attack",
)

PositiveInt = Annotated[int, Strict(), Field(ge=1)]
StageIndex = Annotated[int, Strict(), Field(ge=0)]
Positive = Annotated[float, Strict(), Field(gt=0)]
Scale = Real | tuple[Real, ...]


class GIFDLatentHyperparameters(Hyperparameters):
    """The latent-only search (GIFD's stage 0); defaults are the official BigGAN config (``configs_biggan.yml``)."""

    steps_per_stage: PositiveInt = Field(1000, description="Adam iterations per stage (official: 1000)")
    lr: Positive = Field(0.1, description="Adam learning rate at the top of each stage's schedule (official: 0.1)")
    lr_schedule: Literal["ilo_cosine", "constant"] = Field(
        "ilo_cosine", description="ilo_cosine: the ILO/StyleGAN-projector ramp per stage (official); constant: lr"
    )
    restarts: PositiveInt = Field(4, description="random latents, optimised in one batch; per stage the best wins")
    cost: Literal["cosine", "l2"] = Field(
        "cosine", description="gradient matching: one global cosine (official sim_cmpr0) or mean squared l2 per tensor"
    )
    tv_weight: NonNegative = Field(1e-4, description="weight of the anisotropic total variation of the image")
    image_norm_weight: NonNegative = Field(1e-6, description="weight of ||x||_2 / (H W)")
    project_latent_sphere: Flag = Field(
        True, description="after each step of stage 0, rescale every latent to its initial norm (official)"
    )
    mean_std: tuple[Scale, Scale] = Field(
        (0.0, 1.0), description="(mean, std) of the model's input normalisation, scalars or one per channel"
    )
    prior_range: tuple[Real, Real] = Field(
        (-1.0, 1.0), description="(lo, hi): the generator's output range, mapped to pixels in [0, 1] (official: tanh)"
    )
    clamp_images: Flag = Field(True, description="clamp each stage's image to the valid pixel range at its end")

    @model_validator(mode="after")
    def _ranges(self) -> GIFDLatentHyperparameters:
        method = GIFD_LATENT.name if type(self) is GIFDLatentHyperparameters else GIFD.name
        if not self.prior_range[0] < self.prior_range[1]:
            raise HyperparameterError(method, "prior_range", self.prior_range, "(lo, hi) with lo < hi")
        std = self.mean_std[1]
        if any(value <= 0 for value in (std if isinstance(std, tuple) else (std,))):
            raise HyperparameterError(method, "mean_std", self.mean_std, "(mean, std) with every std > 0")
        lengths = {len(value) for value in self.mean_std if isinstance(value, tuple)}
        if len(lengths) > 1 or 0 in lengths:
            raise HyperparameterError(
                method, "mean_std", self.mean_std, "scalars or per-channel tuples of one (non-zero) length"
            )
        return self


class GIFDHyperparameters(GIFDLatentHyperparameters):
    """GIFD's staged search; defaults are the official BigGAN config (``configs_biggan.yml``)."""

    stages: tuple[StageIndex, ...] | None = Field(
        None,
        description="block indices whose input is optimised, in increasing order (0: the latent); None: every block",
    )
    l1_radii: tuple[Positive | None, ...] | None = Field(
        None,
        description="absolute l1 radius of the deviation, one per feature stage (None entry: unbounded); "
        "None: l1_r1 + (k - 1) l1_dr",
    )
    l1_relative: Positive | None = Field(
        None, description="relative radius rho: r = rho ||h_k^0||_1 per sample (for generators of any scale)"
    )
    l1_r1: Positive = Field(2000.0, description="radius of the first feature stage (official BigGAN: 2000)")
    l1_dr: NonNegative = Field(500.0, description="radius increase per further feature stage (official BigGAN: 500)")
    select_by: Literal["grad_loss", "last"] = Field(
        "grad_loss", description="output: the stage with the lowest matching loss (official), or the last stage"
    )

    @model_validator(mode="after")
    def _stages(self) -> GIFDHyperparameters:
        if self.stages is not None and (not self.stages or any(b <= a for a, b in pairwise(self.stages))):
            raise HyperparameterError(
                GIFD.name, "stages", self.stages, "None or a non-empty, strictly increasing tuple of block indices"
            )
        if self.l1_radii is not None and self.l1_relative is not None:
            raise HyperparameterError(
                GIFD.name, "l1_relative", self.l1_relative, "None when l1_radii is given (one way to set the radii)"
            )
        return self


class CosineMatchingHyperparameters(Hyperparameters):
    """No hyperparameters: per-tensor weights are an input (``weights=``), as the gradients are."""


class L1ProjectionHyperparameters(Hyperparameters):
    tol: NonNegative = Field(1e-6, description="converged when the relative KKT residual of the projection is <= tol")
    max_iter: PositiveInt = Field(1, description="iterations; the sort-based projection is exact in one")


_GIFD_INERT = {
    "l1_r1": "the example sets l1_relative, which replaces the absolute radii",
    "l1_dr": "the example sets l1_relative, which replaces the absolute radii",
    "select_by": "every stage of the example lowers the matching loss, so its best stage is its last",
}
_GIFD_CAPABILITIES = {
    # One FL-model forward per Adam step (all restarts in one call), one per stage to score its end
    # point, and one before the first step to check that the generator's image fits the model.
    "model_calls_per_iteration": 2,
    "setup_model_calls": 1,
}
_TAGS = ("gradient-inversion", "federated-learning", "privacy", "gan-prior")

GIFD = MethodSpec(
    name="gifd",
    kind="attack",
    summary="Gradient inversion through a generator, optimising the latent and then each block's input feature",
    paper=PAPER,
    target="gradhub_gifd.attack",
    params=GIFDHyperparameters,
    example="gradhub_gifd.examples:gifd_example",
    claims=("gradhub_gifd.claims:feature_domains_beat_latent",),
    tags=_TAGS,
    inert=_GIFD_INERT,
    capabilities=_GIFD_CAPABILITIES,
)
GIFD_LATENT = MethodSpec(
    name="gifd_latent",
    kind="attack",
    summary="GIFD's latent-only baseline: gradient inversion by Adam on the generator's latent (GIAS-latent-like)",
    paper=PAPER,
    target="gradhub_gifd.attack",
    params=GIFDLatentHyperparameters,
    example="gradhub_gifd.examples:tiny_generator_attack",
    claims=("gradhub_gifd.claims:feature_domains_beat_latent",),
    tags=_TAGS,
    capabilities=_GIFD_CAPABILITIES,
)
GRADIENT_MATCHING_COSINE = MethodSpec(
    name="gradient_matching_cosine",
    kind="loss",
    summary="1 - one global cosine between two lists of parameter gradients (optionally weighted per tensor)",
    paper=PAPER,
    target="gradhub_gifd.matching:cosine_grad_loss",
    params=CosineMatchingHyperparameters,
    example="gradhub_gifd.examples:gradient_pair",
    tags=("gradient-inversion", "gradient-matching"),
    capabilities={"gradient": "exact"},
)
L1_BALL_PROJECTION = MethodSpec(
    name="l1_ball_projection",
    kind="solver",
    summary="Euclidean projection of each sample onto an l1 ball (Duchi et al. 2008, sort-based, batched)",
    paper=PAPER,
    target="gradhub_gifd.projection",
    params=L1ProjectionHyperparameters,
    example="gradhub_gifd.examples:l1_projection_problem",
    tags=("projection", "constraints"),
    inert={"max_iter": "the sort-based projection is exact: it stops after its one iteration whatever max_iter is"},
)
SPECS = (GIFD, GIFD_LATENT, GRADIENT_MATCHING_COSINE, L1_BALL_PROJECTION)

_LAZY = {
    "SequentialGenerator": "gradhub_gifd.prior",
    "GIFDAttack": "gradhub_gifd.attack",
    "GIFDResult": "gradhub_gifd.attack",
    GIFD.name: "gradhub_gifd.attack",
    GIFD_LATENT.name: "gradhub_gifd.attack",
    "infer_labels_idlg": "gradhub_gifd.matching",
    "cosine_grad_loss": "gradhub_gifd.matching",
    "ilo_lr": "gradhub_gifd.matching",
    "project_l1_ball": "gradhub_gifd.projection",
    L1_BALL_PROJECTION.name: "gradhub_gifd.projection",
}


__getattr__ = lazy_exports(__name__, _LAZY)
