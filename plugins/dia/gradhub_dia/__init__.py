"""gradhub-dia: the Dropout Inversion Attack (Scheliga et al., AAAI 2023) as gradhub methods.

This is the plugin's entry module: it holds the specs and hyperparameter models only and
imports neither torch nor the implementation, so listing and inspecting methods is cheap.
Each method is declared once, here (``name=`` in its spec), and once as an entry point in
``pyproject.toml``; the implementations bind to the specs (``@validated(DIA)``) for their
names, defaults and bounds.

- ``DIA`` (attack): :func:`gradhub_dia.inversion.dropout_inversion_attack`
- ``INVERTING_GRADIENTS`` (attack): :func:`gradhub_dia.inversion.inverting_gradients`
- ``MASK_DROPOUT`` (layer): :class:`gradhub_dia.mask_dropout.MaskDropout`

The helpers ``swap_dropout``, ``dropout_layers``, ``MaskDropout`` and ``client_gradients``
are re-exported lazily (``from gradhub_dia import swap_dropout`` imports torch then, not before).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, Strict, model_validator

from gradhub.errors import HyperparameterError
from gradhub.exports import lazy_exports
from gradhub.hyperparameters import Flag, Hyperparameters, NonNegative, Real
from gradhub.specs import MethodSpec, Paper

PAPER = Paper(
    title="Dropout is NOT All You Need to Prevent Gradient Leakage",
    authors=("Daniel Scheliga", "Patrick Mäder", "Marco Seeland"),
    year=2023,
    venue="AAAI Conference on Artificial Intelligence (AAAI)",
    arxiv="2208.06163",
    url="https://arxiv.org/abs/2208.06163",
    code="https://github.com/dAI-SY-Group/DropoutInversionAttack",
)

IG_PAPER = Paper(
    title="Inverting Gradients -- How easy is it to break privacy in federated learning?",
    authors=("Jonas Geiping", "Hartmut Bauermeister", "Hannah Dröge", "Michael Moeller"),
    year=2020,
    venue="Advances in Neural Information Processing Systems (NeurIPS)",
    arxiv="2003.14053",
    url="https://arxiv.org/abs/2003.14053",
    code="https://github.com/JonasGeiping/invertinggradients",
)

PositiveInt = Annotated[int, Strict(), Field(ge=1)]
DropRate = Annotated[float, Strict(), Field(ge=0, lt=1, description="drop probability p (p = 1 would divide by 0)")]


class InvertingGradientsHyperparameters(Hyperparameters):
    """IG's hyperparameters; defaults are the official DIA repository's ``IG.yaml``."""

    max_iter: PositiveInt = Field(20000, description="Adam iterations in total (shared by the n_trials restarts)")
    lr: Real = Field(0.1, gt=0, description="Adam learning rate (betas 0.9, 0.999)")
    tv_weight: NonNegative = Field(1e-5, description="weight of the anisotropic total variation of x")
    signed_grad: Flag = Field(True, description="replace the gradient w.r.t. x by its sign before the Adam step")
    clip_range: tuple[Real, Real] | None = Field(None, description="(lo, hi): clip x into it after every step")
    init: Literal["randn", "rand"] = Field("randn", description="dummy init: N(0, 1) or U(-1, 1)")
    lr_patience: PositiveInt | None = Field(800, description="ReduceLROnPlateau patience on J; None: no scheduler")
    lr_factor: Real = Field(0.1, gt=0, lt=1, description="ReduceLROnPlateau factor")
    early_stop_patience: PositiveInt | None = Field(
        4000, description="stop after this many iterations without a lower J; None: never"
    )
    stop_loss: NonNegative = Field(1e-5, description="stop once the best J falls below this")
    n_trials: PositiveInt = Field(1, description="random restarts; the lowest-J trial is returned")
    attacker_train_mode: Flag = Field(
        False, description="run the rest of the model (BatchNorm...) in train mode; official: eval"
    )

    @model_validator(mode="after")
    def _range_and_budget(self) -> InvertingGradientsHyperparameters:
        method = next((spec.name for spec in SPECS if spec.params is type(self)), type(self).__name__)
        if self.clip_range is not None and not self.clip_range[0] < self.clip_range[1]:
            raise HyperparameterError(method, "clip_range", self.clip_range, "None or (lo, hi) with lo < hi")
        if self.max_iter < self.n_trials:
            raise HyperparameterError(
                method, "max_iter", self.max_iter, f">= n_trials={self.n_trials} (the trials share max_iter)"
            )
        return self


class DropoutInversionHyperparameters(InvertingGradientsHyperparameters):
    """DIA's hyperparameters; defaults are the official ``example_configs/attacks/DIA.yaml``."""

    mask_weight: NonNegative = Field(
        1e-4, description="weight of sum_l |(1 - mean(m_l)) - p_l| (the drop-rate prior on the masks)"
    )


