"""gradhub-dann: Domain-Adversarial Training of Neural Networks (Ganin et al., JMLR 2016) as gradhub methods.

This is the plugin's entry module: it holds the specs and hyperparameter models only and
imports neither torch nor the implementation, so listing and inspecting methods is cheap.
Each method is declared once, here (``name=`` in its spec), and once as an entry point in
``pyproject.toml``; the implementations bind to these specs (``@validated(GRAD_REVERSE)``)
for their names, defaults and bounds.

* :mod:`gradhub_dann.reversal`: the gradient reversal layer R_lambda (``grad_reverse``,
  ``GradientReversal``);
* :mod:`gradhub_dann.schedules`: the paper's lambda_p and learning-rate schedules
  (``dann_lambda``, ``dann_lr``);
* :mod:`gradhub_dann.dann`: the ``DANN`` wrapper (G_f, G_y, G_d), registered as the composite
  layer ``dann`` (built around the user's three modules), and ``train_dann``.

``DANN_SPEC`` is the ``dann`` method's spec (not ``DANN``: that name stays the model class, as in
gradhub-dann 0.1). ``DANN``, ``train_dann`` and ``TrainingHistory`` are importable from here
too; they are loaded lazily, on first attribute access, so importing this module stays torch-free.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

from pydantic import Field, Strict, ValidatorFunctionWrapHandler, WrapValidator

from gradhub.exports import lazy_exports
from gradhub.hyperparameters import Hyperparameters, NonNegative, Real
from gradhub.specs import MethodSpec, Paper

__all__ = [
    "DANN",
    "DANN_LAMBDA",
    "DANN_LR",
    "DANN_SPEC",
    "GRADIENT_REVERSAL",
    "GRAD_REVERSE",
    "PAPER",
    "DannLambdaHyperparameters",
    "DannLrHyperparameters",
    "GradReverseHyperparameters",
    "TrainingHistory",
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


def _number_or_scalar_tensor(value: Any, number: ValidatorFunctionWrapHandler) -> Any:
    """A 0-dim floating tensor stays a tensor (a schedule may update it in place); anything else
    must be a number. The tensor's value is checked against the same bounds on the CPU only, and
    not under torch.compile: reading a CUDA tensor would synchronise the device on every call."""
    torch = sys.modules.get("torch")  # a tensor can only exist once torch is imported
    if torch is None or not isinstance(value, torch.Tensor):
        return number(value)
    if value.dim() != 0 or not value.is_floating_point():
        raise ValueError("a tensor lambd must be 0-dim and floating-point")
    value = value.detach()
    if value.device.type == "cpu" and not torch.compiler.is_compiling():
        number(float(value))
    return value


GradientScale = Annotated[Real, Field(ge=0), WrapValidator(_number_or_scalar_tensor)]


class GradReverseHyperparameters(Hyperparameters):
    """lambda of the gradient reversal layer R_lambda (Eq. 13-14 of the JMLR paper)."""

    lambd: GradientScale = Field(
        1.0,
        description="gradient scale lambda >= 0: the backward multiplies the incoming gradient by -lambda; "
        "a Python number or a 0-dim floating tensor (a negative lambda would not reverse the gradient)",
    )


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

GRAD_REVERSE = MethodSpec(
    name="grad_reverse",
    kind="layer",
    summary="Gradient reversal R_lambda(x): identity forward, gradient multiplied by -lambda backward",
    target="gradhub_dann.reversal",
    params=GradReverseHyperparameters,
    example="gradhub_dann.examples:small_batch_half_lambda",
    dtypes=("float16", "bfloat16", "float32", "float64"),
    # The backward is -lambda * I by design, not the forward's derivative (+I): gradcheck cannot pass.
    capabilities={"gradient": "surrogate"},
    aliases=("revgrad",),
    **_COMMON,
)
GRADIENT_REVERSAL = MethodSpec(
    name="gradient_reversal",
    kind="layer",
    summary="Gradient reversal layer as an nn.Module whose lambd can be changed every step",
    target="gradhub_dann.reversal:GradientReversal",
    params=GradReverseHyperparameters,
    example="gradhub_dann.examples:small_batch_half_lambda",
    dtypes=("float16", "bfloat16", "float32", "float64"),
    capabilities={"gradient": "surrogate"},
    aliases=("grl",),
    **_COMMON,
)
DANN_SPEC = MethodSpec(
    name="dann",
    kind="layer",
    summary="Domain-adversarial network: feature extractor, label head and domain head behind R_lambda",
    target="gradhub_dann.dann:DANN",
    params=GradReverseHyperparameters,
    example="gradhub_dann.examples:shallow_dann_on_small_batch",
    # A composite layer (built around the user's three modules); its backward reverses the
    # domain head's gradient into the features, so it is not the forward's derivative.
    capabilities={"gradient": "surrogate"},
    **_COMMON,
)
DANN_LAMBDA = MethodSpec(
    name="dann_lambda",
    kind="schedule",
    summary="DANN adaptation factor lambda_p = max_lambda * (2 / (1 + exp(-gamma p)) - 1) over progress p",
    target="gradhub_dann.schedules",
    params=DannLambdaHyperparameters,
    example="gradhub_dann.examples:paper_lambda_schedule",
    capabilities={"form": "progress"},
    **_COMMON,
)
DANN_LR = MethodSpec(
    name="dann_lr",
    kind="schedule",
    summary="DANN learning-rate annealing mu_p = mu_0 / (1 + alpha p)^beta as a LambdaLR",
    target="gradhub_dann.schedules",
    params=DannLrHyperparameters,
    example="gradhub_dann.examples:paper_lr_annealing",
    capabilities={"form": "factory"},
    **_COMMON,
)


# train_dann needs torch: imported only when asked for.
__getattr__ = lazy_exports(__name__, dict.fromkeys(("DANN", "train_dann", "TrainingHistory"), "gradhub_dann.dann"))
