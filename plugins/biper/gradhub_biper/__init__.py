"""gradhub-biper: BiPer (Vargas et al., CVPR 2024) as gradhub layers.

This is the plugin's entry module: specs and hyperparameter models only, no torch, so
listing and inspecting the methods is cheap. The binarisers live in
:mod:`gradhub_biper.functional`, the layers and :func:`~gradhub_biper.layers.set_biper_stage`
in :mod:`gradhub_biper.layers`.

Readings chosen where the brief left a choice (settled from the official code,
github.com/edmav4/BiPer, ``cifar10/modules/binarized_modules.py``, ``cifar10/main*.py``,
``cifar10/run_stg1.sh``, ``cifar10/utils/options.py``):

* ``freq`` (omega_0) defaults to 20, the value ``run_stg1.sh`` passes (``options.py``'s
  argparse default is 30; ``main_stage2.py`` reads the stage-1 value back from its config).
* alpha (one scale per output channel) is initialised U(0, 1) (``torch.rand``), as official.
* Activations are divided by their per-sample standard deviation in training mode only,
  as official; sign() is scale-invariant, so this changes only the surrogate gradient.
* sign(0) is +1 for weights and activations (official ``torch.sign`` gives 0), so that
  binarised tensors are exactly +-1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import Field, Strict

import gradhub
from gradhub.exports import lazy_exports
from gradhub.hyperparameters import Flag, Hyperparameters, NonNegative
from gradhub.specs import MethodSpec, Paper

PAPER = Paper(
    title="BiPer: Binary Neural Networks using a Periodic Function",
    authors=("Edwin Vargas", "Claudia V. Correa", "Carlos Hinojosa", "Henry Arguello"),
    year=2024,
    venue="IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)",
    arxiv="2404.01278",
    url="https://arxiv.org/abs/2404.01278",
    code="https://github.com/edmav4/BiPer",
)

Size = Annotated[int, Strict(), Field(ge=1)]
Count = Annotated[int, Strict(), Field(ge=0)]
Frequency = Annotated[
    float,
    Strict(),
    Field(gt=0, description="omega_0: angular frequency of the square wave and of its sine surrogate (Eq. 4-5)"),
]
Stage = Annotated[
    int,
    Strict(),
    Field(ge=1, le=2, description="1: continuous sine weights sin(omega W); 2: binary weights sign(sin(omega W))"),
]
BINARIZE_ACT = "binarise the input with sign() and the triangle surrogate (1W1A); False gives 1W32A"
ACT_NORM = "in training mode divide the input by its per-sample std before sign() (official code)"


class BiPerBinarizeHyperparameters(Hyperparameters):
    """``biper_binarize(w, freq)``: the square wave sign(sin(freq w)) with the sine's gradient."""

    freq: Frequency = 20.0


class SignActHyperparameters(Hyperparameters):
    """``sign_act(x)`` takes no hyperparameters."""


class BiPerConv2dHyperparameters(Hyperparameters):
    """BiPerConv2d: nn.Conv2d's arguments plus BiPer's; defaults from the official CIFAR-10 scripts."""

    in_channels: Size
    out_channels: Size
    kernel_size: Size | tuple[Size, Size]
    stride: Size | tuple[Size, Size] = 1
    padding: Count | tuple[Count, Count] | Literal["same", "valid"] = 0
    dilation: Size | tuple[Size, Size] = 1
    groups: Size = 1
    bias: Flag = False
    padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros"
    freq: Frequency = 20.0
    stage: Stage = 2
    binarize_act: Flag = Field(True, description=BINARIZE_ACT)
    act_norm: Flag = Field(True, description=ACT_NORM)


class BiPerLinearHyperparameters(Hyperparameters):
    """BiPerLinear: nn.Linear's arguments plus BiPer's (the paper only has convolutions)."""

    in_features: Size
    out_features: Size
    bias: Flag = False
    freq: Frequency = 20.0
    stage: Stage = 2
    binarize_act: Flag = Field(True, description=BINARIZE_ACT)
    act_norm: Flag = Field(True, description=ACT_NORM)


class BiPerStageHyperparameters(Hyperparameters):
    """``set_biper_stage(model, stage)``."""

    stage: Stage


class BiPerRegularizationHyperparameters(Hyperparameters):
    """``biper_regularization(model, tau)``: the official training loss's periodic penalty."""

    tau: NonNegative = Field(
        0.037, description="weight of mean(sin^2(freq W)) per BiPer layer (official run_stg1.sh: 0.037)"
    )


_COMMON = dict(
    paper=PAPER,
    tags=("binary-neural-network", "quantization", "straight-through", "periodic"),
    dtypes=("float32", "float64", "bfloat16"),
    capabilities={"gradient": "surrogate"},
    claims=("gradhub_biper.claims:quantization_error", "gradhub_biper.claims:binary_mlp_training"),
)

SPECS = (
    MethodSpec(
        name="biper_conv2d",
        kind="layer",
        summary="Drop-in nn.Conv2d with BiPer binary weights sign(sin(omega W)) (sine gradient) and binary activations",
        target="gradhub_biper.layers:BiPerConv2d",
        params=BiPerConv2dHyperparameters,
        example="gradhub_biper.examples:conv2d_example",
        **_COMMON,
    ),
    MethodSpec(
        name="biper_linear",
        kind="layer",
        summary="nn.Linear with BiPer binary weights sign(sin(omega W)) (sine gradient) and binary activations",
        target="gradhub_biper.layers:BiPerLinear",
        params=BiPerLinearHyperparameters,
        example="gradhub_biper.examples:linear_example",
        **_COMMON,
    ),
    MethodSpec(
        name="biper_sign",
        kind="layer",
        summary="Square wave sign(sin(omega w)) forward, omega cos(omega w) backward: BiPer's weight binariser",
        target="gradhub_biper.functional:biper_binarize",
        params=BiPerBinarizeHyperparameters,
        example="gradhub_biper.examples:binarize_example",
        **_COMMON,
    ),
    MethodSpec(
        name="biper_sign_act",
        kind="layer",
        summary="sign(x) forward with the triangle surrogate max(0, 2 - 2|x|) backward: BiPer's activation binariser",
        target="gradhub_biper.functional:sign_act",
        params=SignActHyperparameters,
        example="gradhub_biper.examples:sign_act_example",
        **{**_COMMON, "claims": ()},
    ),
)


@gradhub.hookimpl
def register_methods(register: Callable[[MethodSpec], None]) -> None:
    for spec in SPECS:
        register(spec)


_LAZY = {
    "BiPerConv2d": "gradhub_biper.layers",
    "BiPerLinear": "gradhub_biper.layers",
    "set_biper_stage": "gradhub_biper.layers",
    "biper_regularization": "gradhub_biper.layers",
    "biper_binarize": "gradhub_biper.functional",
    "sign_act": "gradhub_biper.functional",
}


__getattr__ = lazy_exports(__name__, _LAZY)
