"""gradhub-fdistill: f-distill (Xu, Nie & Vahdat 2025), one-step diffusion distillation by f-divergence matching.

"One-step Diffusion Models with f-Divergence Distribution Matching", Yilun Xu, Weili Nie, Arash
Vahdat (NVIDIA), 2025, arXiv:2502.15681. The authors' implementation lives in NVIDIA's FastGen
library (``fastgen/methods/distribution_matching/f_distill.py``, on top of its DMD2 model).

This is the entry module: specs and hyperparameter models only (no torch). Each method is declared
once, here (``name=`` in its spec), and once as an entry point in ``pyproject.toml``:

* ``fdistill_loss`` (loss): :class:`gradhub_fdistill.loss.FDistillLoss`, the student's f-divergence
  loss as a pseudo-target MSE, weighted by ``h(r)`` of the discriminator's density ratio, with the
  ratio clipping and the per-noise-level ratio normalisation (a buffer) of the official code;
* ``fdistill_sampler`` (sampler): :func:`gradhub_fdistill.sampler.fdistill_sampler`, generation from
  the distilled student in one step (or a few, re-noising in between).

Also exported, loaded on first access: :func:`~gradhub_fdistill.divergences.f_weight` (the table of
``h(r) = f''(r) r^2``), :class:`~gradhub_fdistill.trainer.FDistillTrainer` (the DMD2-style loop:
student, fake score, discriminator) and :class:`~gradhub_fdistill.trainer.FDistillHistory`.
"""

from __future__ import annotations

import math
import typing
from typing import Annotated, Literal

from gradhub_diffusion import PathChoice, Prediction
from pydantic import Field, Strict, model_validator

from gradhub.errors import HyperparameterError
from gradhub.exports import lazy_exports
from gradhub.hyperparameters import Epsilon, Flag, Hyperparameters, Real
from gradhub.specs import MethodSpec, Paper

__all__ = [
    "DIVERGENCES",
    "FDISTILL_LOSS",
    "FDISTILL_SAMPLER",
    "PAPER",
    "FDistillHistory",
    "FDistillLoss",
    "FDistillLossHyperparameters",
    "FDistillSamplerHyperparameters",
    "FDistillTrainer",
    "f_weight",
]

PAPER = Paper(
    title="One-step Diffusion Models with f-Divergence Distribution Matching",
    authors=("Yilun Xu", "Weili Nie", "Arash Vahdat"),
    year=2025,
    arxiv="2502.15681",
    url="https://arxiv.org/abs/2502.15681",
    code="https://github.com/NVlabs/FastGen",
)

Divergence = Literal["rkl", "kl", "js", "sf", "neyman", "sh", "jf"]
DIVERGENCES: tuple[str, ...] = typing.get_args(Divergence)
"""The f-divergences of the official weighting table, by the official code's names."""

PositiveFinite = Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False)]
FiniteReal = Annotated[Real, Field(allow_inf_nan=False)]


