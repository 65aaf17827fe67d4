"""gradhub-normalized-lrgd: Normalized LR+GD, LR+GD and the batch perceptron (Tyurin, AAAI 2025).

This is the plugin's entry module: specs and hyperparameter models only, no torch, so
listing and inspecting the methods stays cheap; the registry reads its module-level
``MethodSpec`` objects (a method's name is written once, in its spec). The optimizer lives in
:mod:`gradhub_normalized_lrgd.optimizer`, the two solvers (and the logistic loss, its
gradient and the single-step updates they share) in :mod:`gradhub_normalized_lrgd.solvers`.

Reading chosen for "Normalized LR+GD" (the paper's method): ``w <- w - lr * grad f(w) / f(w)``
with ``f`` the mean logistic loss, i.e. GD with the step size ``lr / f(w)`` that grows as
the loss falls. The gradient-norm normalisation ``w <- w - lr * grad f / ||grad f||`` is
offered as ``normalize="grad_norm"`` for comparison; it is not the paper's method.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, Strict

from gradhub.exports import lazy_exports
from gradhub.hyperparameters import (
    Epsilon,
    Flag,
    Foreach,
    Hyperparameters,
    KeywordOnly,
    LearningRate,
    Probability,
    Real,
)
from gradhub.specs import MethodSpec, Paper

PAPER = Paper(
    title="From Logistic Regression to the Perceptron Algorithm: Exploring Gradient Descent with Large Step Sizes",
    authors=("Alexander Tyurin",),
    year=2025,
    venue="AAAI Conference on Artificial Intelligence (AAAI)",
    arxiv="2412.08424",
    url="https://arxiv.org/abs/2412.08424",
)

PositiveCount = Annotated[int, Strict(), Field(ge=1)]

TOL = (
    "stop when the fraction of training points with y_i <w, x_i> <= 0 (misclassified or on the boundary) "
    "is <= tol; 0 means every point strictly on its side (the paper's 'classification problem solved')"
)
MAX_ITER = "maximum number of iterations"


class NormalizedLRGDHyperparameters(Hyperparameters):
    """Normalized LR+GD's hyperparameters (the paper fixes none but the step size; lr=1 is our choice)."""

    lr: LearningRate = Field(1.0, description="step size gamma of w <- w - gamma * grad f / f")
    normalize: Literal["loss", "grad_norm"] = Field(
        "loss", description="'loss': divide by f(w) (the paper's method); 'grad_norm': by ||grad f|| (comparison)"
    )
    eps: Epsilon = Field(0.0, description="added to the normaliser f(w) (or ||grad f||)")
    foreach: Foreach = None
    reduce_loss: Annotated[Flag | None, KeywordOnly()] = Field(
        None,
        description=(
            "average the closure's loss over the default process group before dividing by it (data parallel: "
            "f is the global loss); None: when torch.distributed is initialized"
        ),
    )


class LRGDHyperparameters(Hyperparameters):
    """Plain LR+GD: gradient descent on the mean logistic loss with a constant step size."""

    lr: Real = Field(1.0, gt=0, description="step size gamma (the paper studies gamma -> infinity)")
    tol: Annotated[float, Strict(), Field(ge=0, lt=1)] = Field(0.0, description=TOL)
    max_iter: PositiveCount = Field(1000, description=MAX_ITER)


class BatchPerceptronHyperparameters(Hyperparameters):
    """The batch perceptron, the gamma -> infinity limit of LR+GD (rescaled by 1/gamma)."""

    tie: Probability = Field(0.5, description="weight of a point with margin exactly 0 (the limit of sigmoid(0))")
    tol: Annotated[float, Strict(), Field(ge=0, lt=1)] = Field(0.0, description=TOL)
    max_iter: PositiveCount = Field(1000, description=MAX_ITER)


_CLAIMS = (
    "gradhub_normalized_lrgd.claims:perceptron_limit",
    "gradhub_normalized_lrgd.claims:large_steps_loss_unreliable",
    "gradhub_normalized_lrgd.claims:normalized_faster",
)
_TAGS = ("logistic-regression", "perceptron", "large-step-size", "separable-data")

NORMALIZED_LRGD = MethodSpec(
    name="normalized_lrgd",
    kind="optimizer",
    summary="Normalized LR+GD: gradient descent with step size lr / f(w) (needs a closure returning f)",
    paper=PAPER,
    target="gradhub_normalized_lrgd.optimizer:NormalizedLRGD",
    params=NormalizedLRGDHyperparameters,
    example="gradhub_normalized_lrgd.examples:separable_linear_classifier",
    claims=_CLAIMS,
    tags=_TAGS,
    capabilities={
        "supports_foreach": True,
        "requires_closure": True,
        "fsdp2": {"status": "tested"},
        "compile": {"status": "tested"},
    },
)
LR_GD = MethodSpec(
    name="lr_gd",
    kind="solver",
    summary="LR+GD: constant-step gradient descent on the mean logistic loss until the data are separated",
    paper=PAPER,
    target="gradhub_normalized_lrgd.solvers",
    params=LRGDHyperparameters,
    example="gradhub_normalized_lrgd.examples:separable_problem_with_large_step",
    claims=_CLAIMS,
    tags=_TAGS,
)
BATCH_PERCEPTRON = MethodSpec(
    name="batch_perceptron",
    kind="solver",
    summary="Batch perceptron: w <- w + mean of y_i x_i over misclassified points (ties weighted 1/2)",
    paper=PAPER,
    target="gradhub_normalized_lrgd.solvers",
    params=BatchPerceptronHyperparameters,
    example="gradhub_normalized_lrgd.examples:separable_problem",
    claims=_CLAIMS,
    tags=_TAGS,
)

__getattr__ = lazy_exports(
    __name__,
    {
        "NormalizedLRGD": "gradhub_normalized_lrgd.optimizer",
        LR_GD.name: "gradhub_normalized_lrgd.solvers",
        BATCH_PERCEPTRON.name: "gradhub_normalized_lrgd.solvers",
        "logistic_loss": "gradhub_normalized_lrgd.solvers",
    },
)
