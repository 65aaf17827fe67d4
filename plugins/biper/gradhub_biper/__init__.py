"""gradhub-biper: BiPer (Vargas et al., CVPR 2024) as gradhub layers.

This is the plugin's entry module: specs and hyperparameter models only, no torch, so
listing and inspecting the methods is cheap. Each method is declared once, here (``name=``
in its spec), and once as an entry point in ``pyproject.toml``; the implementations bind to
these specs (``@validated(BIPER_CONV2D)``) for their names, defaults and bounds. The
binarisers live in :mod:`gradhub_biper.functional`, the layers and
:func:`~gradhub_biper.layers.set_biper_stage` in :mod:`gradhub_biper.layers`.

Readings where the paper leaves a choice (settled from the official code,
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

from typing import Annotated, Any

from pydantic import Field, Strict

from gradhub import hyperparameters as core
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


class BiPerBinarizeHyperparameters(Hyperparameters):
    """``biper_binarize(w, freq=...)``: the square wave sign(sin(freq w)) with the sine's gradient."""

    freq: Frequency = 20.0


class BiPerStageHyperparameters(Hyperparameters):
    """``set_biper_stage(model, stage)``."""

    stage: Stage


class SignActHyperparameters(Hyperparameters):
    """``sign_act(x)`` takes no hyperparameters."""


class BiPerOptions(BiPerBinarizeHyperparameters):
    """What BiPer adds to a layer: freq, stage and the activation binariser (official CIFAR-10 scripts)."""

    stage: Stage = 2
    binarize_act: Flag = Field(
        True, description="binarise the input with sign() and the triangle surrogate (1W1A); False gives 1W32A"
    )
    act_norm: Flag = Field(
        True, description="in training mode divide the input by its per-sample std before sign() (official code)"
    )


class Conv2dArguments(core.Conv2dArguments):
    """nn.Conv2d's arguments with bias=False (the official 1W1A layers)."""

    bias: Flag = False


class LinearArguments(core.LinearArguments):
    """nn.Linear's arguments with bias=False (the official 1W1A layers)."""

    bias: Flag = False


# Fields of the last base come first: nn.Conv2d's (nn.Linear's) arguments, then BiPer's.
class BiPerConv2dHyperparameters(BiPerOptions, Conv2dArguments):
    """BiPerConv2d: nn.Conv2d's arguments plus BiPer's."""


class BiPerLinearHyperparameters(BiPerOptions, LinearArguments):
    """BiPerLinear: nn.Linear's arguments plus BiPer's (the paper only has convolutions)."""


class BiPerRegularizationHyperparameters(Hyperparameters):
    """``biper_regularization(model, tau=...)``: the official training loss's periodic penalty."""

    tau: NonNegative = Field(
        0.037, description="weight of mean(sin^2(freq W)) per BiPer layer (official run_stg1.sh: 0.037)"
    )


_COMMON: dict[str, Any] = dict(
    kind="layer",
    paper=PAPER,
    tags=("binary-neural-network", "quantization", "straight-through", "periodic"),
    dtypes=("float32", "float64", "bfloat16"),
    capabilities={"gradient": "surrogate"},
    claims=("gradhub_biper.claims:quantization_error", "gradhub_biper.claims:binary_mlp_training"),
)

BIPER_CONV2D = MethodSpec(
    name="biper_conv2d",
    summary="Drop-in nn.Conv2d with BiPer binary weights sign(sin(omega W)) (sine gradient) and binary activations",
    target="gradhub_biper.layers:BiPerConv2d",
    params=BiPerConv2dHyperparameters,
    example="gradhub_biper.examples:small_image_batch",
    **_COMMON,
)
BIPER_LINEAR = MethodSpec(
    name="biper_linear",
    summary="nn.Linear with BiPer binary weights sign(sin(omega W)) (sine gradient) and binary activations",
    target="gradhub_biper.layers:BiPerLinear",
    params=BiPerLinearHyperparameters,
    example="gradhub_biper.examples:small_feature_batch",
    **_COMMON,
)
BIPER_SIGN = MethodSpec(
    name="biper_sign",
    summary="Square wave sign(sin(omega w)) forward, omega cos(omega w) backward: BiPer's weight binariser",
    target="gradhub_biper.functional:biper_binarize",
    params=BiPerBinarizeHyperparameters,
    example="gradhub_biper.examples:small_latent_weights",
    **_COMMON,
)
BIPER_SIGN_ACT = MethodSpec(
    name="biper_sign_act",
    summary="sign(x) forward with the triangle surrogate max(0, 2 - 2|x|) backward: BiPer's activation binariser",
    target="gradhub_biper.functional:sign_act",
    params=SignActHyperparameters,
    example="gradhub_biper.examples:standard_normal_activations",
    **{**_COMMON, "claims": ()},
)

_LAZY = {
    "BiPerConv2d": "gradhub_biper.layers",
    "BiPerLinear": "gradhub_biper.layers",
    "set_biper_stage": "gradhub_biper.layers",
    "biper_regularization": "gradhub_biper.layers",
    "biper_binarize": "gradhub_biper.functional",
    "sign_act": "gradhub_biper.functional",
}


__getattr__ = lazy_exports(__name__, _LAZY)
