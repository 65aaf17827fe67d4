"""gradhub-mfac: M-FAC (Frantar, Kurtic, Alistarh, NeurIPS 2021) as gradhub methods.

The plugin's entry module: specs and hyperparameter models only, no torch import. Each
method is declared once, here (``name=`` in its spec), and once as an entry point in
``pyproject.toml``; the registry reads the module's ``MethodSpec`` objects. The optimizer
lives in :mod:`gradhub_mfac.optimizer`, the static and dynamic inverse-Fisher products in
:mod:`gradhub_mfac.ihvp`, the OBS pruner in :mod:`gradhub_mfac.pruning`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, Strict

from gradhub.hyperparameters import Flag, Foreach, Hyperparameters, LearningRate, Momentum, WeightDecay
from gradhub.specs import MethodSpec, Paper

PAPER = Paper(
    title="M-FAC: Efficient Matrix-Free Approximations of Second-Order Information",
    authors=("Elias Frantar", "Eldar Kurtic", "Dan Alistarh"),
    year=2021,
    venue="Advances in Neural Information Processing Systems (NeurIPS)",
    arxiv="2107.03356",
    url="https://arxiv.org/abs/2107.03356",
    code="https://github.com/IST-DASLab/M-FAC",
)

Damp = Annotated[float, Strict(), Field(gt=0, description="damping lambda of F = lambda*I + G^T G / m")]
WindowSize = Annotated[int, Strict(), Field(ge=1, description="number of gradients m in the (sliding) window")]
Tolerance = Annotated[
    float, Strict(), Field(ge=0, description="relative residual ||F u - x|| / ||x|| to report convergence")
]
MaxIter = Annotated[int, Strict(), Field(ge=1, description="iterations allowed (a direct method uses one)")]
BlockSize = Annotated[int, Strict(), Field(ge=1)]


class MFACHyperparameters(Hyperparameters):
    """The official ``optim.MFAC`` signature and defaults (``main_optim.py``: lr 1e-3, damp 1e-5, ngrads 1024)."""

    lr: LearningRate = 1e-3
    momentum: Momentum = 0.0
    weight_decay: WeightDecay = 0.0
    ngrads: WindowSize = 1024
    damp: Damp = 1e-5
    sparse: Flag = Field(False, description="only update weights that are nonzero at construction")
    foreach: Foreach = None


class StaticIHVPHyperparameters(Hyperparameters):
    """The static algorithm: damping (official 1e-5) and an optional block size (official pruner: 128)."""

    damp: Damp = 1e-5
    blocksize: BlockSize | None = Field(
        None, description="split the weights into blocks of this size (block-diagonal F); None: one block"
    )
    tol: Tolerance = 1e-6
    max_iter: MaxIter = 1


class DynamicIHVPHyperparameters(Hyperparameters):
    """The dynamic algorithm: window size and damping (official defaults 1024, 1e-5)."""

    ngrads: WindowSize = 1024
    damp: Damp = 1e-5
    tol: Tolerance = 1e-6
    max_iter: MaxIter = 1


class PruneHyperparameters(Hyperparameters):
    """The OBS pruner (official ``main_prun.py`` defaults: ngrads 64, blocksize 128, damp 1e-5, nrecomps 16)."""

    ngrads: WindowSize = 64
    blocksize: BlockSize | None = 128
    damp: Damp = 1e-5
    nrecomps: Annotated[int, Strict(), Field(ge=1)] = 16


MFAC = MethodSpec(
    name="mfac",
    kind="optimizer",
    summary="SGD preconditioned by the inverse damped empirical Fisher of a sliding window of gradients",
    target="gradhub_mfac.optimizer:MFAC",
    params=MFACHyperparameters,
    example="gradhub_mfac.examples:small_window_on_standard_problem",
    paper=PAPER,
    tags=("second-order", "natural-gradient", "fisher", "woodbury"),
    capabilities={
        "supports_foreach": True,
        "ddp": {"status": "tested"},
        # Under FSDP2 each process keeps the window rows of its shard; the m-vector G g is all-reduced
        # before the solve (G G^T is built from it), and each process updates its shard.
        "fsdp2": {"status": "tested"},
        "compile": {
            "status": "unsupported",
            "reason": "the window's ring position and step counts are Python ints that index the window and pick "
            "the solve's path: a compiled step recompiles every step",
        },
    },
    claims=("gradhub_mfac.claims:optimizer_beats_sgd",),
)
_DIRECT = "a direct solve takes one iteration, so every max_iter >= 1 gives the same solution"
MFAC_IHVP_STATIC = MethodSpec(
    name="mfac_ihvp_static",
    kind="solver",
    summary="Direct solve F u = x with the static M-FAC algorithm (F = damped empirical Fisher of m gradients)",
    target="gradhub_mfac.ihvp:static_ihvp",
    params=StaticIHVPHyperparameters,
    example="gradhub_mfac.examples:random_fisher_system",
    paper=PAPER,
    tags=("second-order", "fisher", "woodbury", "inverse-hessian-vector-product"),
    claims=("gradhub_mfac.claims:pruning_beats_magnitude",),
    inert={"max_iter": _DIRECT},
)
MFAC_IHVP_DYNAMIC = MethodSpec(
    name="mfac_ihvp_dynamic",
    kind="solver",
    summary="Direct solve F u = x with the dynamic (sliding-window) M-FAC algorithm after streaming gradients",
    target="gradhub_mfac.ihvp:dynamic_ihvp",
    params=DynamicIHVPHyperparameters,
    example="gradhub_mfac.examples:wrapped_window_system",
    paper=PAPER,
    tags=("second-order", "fisher", "woodbury", "inverse-hessian-vector-product"),
    inert={"max_iter": _DIRECT},
)
