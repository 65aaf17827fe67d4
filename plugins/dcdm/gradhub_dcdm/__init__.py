"""gradhub-dcdm: the Deep Conjugate Direction Method (Kaneda et al., ICML 2023) as gradhub methods.

This is the plugin's entry module: specs and hyperparameter models only, no torch, so
listing and inspecting the methods stays cheap. The implementation lives in
:mod:`gradhub_dcdm.dcdm` (the solver), :mod:`gradhub_dcdm.cg` (the conjugate-gradient
baseline), :mod:`gradhub_dcdm.loss` (the scale-invariant training loss),
:mod:`gradhub_dcdm.network` (DCDMNet), :mod:`gradhub_dcdm.data` (Ritz-vector right-hand
sides), :mod:`gradhub_dcdm.operators` (operators, Poisson matrix) and
:mod:`gradhub_dcdm.training` (a small training helper).

Each method is declared once, here (``name=`` in its spec, whose handle is the name in upper
case: ``DCDM``, ``CG``, ``DCDM_LOSS``, ``DCDM_NET``), and once as an entry point in
``pyproject.toml``; the implementations bind to these specs for their names, defaults and bounds.
Torch-side helpers are importable from here lazily: ``from gradhub_dcdm import poisson_matrix``
imports torch only at that moment (the solvers themselves: ``gradhub.get(DCDM.name)`` or
``from gradhub_dcdm.dcdm import dcdm``; the names ``dcdm`` and ``cg`` are their modules).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, Strict

from gradhub.exports import lazy_exports
from gradhub.hyperparameters import Flag, Hyperparameters, KeywordOnly, PathOption, Real
from gradhub.specs import MethodSpec, Paper

PAPER = Paper(
    title="A Deep Conjugate Direction Method for Iteratively Solving Linear Systems",
    authors=("Ayano Kaneda", "Osman Akar", "Jingyu Chen", "Victoria Kala", "David Hyde", "Joseph Teran"),
    year=2023,
    venue="International Conference on Machine Learning (ICML)",
    arxiv="2205.10763",
    url="https://arxiv.org/abs/2205.10763",
    code="https://github.com/ayano721/2023_DCDM",
)

Count = Annotated[int, Strict(), Field(ge=0)]
PositiveCount = Annotated[int, Strict(), Field(ge=1)]


def _dtype_name(value: Any) -> Any:
    """A torch dtype as its name (``torch.float64`` -> ``"float64"``), without importing torch here."""
    text = str(value)
    return text.removeprefix("torch.") if type(value).__name__ == "dtype" and text.startswith("torch.") else value


SolveDtype = Annotated[Literal["float32", "float64"] | None, BeforeValidator(_dtype_name)]

TOL = "stop when ||b - A x_k|| <= tol * ||b - A x_0|| (relative; official: strict <), per right-hand side"
MAX_ITER = "maximum number of iterations"
DTYPE = "precision of the iteration ('float32', 'float64' or a torch dtype); None: the dtype of A and b"


class DCDMHyperparameters(Hyperparameters):
    """DCDM's hyperparameters; official defaults except ``tol`` (official 1e-10, here 1e-6)."""

    tol: Real = Field(1e-6, ge=0, description=TOL)
    max_iter: PositiveCount = Field(100, description=MAX_ITER)
    n_orth: Count = Field(2, description="A-orthogonalise against this many previous directions (paper/official: 2)")
    normalize_input: Flag = Field(True, description="feed the model r / ||r|| (official) instead of r")
    recompute_residual: Flag = Field(
        True, description="r_k = b - A x_k each iteration (official) instead of the recurrence"
    )
    grid: tuple[PositiveCount, ...] | None = Field(
        None, description="reshape residuals to (B, 1, *grid) for the model (a DCDMNet); None: the model sees (B, n)"
    )
    dtype: SolveDtype = Field(None, description=DTYPE)


