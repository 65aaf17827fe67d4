"""gradhub-lvhba: LV-HBA for constrained bilevel optimisation (Yao, Yu, Zeng, Zhang, ICLR 2024).

This is the plugin's entry module: the paper, the hyperparameter models and the ``MethodSpec``,
no torch, so listing and inspecting the method stays cheap. The implementation lives in
:mod:`gradhub_lvhba.lvhba` (the solver ``lv_hba`` and the stepper class ``LVHBA``),
:mod:`gradhub_lvhba.projections` (ready-made projections: ``box``, ``ball``, ``product``) and
:mod:`gradhub_lvhba.problems` (the coupled-constraint toy problem with its closed-form solution).
Those names are importable from here lazily (``from gradhub_lvhba import LVHBA`` imports torch
only then).

The method is declared once, here (``name=`` in ``LV_HBA``), and once as an entry point in
``pyproject.toml``; the solver and the stepper bind to these models for their defaults and bounds.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, Strict

from gradhub.exports import lazy_exports
from gradhub.hyperparameters import Hyperparameters, Real
from gradhub.specs import MethodSpec, Paper

PAPER = Paper(
    title=("Constrained Bi-Level Optimization: Proximal Lagrangian Value Function Approach and Hessian-free Algorithm"),
    authors=("Wei Yao", "Chengming Yu", "Shangzhi Zeng", "Jin Zhang"),
    year=2024,
    venue="International Conference on Learning Representations (ICLR 2024)",
    arxiv="2401.16164",
    url="https://arxiv.org/abs/2401.16164",
    code="https://github.com/SUSTech-Optimization/LV-HBA",
)

PositiveCount = Annotated[int, Strict(), Field(ge=1)]


class LVHBAStepHyperparameters(Hyperparameters):
    """One LV-HBA iteration's constants (Algorithm 1). Defaults: the official toy script
    ``Toy-example/LLC/LV-HBA.py`` (alpha=0.008, beta=0.02, eta=0.01, gamma1=gamma2=10,
    c_k = 0.025 (k+1)^0.3, multipliers clipped at u=1000)."""

    alpha: Real = Field(0.008, gt=0, description="step size alpha of the projected (x, y) step")
    beta: Real = Field(0.02, gt=0, description="step size beta of the projected z step")
    eta: Real = Field(0.01, gt=0, description="step size eta of the inner (theta, lambda) gradient descent-ascent step")
    gamma1: Real = Field(10.0, gt=0, description="proximal parameter gamma_1 of ||theta - y||^2 / (2 gamma_1)")
    gamma2: Real = Field(10.0, gt=0, description="proximal parameter gamma_2 of ||lambda - z||^2 / (2 gamma_2)")
    c0: Real = Field(0.025, gt=0, description="penalty schedule c_k = c0 (k + 1)^p: its scale")
    p: Real = Field(
        0.3, gt=0, lt=0.5, description="penalty schedule c_k = c0 (k + 1)^p: its growth (the theory needs 0 < p < 1/2)"
    )
    lam_max: Real = Field(
        1000.0, gt=0, description="r: lambda and z are projected onto [0, r]^m ([-r, r]^m for equality constraints)"
    )
    constraint: Literal["inequality", "equality"] = Field(
        "inequality",
        description=(
            "'inequality': g(x, y) <= 0, multipliers in [0, r] (the paper); 'equality': g(x, y) = 0, multipliers "
            "in [-r, r] (the official LLC toy)"
        ),
    )


class LVHBAHyperparameters(LVHBAStepHyperparameters):
    """LV-HBA as a solver: the iteration's constants plus the stopping rule."""

    tol: Real = Field(
        1e-4,
        ge=0,
        description=(
            "stop when max(stationarity, |f(x, y) - v(x, y, z)|) <= tol for every restart (the residual: "
            "the step the next iteration would take, scaled by its step sizes, and the value-function gap)"
        ),
    )
    max_iter: PositiveCount = Field(10000, description="maximum number of iterations")


LV_HBA = MethodSpec(
    name="lv_hba",
    kind="solver",
    summary=(
        "LV-HBA: single-loop, Hessian-free constrained bilevel optimisation via the proximal Lagrangian value function"
    ),
    paper=PAPER,
    target="gradhub_lvhba.lvhba",
    params=LVHBAHyperparameters,
    example="gradhub_lvhba.examples:small_coupled_toy",
    claims=("gradhub_lvhba.claims:toy_convergence",),
    tags=("bilevel", "constrained-optimization", "value-function", "hessian-free", "single-loop", "penalty"),
)

__getattr__ = lazy_exports(
    __name__,
    {
        "LVHBA": "gradhub_lvhba.lvhba",
        "LVHBAResult": "gradhub_lvhba.lvhba",
        LV_HBA.name: "gradhub_lvhba.lvhba",
        "box": "gradhub_lvhba.projections",
        "ball": "gradhub_lvhba.projections",
        "product": "gradhub_lvhba.projections",
        "CoupledToy": "gradhub_lvhba.problems",
        "coupled_toy": "gradhub_lvhba.problems",
        "project_below_diagonal": "gradhub_lvhba.problems",
    },
)
