"""gradhub-dann: Domain-Adversarial Training of Neural Networks (Ganin et al., JMLR 2016) as gradhub methods.

This is the plugin's entry module: it holds the specs and hyperparameter models only and
imports neither torch nor the implementation, so listing and inspecting methods is cheap.

* :mod:`gradhub_dann.reversal`: the gradient reversal layer R_lambda (``grad_reverse``,
  ``GradientReversal``);
* :mod:`gradhub_dann.schedules`: the paper's lambda_p and learning-rate schedules
  (``dann_lambda``, ``dann_lr``);
* :mod:`gradhub_dann.dann`: the ``DANN`` wrapper (G_f, G_y, G_d), registered as the composite
  layer ``dann`` (built around the user's three modules), and ``train_dann``.

``DANN`` and ``train_dann`` are importable from here too; they are loaded lazily, on
first attribute access, so importing this module stays torch-free.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field, Strict

import gradhub
from gradhub.exports import lazy_exports
from gradhub.hyperparameters import Hyperparameters, NonNegative, Real
from gradhub.specs import MethodSpec, Paper

__all__ = [
    "DANN",
    "PAPER",
    "SPECS",
    "DannLambdaHyperparameters",
    "DannLrHyperparameters",
    "GradReverseHyperparameters",
    "register_methods",
    "train_dann",
]

PAPER = Paper(
    title="Domain-Adversarial Training of Neural Networks",
    authors=(
        "Yaroslav Ganin",
        "Evgeniya Ustinova",
        "Hana Ajakan",
        "Pascal Germain",
        "Hugo Larochelle",
        "François Laviolette",
        "Mario Marchand",
        "Victor Lempitsky",
    ),
    year=2016,
    venue="Journal of Machine Learning Research 17(59)",
    arxiv="1505.07818",
    url="https://jmlr.org/papers/v17/15-239.html",
)

LAMBDA = (
    "gradient scale lambda >= 0: the backward multiplies the incoming gradient by -lambda; "
    "a Python number or a 0-dim floating tensor (a negative lambda would not reverse the gradient)"
)


class GradReverseHyperparameters(Hyperparameters):
    """lambda of the gradient reversal layer R_lambda (Eq. 13-14 of the JMLR paper)."""

    lambd: Real = Field(1.0, ge=0, description=LAMBDA)


class DannLambdaHyperparameters(Hyperparameters):
    """The adaptation-factor schedule lambda_p = max_lambda * (2 / (1 + exp(-gamma p)) - 1) (Sec. 5.2.2)."""

    gamma: Real = Field(10.0, gt=0, description="steepness of the rise from 0 to max_lambda (paper: 10)")
    max_lambda: NonNegative = Field(1.0, description="the value lambda_p tends to as p -> infinity (paper: 1)")


Steps = Annotated[int, Strict(), Field(ge=1, description="number of optimizer steps that make progress p = 1")]


class DannLrHyperparameters(Hyperparameters):
    """The annealing mu_p = mu_0 / (1 + alpha p)^beta (Sec. 5.2.2); mu_0 is the optimizer's lr."""

    total_steps: Steps
    alpha: NonNegative = Field(10.0, description="annealing speed (paper: 10)")
    beta: NonNegative = Field(0.75, description="annealing exponent (paper: 0.75)")


_COMMON: dict[str, Any] = dict(
    paper=PAPER,
    tags=("domain-adaptation", "adversarial", "gradient-reversal"),
    claims=("gradhub_dann.claims:rotated_moons_adaptation",),
)

SPECS = (
    MethodSpec(
        name="grad_reverse",
        kind="layer",
        summary="Gradient reversal R_lambda(x): identity forward, gradient multiplied by -lambda backward",
        target="gradhub_dann.reversal:grad_reverse",
        params=GradReverseHyperparameters,
        example="gradhub_dann.examples:grad_reverse_example",
        dtypes=("float16", "bfloat16", "float32", "float64"),
        # The backward is -lambda * I by design, not the forward's derivative (+I): gradcheck cannot pass.
        capabilities={"gradient": "surrogate"},
        aliases=("revgrad",),
        **_COMMON,
    ),
    MethodSpec(
        name="gradient_reversal",
        kind="layer",
        summary="Gradient reversal layer as an nn.Module whose lambd can be changed every step",
        target="gradhub_dann.reversal:GradientReversal",
        params=GradReverseHyperparameters,
        example="gradhub_dann.examples:gradient_reversal_example",
        dtypes=("float16", "bfloat16", "float32", "float64"),
        capabilities={"gradient": "surrogate"},
        aliases=("grl",),
        **_COMMON,
    ),
    MethodSpec(
        name="dann",
        kind="layer",
        summary="Domain-adversarial network: feature extractor, label head and domain head behind R_lambda",
        target="gradhub_dann.dann:DANN",
        params=GradReverseHyperparameters,
        example="gradhub_dann.examples:dann_example",
        dtypes=("float32", "float64"),
        # A composite layer (built around the user's three modules); its backward reverses the
        # domain head's gradient into the features, so it is not the forward's derivative.
        capabilities={"gradient": "surrogate"},
        **_COMMON,
    ),
    MethodSpec(
        name="dann_lambda",
        kind="schedule",
        summary="DANN adaptation factor lambda_p = max_lambda * (2 / (1 + exp(-gamma p)) - 1) over progress p",
        target="gradhub_dann.schedules:dann_lambda",
        params=DannLambdaHyperparameters,
        example="gradhub_dann.examples:dann_lambda_example",
        capabilities={"form": "progress"},
        **_COMMON,
    ),
    MethodSpec(
        name="dann_lr",
        kind="schedule",
        summary="DANN learning-rate annealing mu_p = mu_0 / (1 + alpha p)^beta as a LambdaLR",
        target="gradhub_dann.schedules:dann_lr",
        params=DannLrHyperparameters,
        example="gradhub_dann.examples:dann_lr_example",
        capabilities={"form": "factory"},
        **_COMMON,
    ),
)


@gradhub.hookimpl
def register_methods(register: Callable[[MethodSpec], None]) -> None:
    for spec in SPECS:
        register(spec)


# DANN and train_dann need torch: imported only when asked for.
__getattr__ = lazy_exports(__name__, dict.fromkeys(("DANN", "train_dann", "TrainingHistory"), "gradhub_dann.dann"))