class CGHyperparameters(Hyperparameters):
    """Plain conjugate gradient (Hestenes-Stiefel), the paper's baseline."""

    tol: Real = Field(1e-6, ge=0, description=TOL)
    max_iter: PositiveCount = Field(1000, description=MAX_ITER)
    recompute_residual: Flag = Field(
        False, description="r_k = b - A x_k each iteration (official cg_normal) instead of the recurrence"
    )
    dtype: SolveDtype = Field(None, description=DTYPE)
    fused: Annotated[
        Flag | None,
        Field(
            description=(
                "one hand-written CPU kernel call per iteration for one b and a dense or CSR A in float32/float64 "
                "(compiled at first use, once per machine). None: that kernel where it applies and compiles, else "
                "the unfused iteration; True: the same, warning where it cannot be compiled; False: never"
            )
        ),
        KeywordOnly(),
        PathOption(),
    ] = None


class DCDMLossHyperparameters(Hyperparameters):
    reduction: Literal["none", "mean", "sum"] = Field("mean", description="over the batch; official: mean")


class DCDMNetHyperparameters(Hyperparameters):
    """The official 3-D architecture's layout; ``dim=2`` swaps Conv3d for Conv2d."""

    dim: Literal[2, 3] = Field(2, description="2-D or 3-D grids")
    channels: PositiveCount = Field(16, description="feature channels (official: 16)")
    n_res_fine: Count = Field(1, description="residual blocks at the fine level before pooling (official: 1)")
    n_res_coarse: Count = Field(3, description="residual blocks at the coarse level (official: 3)")
    n_res_up: Count = Field(2, description="residual blocks after upsampling (official: 2)")


_CLAIMS = ("gradhub_dcdm.claims:poisson_iteration_growth", "gradhub_dcdm.claims:trained_network_iterations")

DCDM = MethodSpec(
    name="dcdm",
    kind="solver",
    summary="Conjugate directions from a learned model of A^-1 r, A-orthogonalised against the last directions",
    paper=PAPER,
    target="gradhub_dcdm.dcdm",
    params=DCDMHyperparameters,
    example="gradhub_dcdm.examples:poisson_with_smoothing_model",
    claims=_CLAIMS,
    tags=("linear-systems", "learned-preconditioner", "poisson"),
)
CG = MethodSpec(
    name="cg",
    kind="solver",
    summary="Plain conjugate gradient for SPD systems (the DCDM paper's baseline), batched over right-hand sides",
    paper=PAPER,
    target="gradhub_dcdm.cg",
    params=CGHyperparameters,
    example="gradhub_dcdm.examples:poisson_batch",
    tags=("linear-systems", "krylov"),
)
DCDM_LOSS = MethodSpec(
    name="dcdm_loss",
    kind="loss",
    summary="Scale-invariant DCDM loss ||b - (f^T b / f^T A f) A f||^2: residual after one step along f",
    paper=PAPER,
    target="gradhub_dcdm.loss",
    params=DCDMLossHyperparameters,
    example="gradhub_dcdm.examples:poisson_predictions",
    capabilities={"gradient": "exact", "reductions": ("none", "mean", "sum")},
    tags=("linear-systems", "unsupervised"),
)
DCDM_NET = MethodSpec(
    name="dcdm_net",
    kind="layer",
    summary="DCDM's fully convolutional two-level residual network approximating A^-1 on 2-D/3-D grids",
    paper=PAPER,
    target="gradhub_dcdm.network:DCDMNet",
    params=DCDMNetHyperparameters,
    example="gradhub_dcdm.examples:small_grid_network",
    capabilities={"gradient": "exact"},
    tags=("linear-systems", "convolutional"),
)

_LAZY = {
    DCDM_LOSS.name: "gradhub_dcdm.loss",
    "DCDMNet": "gradhub_dcdm.network",
    "ritz_rhs": "gradhub_dcdm.data",
    "poisson_matrix": "gradhub_dcdm.operators",
    "train_dcdm": "gradhub_dcdm.training",
}


__getattr__ = lazy_exports(__name__, _LAZY)
