"""Estimator-style classes over the three solvers: ``fit(X, y)``, ``predict(X)``, ``to_network()``.

Paper: "Efficient Global Optimization of Two-layer ReLU Networks: Quadratic-time Algorithms and
Adversarial Training", Yatong Bai, Tanmay Gautam, Somayeh Sojoudi, SIMODS 2023, arXiv:2201.01965.

gradhub's solver kind is a function (``gradhub.get(CONVEX_RELU_ADMM.name)`` returns
:func:`gradhub_convex_relu.admm.convex_relu_admm`); these classes hold the hyperparameters
(validated at construction against the same models, so the bounds are written once), call the
solver in ``fit`` and keep its result in ``result_``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import validate_hyperparameters
from gradhub.progress import ProgressCallback
from gradhub_convex_relu import CONVEX_RELU_ADMM, CONVEX_RELU_ADV, CONVEX_RELU_SCP


class _Estimator:
    spec: Any
    solver_path: str

    def __init__(self, **hyperparameters: Any) -> None:
        self.hyperparameters = validate_hyperparameters(self.spec.name, self.spec.params, hyperparameters)
        self.result_: Any = None

    def __repr__(self) -> str:
        given = ", ".join(f"{name}={value!r}" for name, value in self.hyperparameters.items())
        return f"{type(self).__name__}({given})"

    def fit(self, X: Tensor, y: Tensor, gates: Tensor | None = None, *, progress: ProgressCallback | None = None):
        """Solve the convex program on (X, y); returns ``self`` (the solver's result in ``result_``)."""
        from gradhub.registry import import_target

        solve = import_target(self.spec.target)
        self.result_ = solve(X, y, gates, progress=progress, **self.hyperparameters)
        return self

    def _fitted(self) -> Any:
        if self.result_ is None:
            raise UnsupportedInputError(self.spec.name, "estimator", "not fitted", "call fit(X, y) first")
        return self.result_

    @property
    def converged_(self) -> bool:
        return self._fitted().converged

    @property
    def objective_history(self) -> Tensor:
        """The convex objective before the first iteration and after each (``iterations + 1`` entries)."""
        return self._fitted().objectives

    @property
    def weights_(self) -> Tensor:
        return self._fitted().solution

    def predict(self, X: Tensor) -> Tensor:
        """The fitted model's output on X (n, d0), as (n,)."""
        return self._fitted().predict(X)


class ConvexReLUADMM(_Estimator):
    """``ConvexReLUADMM(n_arrangements=64, beta=1e-3, rho=0.1, gamma=1.0, loss="squared", max_iter=500, tol=1e-6,
    include_bias=True, seed=0, exact=False)``: the convex two-layer ReLU program by ADMM (§3)."""

    spec = CONVEX_RELU_ADMM

    def to_network(self) -> nn.Sequential:
        """``Sequential(Linear(d0, m), ReLU(), Linear(m, 1, bias=False))`` with the recovered weights."""
        return self._fitted().network()


class GatedReLUSCP(_Estimator):
    """``GatedReLUSCP(n_arrangements=64, beta=1e-3, loss="squared", solver="fista", max_iter=1000, ...)``:
    the gated-ReLU sampled convex program (§2.2); ``predict`` uses the fixed gates."""

    spec = CONVEX_RELU_SCP

    @property
    def gates_(self) -> Tensor:
        return self._fitted().gates


class RobustConvexReLU(_Estimator):
    """``RobustConvexReLU(eps, norm="linf", loss="hinge", n_arrangements=64, beta=1e-3, solver="admm", ...)``:
    convex adversarial training (§4)."""

    spec = CONVEX_RELU_ADV

    def __init__(self, eps: float, **hyperparameters: Any) -> None:
        super().__init__(eps=eps, **hyperparameters)

    def to_network(self) -> nn.Sequential:
        return self._fitted().network()
