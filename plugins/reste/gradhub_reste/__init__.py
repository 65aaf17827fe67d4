"""gradhub-reste: ReSTE, the rectified straight-through estimator for binary networks (Wu et al., ICCV 2023).

This is the plugin's entry module: specs and hyperparameter models only, no torch, so listing
and inspecting the methods is cheap. Each method is declared once, here (``name=`` in its spec),
and once as an entry point in ``pyproject.toml``; the implementations bind to these specs
(``@validated(RESTE_SIGN)``) for their names, defaults and bounds.

* :mod:`gradhub_reste.functional`: ``reste_sign`` (sign forward, rectified power backward), the
  surrogate F_o and its rectified derivative;
* :mod:`gradhub_reste.layers`: ``ReSTEConv2d`` and ``ReSTELinear`` (1W1A, or 1W32A), ``set_reste_o``;
* :mod:`gradhub_reste.schedules`: the cosine o schedule (``reste_o_schedule``, ``ReSTEPowerSchedule``);
* :mod:`gradhub_reste.indicators`: the paper's two indicators, estimating error and gradient
  stability (``reste_indicators``, ``estimating_error``, ``gradient_stability``).

Readings where the paper leaves a choice, settled from the official code
(github.com/DravenALG/ReSTE, ``model/binary_module/binarized_modules.py``, ``main.py``,
``utils/tools.py``, ``utils/arguments.py``); the README lists them with the reasons.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, Strict, ValidationInfo, field_validator

from gradhub import hyperparameters as core
from gradhub.exports import lazy_exports
from gradhub.hyperparameters import Flag, Hyperparameters, Real
from gradhub.specs import MethodSpec, Paper

PAPER = Paper(
    title=(
        "Estimator Meets Equilibrium Perspective: A Rectified Straight Through Estimator for Binary Neural "
        "Networks Training"
    ),
    authors=("Xiao-Ming Wu", "Dian Zheng", "Zuhao Liu", "Wei-Shi Zheng"),
    year=2023,
    venue="IEEE/CVF International Conference on Computer Vision (ICCV)",
    arxiv="2308.06689",
    url="https://arxiv.org/abs/2308.06689",
    code="https://github.com/DravenALG/ReSTE",
)

Power = Annotated[
    Real,
    Field(
        ge=1,
        description="o >= 1: the surrogate F_o(x) = sign(x)|x|^(1/o) (o = 1: identity, the clipped STE; "
        "larger o: closer to sign, larger gradient variance)",
    ),
]
Threshold = Annotated[Real, Field(gt=0, description="t > 0: the backward is zero where |x| > t (official 1.5)")]
Interval = Annotated[
    Real,
    Field(
        gt=0,
        description="0 < interval < t: on |x| <= interval the backward is the chord slope interval^(1/o) / interval "
        "instead of the unbounded derivative (official 0.1, hard-coded)",
    ),
]
Size = Annotated[int, Strict(), Field(ge=1)]
Count = Annotated[int, Strict(), Field(ge=0)]
Epochs = Annotated[int, Strict(), Field(ge=1, description="epochs of the run: o reaches o_end at this epoch")]


def _interval_inside(interval: float, info: ValidationInfo, *thresholds: str) -> float:
    """The rule between fields: the constant branch sits inside every clipping threshold."""
    for name in thresholds:
        threshold = info.data.get(name)
        if threshold is not None and interval >= threshold:
            raise ValueError(f"and < {name}={threshold!r}: the constant branch lies inside |x| <= {name}")
    return interval


class ReSTESignHyperparameters(Hyperparameters):
    """``reste_sign(x, o=1.0, t=1.5, interval=0.1)``: sign(x) forward, the rectified power backward (Eq. 10)."""

    o: Power = 1.0
    t: Threshold = 1.5
    interval: Interval = 0.1

    @field_validator("interval")
    @classmethod
    def _interval_below_t(cls, interval: float, info: ValidationInfo) -> float:
        return _interval_inside(interval, info, "t")


class PowerHyperparameters(Hyperparameters):
    """``layer.o = value`` (the schedule sets it every epoch)."""

    o: Power


class ReSTEOptions(Hyperparameters):
    """What ReSTE adds to a layer: o, the clipping thresholds of weights and activations, the interval."""

    o: Power = 1.0
    t_w: Threshold = 1.5
    t_a: Threshold = 1.5
    interval: Interval = 0.1
    binarize_activations: Flag = Field(
        True, description="binarise the input with reste_sign (1W1A); False keeps it real-valued (1W32A)"
    )

    @field_validator("interval")
    @classmethod
    def _interval_below_thresholds(cls, interval: float, info: ValidationInfo) -> float:
        return _interval_inside(interval, info, "t_w", "t_a")


class Conv2dArguments(core.Conv2dArguments):
    """nn.Conv2d's arguments with bias=False (official 1W1A convolutions)."""

    bias: Flag = False


class LinearArguments(core.LinearArguments):
    """nn.Linear's arguments with bias=False (as the binarised layers of the official networks)."""

    bias: Flag = False


# The last base's fields come first: nn.Conv2d's (nn.Linear's) arguments, then ReSTE's.
class ReSTEConv2dHyperparameters(ReSTEOptions, Conv2dArguments):
    """ReSTEConv2d: nn.Conv2d's arguments plus ReSTE's."""


