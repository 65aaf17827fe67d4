"""Small problems and wrong variants shared by the tests."""

from __future__ import annotations

import torch
from gradhub_convex_relu.admm import ConvexReLUResult, admm_iterations
from gradhub_convex_relu.problem import prepare

from gradhub.kinds.solver import Iterate, run_iterations

D = torch.float64


def regression(n: int = 20, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """n points in R^2 with real targets (float64)."""
    generator = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 2, generator=generator, dtype=D)
    return X, torch.randn(n, generator=generator, dtype=D)


def classification(n: int = 20, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """n points in R^2 labelled sign(x_1 x_2) (an XOR pattern: not linearly separable)."""
    X, _ = regression(n, seed)
    return X, torch.where(X[:, 0] * X[:, 1] > 0, 1.0, -1.0).to(D)


def relu_admm_variant(X, y, *, cones: bool = True, max_iter: int, tol: float = 1e-6, **hparams) -> ConvexReLUResult:
    """The ReLU program's ADMM run through the solver frame with ``cones`` switchable (False: a wrong variant)."""
    options = {"n_arrangements": 8, "beta": 0.1, "rho": 0.1, "gamma": 1.0, "loss": "squared", "seed": 0} | hparams
    problem = prepare(
        "variant",
        X,
        y,
        loss=options["loss"],
        include_bias=True,
        n_arrangements=options["n_arrangements"],
        seed=options["seed"],
        exact=False,
    )
    extras = {"patterns": problem.patterns, "gates": problem.gates, "include_bias": True, "loss": options["loss"]}
    states = admm_iterations(
        problem,
        signs=2,
        cones=cones,
        loss=options["loss"],
        beta=options["beta"],
        rho=options["rho"],
        gamma=options["gamma"],
    )
    iterates = (Iterate(state.solution, state.residual, {**state.extras, **extras}) for state in states)
    with torch.no_grad():
        return run_iterations("variant", iterates, tol=tol, max_iter=max_iter, result=ConvexReLUResult)
