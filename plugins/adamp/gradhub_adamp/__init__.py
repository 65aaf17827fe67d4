"""gradhub-adamp: AdamP and SGDP (Heo et al., ICLR 2021) as gradhub methods.

This is the plugin's entry module: it holds the specs and hyperparameter models only and
imports neither torch nor the implementation, so listing and inspecting methods is cheap.
Each method is declared once, here (``name=`` in its spec), and once as an entry point in
``pyproject.toml``; the registry reads the module's ``MethodSpec`` objects, and the
implementations bind to them (``spec = ADAMP``) for their names, defaults and bounds.
The optimizers live in :mod:`gradhub_adamp.adamp` and :mod:`gradhub_adamp.sgdp`; the
projection they share in :mod:`gradhub_adamp.projection`.
"""

from __future__ import annotations

from pydantic import Field

from gradhub.hyperparameters import (
    Betas,
    Epsilon,
    Flag,
    Foreach,
    Fused,
    Hyperparameters,
    LearningRate,
    Maximize,
    Momentum,
    NonNegative,
    Probability,
    WeightDecay,
)
from gradhub.specs import MethodSpec, Paper

PAPER = Paper(
    title="AdamP: Slowing Down the Slowdown for Momentum Optimizers on Scale-invariant Weights",
    authors=(
        "Byeongho Heo",
        "Sanghyuk Chun",
        "Seong Joon Oh",
        "Dongyoon Han",
        "Sangdoo Yun",
        "Gyuwan Kim",
        "Youngjung Uh",
        "Jung-Woo Ha",
    ),
    year=2021,
    venue="International Conference on Learning Representations (ICLR)",
    arxiv="2006.08217",
    url="https://arxiv.org/abs/2006.08217",
    code="https://github.com/clovaai/AdamP",
)

DELTA = "scale-invariance threshold: project when max |cos(grad, weight)| < delta / sqrt(dim)"
WD_RATIO = "weight-decay multiplier for weights detected as scale-invariant"


class AdamPHyperparameters(Hyperparameters):
    """AdamP's hyperparameters; defaults are the official ``adamp`` 0.3.0 ones."""

    lr: LearningRate = 1e-3
    betas: Betas = (0.9, 0.999)
    eps: Epsilon = 1e-8
    weight_decay: WeightDecay = 0.0
    delta: NonNegative = Field(0.1, description=DELTA)
    wd_ratio: Probability = Field(0.1, description=WD_RATIO)
    nesterov: Flag = False
    foreach: Foreach = None
    maximize: Maximize = False
    fused: Fused = None


class SGDPHyperparameters(Hyperparameters):
    """SGDP's hyperparameters; as in the official code, ``lr`` has no default."""

    lr: LearningRate
    momentum: Momentum = 0.0
    dampening: Probability = Field(0.0, description="dampening for momentum")
    weight_decay: WeightDecay = 0.0
    nesterov: Flag = False
    eps: Epsilon = 1e-8
    delta: NonNegative = Field(0.1, description=DELTA)
    wd_ratio: Probability = Field(0.1, description=WD_RATIO)
    foreach: Foreach = None
    maximize: Maximize = False
    fused: Fused = None


FUSED = (
    "hand-written C++ kernel for contiguous float32/float64 CPU tensors (two passes over a weight's memory), "
    "compiled at first use (needs a C++ compiler and ninja; cached per machine); other tensors, and all of them "
    "where it cannot be compiled, take the multi-tensor path with a warning"
)

_COMMON = dict(
    paper=PAPER,
    tags=("scale-invariance", "normalization", "momentum"),
    dtypes=("float32", "float64", "bfloat16"),
    capabilities={
        "supports_foreach": True,
        "fused": FUSED,
        # Tested by the suite (2 gloo processes vs one on the global batch). Under FSDP2 each process steps
        # the rows it holds; the decision's and the layer view's sums are all-reduced (one collective a step).
        "ddp": {"status": "tested"},
        "fsdp2": {"status": "tested"},
        "compile": {"status": "tested"},
    },
    claims=("gradhub_adamp.claims:scale_invariant_tracking", "gradhub_adamp.claims:cnn_norm_growth"),
)

ADAMP = MethodSpec(
    name="adamp",
    kind="optimizer",
    summary="Adam that removes the radial (norm-increasing) component of updates to scale-invariant weights",
    target="gradhub_adamp.adamp:AdamP",
    params=AdamPHyperparameters,
    example="gradhub_adamp.examples:adam_on_standard_problem",
    **_COMMON,
)
SGDP = MethodSpec(
    name="sgdp",
    kind="optimizer",
    summary="SGD with momentum that removes the radial component of updates to scale-invariant weights",
    target="gradhub_adamp.sgdp:SGDP",
    params=SGDPHyperparameters,
    example="gradhub_adamp.examples:sgd_on_standard_problem",
    **_COMMON,
)