class MaskDropoutHyperparameters(Hyperparameters):
    p: DropRate = 0.5


_NO_PLATEAU = "the example's 5 iterations lower J at every one: no plateau for the scheduler or the early stop"
_INERT = {
    "lr_patience": _NO_PLATEAU,
    "lr_factor": _NO_PLATEAU,
    "early_stop_patience": _NO_PLATEAU,
    "attacker_train_mode": "dropout is the example MLP's one mode-dependent layer, and the attack runs it alike",
}
DIA = MethodSpec(
    name="dia",
    kind="attack",
    summary="Dropout Inversion Attack: gradient inversion that jointly optimises the data and the dropout masks",
    paper=PAPER,
    target="gradhub_dia.inversion:dropout_inversion_attack",
    params=DropoutInversionHyperparameters,
    example="gradhub_dia.examples:gradient_of_tiny_dropout_mlp",
    claims=("gradhub_dia.claims:dropout_does_not_protect",),
    tags=("gradient-inversion", "federated-learning", "privacy", "dropout"),
    inert=_INERT,
    # One forward (and its double backward) per iteration, plus one no-grad forward first
    # to read the activation shapes at the dropout layers.
    capabilities={"model_calls_per_iteration": 1, "setup_model_calls": 1},
)
INVERTING_GRADIENTS = MethodSpec(
    name="inverting_gradients",
    kind="attack",
    summary="Inverting Gradients (cosine gradient matching + TV, signed Adam): the baseline DIA extends",
    paper=IG_PAPER,
    target="gradhub_dia.inversion",
    params=InvertingGradientsHyperparameters,
    example="gradhub_dia.examples:gradient_of_tiny_dropout_mlp",
    claims=("gradhub_dia.claims:dropout_does_not_protect",),
    tags=("gradient-inversion", "federated-learning", "privacy"),
    inert=_INERT,
)
MASK_DROPOUT = MethodSpec(
    name="mask_dropout",
    kind="layer",
    summary="nn.Dropout that can record its Bernoulli mask or apply a given (continuous) mask",
    paper=PAPER,
    target="gradhub_dia.mask_dropout:MaskDropout",
    params=MaskDropoutHyperparameters,
    example="gradhub_dia.examples:fixed_continuous_mask",
    tags=("dropout",),
    capabilities={"gradient": "exact"},
)
SPECS = (DIA, INVERTING_GRADIENTS, MASK_DROPOUT)

_LAZY = {
    "MaskDropout": "gradhub_dia.mask_dropout",
    "swap_dropout": "gradhub_dia.mask_dropout",
    "dropout_layers": "gradhub_dia.mask_dropout",
    "client_gradients": "gradhub_dia.inversion",
    "dropout_inversion_attack": "gradhub_dia.inversion",
    INVERTING_GRADIENTS.name: "gradhub_dia.inversion",
    "GradientInversionResult": "gradhub_dia.inversion",
}


__getattr__ = lazy_exports(__name__, _LAZY)
