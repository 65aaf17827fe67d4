"""gradhub-gns: gradient-regularised Newton with approximate Hessians (Semenov, Jaggi, Doikov, 2025).

This is the plugin's entry module: specs and hyperparameter models only, no torch, so listing
and inspecting the methods stays cheap. The implementation lives in
:mod:`gradhub_gns.newton` (``gns_newton``, Algorithm 1, and the gradient-method baseline),
:mod:`gradhub_gns.hessians` (exact, Gauss-Newton, Fisher-term and weighted Gauss-Newton
approximate Hessians), :mod:`gradhub_gns.radius` (the ``gns_radius`` probe) and
:mod:`gradhub_gns.problems` (LogSumExp, Rosenbrock and other test objectives).

Each method is declared once, here (``name=`` in its spec; handles ``GNS_NEWTON`` and
``GNS_RADIUS``), and once as an entry point in ``pyproject.toml``; the implementations bind to
these specs for their names, defaults and bounds. The torch-side helpers are importable from
here lazily, e.g.
``from gradhub_gns import logsumexp_gauss_newton`` imports torch only at that moment.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, Strict, model_validator

from gradhub.exports import lazy_exports
from gradhub.hyperparameters import Flag, Hyperparameters, Real
from gradhub.specs import MethodSpec, Paper

PAPER = Paper(
    title="Gradient-Normalized Smoothness for Optimization with Approximate Hessians",
    authors=("Andrei Semenov", "Martin Jaggi", "Nikita Doikov"),
    year=2025,
    venue="International Conference on Learning Representations (ICLR 2026)",
    arxiv="2506.13710",
    url="https://arxiv.org/abs/2506.13710",
    code="https://github.com/epfml/grad-norm-smooth",
)

PositiveCount = Annotated[int, Strict(), Field(ge=1)]


class GNSNewtonHyperparameters(Hyperparameters):
    """Algorithm 1's settings; defaults are the official ``grad_norm_smooth`` ones except ``tol``/``max_iter``."""

    tol: Real = Field(1e-8, ge=0, description="stop when the dual gradient norm ||grad f(x_k)||_* <= tol")
    max_iter: PositiveCount = Field(100, description="outer iterations (official n_iters=1000)")
    gamma0: Real = Field(1.0, gt=0, description="initial gamma_0 > 0 (official gamma_0=1)")
    adaptive: Flag = Field(True, description="adaptive search on gamma (Algorithm 1); False: fixed gamma")
    gamma_min: Real = Field(1e-9, gt=0, description="gamma after an accepted step is at least this (official 1e-9)")
    max_inner: PositiveCount = Field(40, description="trials of the adaptive search per iteration (official 40)")
    eps: Real = Field(1e-8, ge=0, description="lambda_k = ||g_k||_* / (gamma_k + eps), as in the official code")


class GNSRadiusHyperparameters(Hyperparameters):
    """The empirical radius probe (a gradhub addition; the paper's gamma(x) is not computed exactly)."""

    rel_tol: Real = Field(0.5, gt=0, description="allowed ||grad f(x+ru) - grad f(x) - rHu||_* / ||grad f(x)||_*")
    n_dirs: PositiveCount = Field(16, description="random unit directions (plus the -grad f direction)")
    r_min: Real = Field(1e-6, gt=0, description="smallest radius of the log grid")
    r_max: Real = Field(1e3, gt=0, description="largest radius of the log grid")
    n_grid: PositiveCount = Field(49, description="points of the log grid between r_min and r_max")

    @model_validator(mode="after")
    def _radius_range(self) -> GNSRadiusHyperparameters:
        if not self.r_min < self.r_max:
            raise ValueError(f"r_min={self.r_min} must be < r_max={self.r_max}")
        return self


GNS_NEWTON = MethodSpec(
    name="gns_newton",
    kind="solver",
    summary="Gradient-regularised Newton, lambda = ||g||/gamma, with adaptive search on gamma (Algorithm 1)",
    paper=PAPER,
    target="gradhub_gns.newton",
    params=GNSNewtonHyperparameters,
    example="gradhub_gns.examples:small_logsumexp",
    claims=("gradhub_gns.claims:logsumexp_approximate_hessian",),
    tags=("second-order", "newton", "gradient-regularisation", "approximate-hessian", "adaptive"),
    inert={"max_inner": "on the example the first trial of every iteration passes the Lemma 1 test"},
)
GNS_RADIUS = MethodSpec(
    name="gns_radius",
    kind="probe",
    summary="Empirical gradient-normalised smoothness radius of a model's loss at its current parameters",
    paper=PAPER,
    target="gradhub_gns.radius",
    params=GNSRadiusHyperparameters,
    example="gradhub_gns.examples:tiny_regression_network",
    capabilities={"form": "function"},
    tags=("second-order", "diagnostic", "smoothness"),
)

_LAZY = {
    "GNSResult": "gradhub_gns.newton",
    "gradient_method": "gradhub_gns.newton",
    "exact_hessian": "gradhub_gns.hessians",
    "gauss_newton": "gradhub_gns.hessians",
    "fisher_term": "gradhub_gns.hessians",
    "nonlinear_equations_hessian": "gradhub_gns.hessians",
    "logsumexp_gauss_newton": "gradhub_gns.hessians",
    "gns_radius_at": "gradhub_gns.radius",
    "logsumexp": "gradhub_gns.problems",
    "rosenbrock": "gradhub_gns.problems",
}

__getattr__ = lazy_exports(__name__, _LAZY)