class ReSTELinearHyperparameters(ReSTEOptions, LinearArguments):
    """ReSTELinear: nn.Linear's arguments plus ReSTE's (the paper's networks binarise convolutions only)."""


class ReSTEScheduleHyperparameters(Hyperparameters):
    """o(epoch) = o_start + (1 - cos(pi/2 * min(epoch / total_epochs, 1))) * (o_end - o_start) (official main.py)."""

    total_epochs: Epochs
    o_start: Power = 1.0
    o_end: Annotated[Real, Field(ge=1, description="the o reached at epoch total_epochs (official --o_end 3)")] = 3.0

    @field_validator("o_end")
    @classmethod
    def _rises(cls, o_end: float, info: ValidationInfo) -> float:
        o_start = info.data.get("o_start")
        if o_start is not None and o_end < o_start:
            raise ValueError(f"and >= o_start={o_start!r}: the schedule moves from the STE towards sign")
        return o_end


class ReSTEIndicatorsHyperparameters(Hyperparameters):
    """The o at which the estimating error ||F_o(w) - sign(w)|| is measured (official: o_end = 3)."""

    o: Annotated[
        Real, Field(ge=1, description="o of F_o in the estimating error (the official logs use o_end = 3)")
    ] = 3.0


_COMMON: dict[str, Any] = dict(
    paper=PAPER,
    tags=("binary-neural-network", "quantization", "straight-through", "rectified-ste"),
    claims=(
        "gradhub_reste.claims:equilibrium",
        "gradhub_reste.claims:training_non_inferiority",
        "gradhub_reste.claims:o_one_is_ste",
    ),
)

RESTE_SIGN = MethodSpec(
    name="reste_sign",
    kind="layer",
    summary="sign(x) forward; backward (1/o)|x|^((1-o)/o) on interval < |x| <= t, chord slope inside, 0 outside",
    target="gradhub_reste.functional",
    params=ReSTESignHyperparameters,
    example="gradhub_reste.examples:spread_inputs_at_o_2",
    dtypes=("float16", "bfloat16", "float32", "float64"),
    # The backward is the rectified derivative of F_o, not the derivative of sign (zero): gradcheck cannot pass.
    capabilities={"gradient": "surrogate"},
    **_COMMON,
)
RESTE_CONV2D = MethodSpec(
    name="reste_conv2d",
    kind="layer",
    summary="Drop-in nn.Conv2d with ReSTE-binarised weights (scaled by mean|W|) and ReSTE-binarised activations",
    target="gradhub_reste.layers:ReSTEConv2d",
    params=ReSTEConv2dHyperparameters,
    example="gradhub_reste.examples:small_image_batch",
    dtypes=("float32", "float64", "bfloat16"),
    capabilities={"gradient": "surrogate"},
    **_COMMON,
)
RESTE_LINEAR = MethodSpec(
    name="reste_linear",
    kind="layer",
    summary="nn.Linear with ReSTE-binarised weights (scaled by mean|W|) and ReSTE-binarised activations",
    target="gradhub_reste.layers:ReSTELinear",
    params=ReSTELinearHyperparameters,
    example="gradhub_reste.examples:small_feature_batch",
    dtypes=("float32", "float64", "bfloat16"),
    capabilities={"gradient": "surrogate"},
    **_COMMON,
)
RESTE_O_SCHEDULE = MethodSpec(
    name="reste_o_schedule",
    kind="schedule",
    summary="ReSTE's cosine schedule of the power o per epoch, from o_start = 1 (STE) to o_end = 3",
    target="gradhub_reste.schedules",
    params=ReSTEScheduleHyperparameters,
    example="gradhub_reste.examples:official_schedule_over_40_epochs",
    capabilities={"form": "step"},
    **_COMMON,
)
RESTE_INDICATORS = MethodSpec(
    name="reste_indicators",
    kind="probe",
    summary="ReSTE's indicators over binarised layers: estimating error sum ||F_o(w) - sign(w)||, "
    "gradient stability sum Var(|dL/dw|)",
    target="gradhub_reste.indicators",
    params=ReSTEIndicatorsHyperparameters,
    example="gradhub_reste.examples:binary_mlp_after_backward",
    dtypes=("float32", "float64", "bfloat16"),
    **_COMMON,
)

_LAZY = {
    RESTE_SIGN.name: "gradhub_reste.functional",
    "power_surrogate": "gradhub_reste.functional",
    "rectified_derivative": "gradhub_reste.functional",
    "ReSTEConv2d": "gradhub_reste.layers",
    "ReSTELinear": "gradhub_reste.layers",
    "set_reste_o": "gradhub_reste.layers",
    RESTE_O_SCHEDULE.name: "gradhub_reste.schedules",
    "ReSTEPowerSchedule": "gradhub_reste.schedules",
    RESTE_INDICATORS.name: "gradhub_reste.indicators",
    "ReSTEIndicators": "gradhub_reste.indicators",
    "estimating_error": "gradhub_reste.indicators",
    "gradient_stability": "gradhub_reste.indicators",
}

__getattr__ = lazy_exports(__name__, _LAZY)
