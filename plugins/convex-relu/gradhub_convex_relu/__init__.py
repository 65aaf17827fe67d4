"""gradhub-convex-relu: convex training of two-layer ReLU networks (Bai, Gautam, Sojoudi, SIMODS 2023).

This is the plugin's entry module: specs and hyperparameter models only, no torch, so listing
and inspecting the methods stays cheap. The implementation lives in
:mod:`gradhub_convex_relu.admm` (``convex_relu_admm``: the convex program of Pilanci & Ergen solved
by the paper's ADMM, §3), :mod:`gradhub_convex_relu.scp` (``convex_relu_scp``: the gated-ReLU
sampled convex program, §2.2, by FISTA or ADMM), :mod:`gradhub_convex_relu.adversarial`
(``convex_relu_adv``: convex adversarial training under l-infinity perturbations with the hinge
loss, §4), :mod:`gradhub_convex_relu.arrangements` (sampled or enumerated hyperplane arrangements
D_i), :mod:`gradhub_convex_relu.network` (recovering the equivalent ReLU network, its non-convex
objective, and an Adam baseline on that objective), :mod:`gradhub_convex_relu.estimators`
(scikit-learn-style classes ``ConvexReLUADMM``, ``GatedReLUSCP``, ``RobustConvexReLU`` over the
solvers) and :mod:`gradhub_convex_relu.reference` (the same programs in cvxpy, for checking).

Each method is declared once, here (``name=`` in its spec; handles ``CONVEX_RELU_ADMM``,
``CONVEX_RELU_SCP``, ``CONVEX_RELU_ADV``), and once as an entry point in ``pyproject.toml``.
The helpers are importable from here lazily, e.g. ``from gradhub_convex_relu import
sample_arrangements`` imports torch only at that moment.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, Strict, model_validator

from gradhub.exports import lazy_exports
from gradhub.hyperparameters import Flag, Hyperparameters, Real
from gradhub.specs import MethodSpec, Paper

PAPER = Paper(
    title=(
        "Efficient Global Optimization of Two-layer ReLU Networks: Quadratic-time Algorithms and Adversarial Training"
    ),
    authors=("Yatong Bai", "Tanmay Gautam", "Somayeh Sojoudi"),
    year=2023,
    venue="SIAM Journal on Mathematics of Data Science (SIMODS)",
    arxiv="2201.01965",
    url="https://arxiv.org/abs/2201.01965",
)

PositiveCount = Annotated[int, Strict(), Field(ge=1)]
Count = Annotated[int, Strict(), Field(ge=0)]
GOLDEN = (1 + 5**0.5) / 2

N_ARRANGEMENTS = "hyperplanes h_i ~ N(0, I) sampled for the patterns D_i = diag(1[X h_i >= 0]) (duplicates dropped)"
BETA = "weight-decay strength beta of the group-lasso term beta * sum_i (||v_i|| + ||w_i||)"
RHO = "ADMM penalty rho (the paper tunes it per dataset; our default)"
GAMMA = "ADMM dual step gamma, lambda <- lambda + gamma (u - z); 0 < gamma < (1 + sqrt 5) / 2"
TOL = "stop when max(primal residuals ||u - z||, ||G u - s||, dual residual rho ||Delta z + G^T Delta s||) <= tol"
INCLUDE_BIAS = "append a column of ones to X (the first layer's bias; it is penalised like the weights)"
SEED = "seed of the sampled hyperplanes h_i (torch.Generator on the host)"
EXACT = "enumerate every arrangement (all cells of the hyperplane arrangement; tiny n, d only) instead of sampling"
LOSS = "loss summed over samples: 'squared' 1/2 (yhat - y)^2, 'logistic' log(1 + exp(-y yhat)), 'hinge' (1 - y yhat)_+"


class ConvexReLUADMMHyperparameters(Hyperparameters):
    """The convex two-layer ReLU program solved by ADMM (§3); defaults are ours (the paper tunes per dataset)."""

    n_arrangements: PositiveCount = Field(64, description=N_ARRANGEMENTS)
    beta: Real = Field(1e-3, gt=0, description=BETA)
    rho: Real = Field(0.1, gt=0, description=RHO)
    gamma: Real = Field(1.0, gt=0, lt=GOLDEN, description=GAMMA)
    loss: Literal["squared", "logistic", "hinge"] = Field(
        "squared", description=LOSS + "; logistic and hinge use labels +-1 and an extra ADMM split yhat = F u"
    )
    max_iter: PositiveCount = Field(500, description="maximum number of ADMM iterations")
    tol: Real = Field(1e-6, ge=0, description=TOL)
    include_bias: Flag = Field(True, description=INCLUDE_BIAS)
    seed: Count = Field(0, description=SEED)
    exact: Flag = Field(False, description=EXACT)


class GatedReLUSCPHyperparameters(Hyperparameters):
    """The gated-ReLU sampled convex program (no cone constraints), by FISTA (§2.2) or ADMM."""

    n_arrangements: PositiveCount = Field(64, description=N_ARRANGEMENTS)
    beta: Real = Field(1e-3, gt=0, description="weight-decay strength beta of beta * sum_i ||u_i||")
    loss: Literal["squared", "logistic", "hinge"] = Field(
        "squared", description=LOSS + "; 'hinge' is not smooth and needs solver='admm'"
    )
    solver: Literal["fista", "admm"] = Field(
        "fista", description="'fista': accelerated proximal gradient, step 1/L; 'admm': the ADMM of §3 without cones"
    )
    max_iter: PositiveCount = Field(1000, description="maximum number of iterations")
    tol: Real = Field(
        1e-6,
        ge=0,
        description="stop when the residual is <= tol: FISTA ||L (y_k - x_k+1)|| (gradient mapping), ADMM as §3",
    )
    rho: Real = Field(0.1, gt=0, description="ADMM penalty rho (solver='admm' only)")
    include_bias: Flag = Field(True, description=INCLUDE_BIAS)
    seed: Count = Field(0, description=SEED)
    exact: Flag = Field(False, description=EXACT)

    @model_validator(mode="after")
    def _hinge_needs_admm(self) -> GatedReLUSCPHyperparameters:
        if self.loss == "hinge" and self.solver == "fista":
            raise ValueError("loss='hinge' is not differentiable: use solver='admm' (FISTA needs a smooth loss)")
        return self


class RobustConvexReLUHyperparameters(Hyperparameters):
    """Convex adversarial training (§4): l-infinity radius eps, hinge loss, robust cone constraints."""

    eps: Real = Field(ge=0, description="l-infinity radius of the perturbations of the features (not of the bias 1)")
    norm: Literal["linf"] = Field("linf", description="perturbation norm (the paper's l-infinity; only choice)")
    loss: Literal["hinge"] = Field("hinge", description="(1 - y yhat)_+ summed over samples, labels +-1")
    n_arrangements: PositiveCount = Field(64, description=N_ARRANGEMENTS)
    beta: Real = Field(1e-3, gt=0, description=BETA)
    solver: Literal["admm", "cvxpy"] = Field(
        "admm", description="'admm': ADMM with l1-epigraph splits (dense, small problems); 'cvxpy': CLARABEL"
    )
    rho: Real = Field(1.0, gt=0, description="ADMM penalty rho (solver='admm')")
    gamma: Real = Field(1.0, gt=0, lt=GOLDEN, description=GAMMA)
    max_iter: PositiveCount = Field(2000, description="maximum number of ADMM iterations")
    tol: Real = Field(
        1e-6, ge=0, description="ADMM: primal and dual residuals <= tol; cvxpy: constraint violation <= tol"
    )
    include_bias: Flag = Field(True, description=INCLUDE_BIAS)
    seed: Count = Field(0, description=SEED)
    exact: Flag = Field(False, description=EXACT)


_TAGS = ("convex-neural-networks", "relu", "admm", "global-optimisation", "group-lasso")

CONVEX_RELU_ADMM = MethodSpec(
    name="convex_relu_admm",
    kind="solver",
    summary="Globally optimal two-layer ReLU network: the convex program over arrangements D_i solved by ADMM",
    paper=PAPER,
    target="gradhub_convex_relu.admm",
    params=ConvexReLUADMMHyperparameters,
    example="gradhub_convex_relu.examples:small_regression",
    claims=("gradhub_convex_relu.claims:global_optimum_vs_sgd",),
    dtypes=("float32", "float64"),
    tags=_TAGS,
)
CONVEX_RELU_SCP = MethodSpec(
    name="convex_relu_scp",
    kind="solver",
    summary="Gated-ReLU sampled convex program (fixed gates 1[x^T h_i >= 0]): group lasso by FISTA or ADMM",
    paper=PAPER,
    target="gradhub_convex_relu.scp",
    params=GatedReLUSCPHyperparameters,
    example="gradhub_convex_relu.examples:small_gated",
    dtypes=("float32", "float64"),
    tags=(*_TAGS, "fista", "gated-relu"),
)
CONVEX_RELU_ADV = MethodSpec(
    name="convex_relu_adv",
    kind="solver",
    summary="Convex adversarial training of a two-layer ReLU network (l-inf, hinge): robust convex program",
    paper=PAPER,
    target="gradhub_convex_relu.adversarial",
    params=RobustConvexReLUHyperparameters,
    example="gradhub_convex_relu.examples:small_robust",
    dtypes=("float32", "float64"),
    tags=(*_TAGS, "adversarial-training", "robust-optimisation"),
)

_LAZY = {
    "Arrangements": "gradhub_convex_relu.arrangements",
    "sample_arrangements": "gradhub_convex_relu.arrangements",
    "ConvexReLUResult": "gradhub_convex_relu.admm",
    "GatedReLUResult": "gradhub_convex_relu.scp",
    "RobustReLUResult": "gradhub_convex_relu.adversarial",
    "recover_network": "gradhub_convex_relu.network",
    "network_objective": "gradhub_convex_relu.network",
    "train_relu_network": "gradhub_convex_relu.network",
    "ConvexReLUADMM": "gradhub_convex_relu.estimators",
    "GatedReLUSCP": "gradhub_convex_relu.estimators",
    "RobustConvexReLU": "gradhub_convex_relu.estimators",
    "half_moons": "gradhub_convex_relu.data",
}

__getattr__ = lazy_exports(__name__, _LAZY)
