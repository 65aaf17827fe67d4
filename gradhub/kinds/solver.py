"""The solver kind: a callable ``solve(*problem, tol=..., max_iter=..., **hparams) -> SolverResult``.

Its hyperparameters include ``tol`` (stop when the residual is at most ``tol``) and
``max_iter``. The result records whether it converged, how many iterations it took and
the residual after each (``residuals[0]`` before the first).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["SolverExample", "SolverResult", "is_solver_target"]


@dataclass
class SolverResult:
    solution: Any
    converged: bool
    iterations: int
    residuals: torch.Tensor
    """1-D, ``iterations + 1`` entries: the residual before the first iteration and after each."""


@dataclass(kw_only=True)
class SolverExample:
    args: tuple[Any, ...]
    hparams: dict[str, Any] = field(default_factory=dict)
    residual: Callable[[Any], float]
    """The residual of a returned solution, computed independently of the solver."""


def is_solver_target(target: Any) -> bool:
    return callable(target) and not isinstance(target, type)
