"""gradhub-diffgrad: diffGrad (Dubey et al., IEEE TNNLS 2020) as a gradhub method.

This is the plugin's entry module: it holds the spec and the hyperparameter model only
and imports neither torch nor the implementation, so listing and inspecting is cheap.
The method is declared once, here (``name=`` in its spec), and once as an entry point in
``pyproject.toml``; the registry reads the module's ``MethodSpec``, and the optimizer in
:mod:`gradhub_diffgrad.diffgrad` binds to it (``spec = DIFFGRAD``) for its name, defaults and bounds.
"""

from __future__ import annotations

from pydantic import Field

from gradhub.hyperparameters import Betas, Epsilon, Foreach, Fused, Hyperparameters, LearningRate, WeightDecay
from gradhub.specs import MethodSpec, Paper

PAPER = Paper(
    title="diffGrad: An Optimization Method for Convolutional Neural Networks",
    authors=(
        "Shiv Ram Dubey",
        "Soumendu Chakraborty",
        "Swalpa Kumar Roy",
        "Snehasis Mukherjee",
        "Satish Kumar Singh",
        "Bidyut Baran Chaudhuri",
    ),
    year=2020,
    venue="IEEE Transactions on Neural Networks and Learning Systems 31(11)",
    arxiv="1909.11015",
    url="https://arxiv.org/abs/1909.11015",
    code="https://github.com/shivram1987/diffGrad",
)


class DiffGradHyperparameters(Hyperparameters):
    """diffGrad's hyperparameters; defaults are the official ``diffGrad_v2.py`` (and torch-optimizer) ones."""

    lr: LearningRate = 1e-3
    betas: Betas = (0.9, 0.999)
    eps: Epsilon = 1e-8
    weight_decay: WeightDecay = Field(0.0, description="coupled L2 penalty added to the gradient (as in Adam)")
    foreach: Foreach = None
    fused: Fused = None


DIFFGRAD = MethodSpec(
    name="diffgrad",
    kind="optimizer",
    summary="Adam with each step scaled by sigmoid(|g_prev - g|): slower where the gradient barely changes",
    target="gradhub_diffgrad.diffgrad:DiffGrad",
    params=DiffGradHyperparameters,
    example="gradhub_diffgrad.examples:standard_problem_with_weight_decay",
    paper=PAPER,
    tags=("adaptive", "adam-variant", "friction"),
    dtypes=("float32", "float64", "bfloat16"),
    # Elementwise per parameter: DDP and FSDP2 shards see exactly the single-process update.
    capabilities={
        "supports_foreach": True,
        "fused": (
            "hand-written C++ kernel for contiguous float32/float64 CPU tensors (one pass over memory), compiled "
            "at first use (needs a C++ compiler and ninja; cached per machine); other tensors (DTensor shards "
            "included), and all of them where it cannot be compiled, take the multi-tensor path with a warning"
        ),
        "ddp": {"status": "tested"},
        "fsdp2": {"status": "tested"},
        "compile": {"status": "tested"},
    },
    claims=("gradhub_diffgrad.claims:synthetic_function_f1",),
)