class FDistillLossHyperparameters(Hyperparameters):
    """Defaults of the official FastGen f-distill config (``f_div="js"``, ratio clip [0.1, 20], ratio
    normalisation over 10 time bins with EMA rate 0; the ImageNet-64 runs use an EMA rate of 0.5)."""

    divergence: Divergence = Field(
        "js", description="rkl | kl | js | sf | neyman | sh | jf: the f-divergence, h(r) = f''(r) r^2"
    )
    ratio_clip: tuple[PositiveFinite, PositiveFinite] | None = Field(
        (0.1, 20.0), description="(lower, upper) bounds the density ratio r is clipped to; None: no clipping"
    )
    ratio_normalization: Flag = Field(
        True, description="divide r by the running mean of r in its noise-level bin (a buffer, `bins`)"
    )
    n_bins: Annotated[int, Strict(), Field(ge=1)] = Field(
        10, description="number of equal-width bins of t_range for the ratio normalisation"
    )
    ratio_ema: Annotated[float, Strict(), Field(ge=0, lt=1)] = Field(
        0.0, description="EMA rate of the per-bin mean ratio: bin <- ema bin + (1 - ema) batch mean (0: batch mean)"
    )
    t_range: tuple[FiniteReal, FiniteReal] = Field(
        (0.0, 1.0), description="(t_min, t_max) the bins divide: the noise schedule's time range"
    )
    normalize_h: Flag = Field(True, description="divide h by its (all-reduced) batch mean")
    dmd_normalizer: Flag = Field(
        True, description="DMD's per-sample weight 1 / mean|x - D_teacher(x_t)| (Yin et al. 2024, Eq. 8)"
    )
    eps: Epsilon = Field(1e-6, description="added to the denominators of the three normalisations")

    @model_validator(mode="after")
    def _ordered(self) -> FDistillLossHyperparameters:
        if self.ratio_clip is not None and not self.ratio_clip[0] < self.ratio_clip[1]:
            raise HyperparameterError(
                FDISTILL_LOSS.name, "ratio_clip", self.ratio_clip, "(lower, upper) with 0 < lower < upper, or None"
            )
        if not self.t_range[0] < self.t_range[1]:
            raise HyperparameterError(
                FDISTILL_LOSS.name, "t_range", self.t_range, "(t_min, t_max) of finite numbers with t_min < t_max"
            )
        if not math.isfinite(self.t_range[1] - self.t_range[0]):
            raise HyperparameterError(FDISTILL_LOSS.name, "t_range", self.t_range, "a range of finite width")
        return self


class FDistillSamplerHyperparameters(Hyperparameters):
    """The path the student was distilled on and what it returns."""

    path: PathChoice = Field(
        "edm",
        description="the Gaussian path between generations (a kind's name or a GaussianPath); edm: the paper's "
        "CIFAR-10 and ImageNet-64 teachers",
        validate_default=True,
    )
    prediction: Prediction = Field("x0", description="what the student returns: x0 (the generated sample), eps, ...")


FDISTILL_LOSS = MethodSpec(
    name="fdistill_loss",
    kind="loss",
    summary="f-distill generator loss: pseudo-target MSE with h(r)-weighted teacher - fake score difference",
    paper=PAPER,
    target="gradhub_fdistill.loss:FDistillLoss",
    params=FDistillLossHyperparameters,
    example="gradhub_fdistill.examples:loss_on_noisy_batch",
    tags=("diffusion", "distillation", "one-step", "f-divergence"),
    dtypes=("float32", "float64", "bfloat16"),
    # The backward is the f-divergence gradient through a detached pseudo-target (as VSD/DMD), not the
    # derivative of the returned value; one value for the whole batch (the weights are normalised over it).
    capabilities={"gradient": "surrogate", "reductions": ()},
    claims=("gradhub_fdistill.claims:students_per_divergence",),
)
FDISTILL_SAMPLER = MethodSpec(
    name="fdistill_sampler",
    kind="sampler",
    summary="Generation with a distilled f-distill student: one step x0 = G(x_T, T), or a few with re-noising",
    paper=PAPER,
    target="gradhub_fdistill.sampler",
    params=FDistillSamplerHyperparameters,
    example="gradhub_fdistill.examples:two_step_student",
    tags=("diffusion", "distillation", "one-step", "sampling"),
    dtypes=("float32", "float64"),
    capabilities={"stochastic": True},
    claims=("gradhub_fdistill.claims:students_per_divergence",),
)

__all__ += [FDISTILL_SAMPLER.name]

# The implementations need torch: imported only when asked for.
__getattr__ = lazy_exports(
    __name__,
    {
        "f_weight": "gradhub_fdistill.divergences",
        "FDistillLoss": "gradhub_fdistill.loss",
        FDISTILL_SAMPLER.name: "gradhub_fdistill.sampler",  # the function is named like its method
        "FDistillTrainer": "gradhub_fdistill.trainer",
        "FDistillHistory": "gradhub_fdistill.trainer",
    },
)
