"""gradhub-tract: TrAct (Petersen, Borgelt & Ermon, NeurIPS 2024) as gradhub layers.

This is the plugin's entry module: specs and hyperparameter models only, no torch, so listing
and inspecting the methods is cheap. Each method is declared once, here (``name=`` in its spec),
and once as an entry point in ``pyproject.toml``; the implementations in
:mod:`gradhub_tract.layers` bind to these specs (``@validated(TRACT_LINEAR)``) for their names,
defaults and bounds. The math (the preconditioned weight gradient and the two autograd
Functions) is in :mod:`gradhub_tract.functional`.

* ``tract``: ``tract(layer, l=0.1)`` (also ``TrAct(layer, l=0.1)``, the official name) turns an
  already initialised ``nn.Linear`` or ``nn.Conv2d`` into a TrAct layer that shares its Parameters;
* ``tract_linear``: ``TrActLinear``, a drop-in ``nn.Linear`` subclass;
* ``tract_conv2d``: ``TrActConv2d``, a drop-in ``nn.Conv2d`` subclass.

Only the weight gradient differs from the plain layer: G_W (A^T A / N + l I)^{-1}, with A the
layer's N x n input (patch) matrix. Readings where the paper leaves a choice (settled from the
official code, github.com/Felix-Petersen/tract ``src/tract.py``) are listed in the README.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, Strict, model_validator

from gradhub import hyperparameters as core
from gradhub.errors import HyperparameterError
from gradhub.exports import lazy_exports
from gradhub.hyperparameters import Hyperparameters, KeywordOnly, PathOption, Real
from gradhub.specs import MethodSpec, Paper

__all__ = [
    "PAPER",
    "TRACT",
    "TRACT_CONV2D",
    "TRACT_LINEAR",
    "TrAct",
    "TrActConv2d",
    "TrActConv2dHyperparameters",
    "TrActLinear",
    "TrActLinearHyperparameters",
    "TrActOptions",
    "tract_weight_grad",
]

PAPER = Paper(
    title="TrAct: Making First-layer Pre-Activations Trainable",
    authors=("Felix Petersen", "Christian Borgelt", "Stefano Ermon"),
    year=2024,
    venue="Advances in Neural Information Processing Systems 37 (NeurIPS 2024)",
    arxiv="2410.23970",
    url="https://arxiv.org/abs/2410.23970",
    code="https://github.com/Felix-Petersen/tract",
)

Size = Annotated[int, Strict(), Field(ge=1)]
Count = Annotated[int, Strict(), Field(ge=0)]
Lambda = Annotated[
    Real,
    Field(
        gt=0,
        description="lambda > 0: ridge weight of the activation-fitting problem; the weight gradient is "
        "G_W (A^T A / N + lambda I)^-1 (official default 0.1; tune again if inputs are not standardised)",
    ),
]
InvType = Annotated[
    Literal["inverse", "cholesky"],
    Field(
        description="how the symmetric positive definite system is solved: 'inverse' by LU (torch.linalg.solve), "
        "'cholesky' by a Cholesky factorisation (cheaper; the same gradient up to rounding)"
    ),
    KeywordOnly(),
    PathOption(),
]


class TrActOptions(Hyperparameters):
    """What TrAct adds to a first layer: lambda and how the system is solved."""

    l: Lambda = 0.1  # noqa: E741 (the paper's and the official code's name)
    inv_type: InvType = "inverse"


class Conv2dArguments(core.Conv2dArguments):
    """nn.Conv2d's arguments (the core's model); groups must be 1."""

    groups: Size = Field(1, description="must be 1: TrAct preconditions with one patch matrix for all output channels")

    @model_validator(mode="after")
    def _one_group(self) -> Conv2dArguments:
        if self.groups != 1:
            raise HyperparameterError(
                TRACT_CONV2D.name,
                "groups",
                self.groups,
                "1 (TrAct preconditions the weight gradient with the Gram matrix of one patch matrix shared by every "
                "output channel; grouped and depthwise convolutions are not supported)",
            )
        return self


# Fields of the last base come first: nn.Linear's (nn.Conv2d's) arguments, then TrAct's.
class TrActLinearHyperparameters(TrActOptions, core.LinearArguments):
    """TrActLinear: nn.Linear's arguments plus lambda and the solver."""


class TrActConv2dHyperparameters(TrActOptions, Conv2dArguments):
    """TrActConv2d: nn.Conv2d's arguments plus lambda and the solver."""


_COMMON: dict[str, Any] = dict(
    kind="layer",
    paper=PAPER,
    tags=("first-layer", "preconditioning", "second-order", "vision"),
    dtypes=("float32", "float64", "bfloat16"),
    # Only the weight gradient is changed, on purpose (it is G_W (A^T A / N + lambda I)^-1, not dL/dW):
    # gradcheck cannot pass on the weight. The input and bias gradients are exact (tested).
    capabilities={"gradient": "surrogate"},
    claims=("gradhub_tract.claims:contrast_images_learning_speed",),
)

TRACT = MethodSpec(
    name="tract",
    summary="Wrap an initialised nn.Linear / nn.Conv2d first layer in TrAct, sharing its Parameters",
    target="gradhub_tract.layers:TrAct",
    params=TrActOptions,
    example="gradhub_tract.examples:wrapped_strided_conv",
    **_COMMON,
)
TRACT_LINEAR = MethodSpec(
    name="tract_linear",
    summary="nn.Linear whose weight gradient is G_W (A^T A / N + lambda I)^-1: trains the pre-activations",
    target="gradhub_tract.layers:TrActLinear",
    params=TrActLinearHyperparameters,
    example="gradhub_tract.examples:token_batch",
    **_COMMON,
)
TRACT_CONV2D = MethodSpec(
    name="tract_conv2d",
    summary="nn.Conv2d whose weight gradient is G_W (P^T P / N + lambda I)^-1 over its N input patches",
    target="gradhub_tract.layers:TrActConv2d",
    params=TrActConv2dHyperparameters,
    example="gradhub_tract.examples:small_image_batch",
    **_COMMON,
)

__all__ += [TRACT.name]

__getattr__ = lazy_exports(
    __name__,
    {
        "TrAct": "gradhub_tract.layers",
        "TrActConv2d": "gradhub_tract.layers",
        "TrActLinear": "gradhub_tract.layers",
        TRACT.name: "gradhub_tract.layers",
        "tract_weight_grad": "gradhub_tract.functional",
    },
)
