"""DANN's two schedules over training progress p in [0, 1]: lambda_p and the learning rate mu_p.

Paper: "Domain-Adversarial Training of Neural Networks", Ganin et al., JMLR 17(59), 2016,
arXiv:1505.07818, Sec. 5.2.2 ("Training procedure"). Official code: none in PyTorch.

* adaptation factor (Sec. 5.2.2): lambda_p = 2 / (1 + exp(-gamma p)) - 1, gamma = 10, which
  rises from 0 to about 1 and keeps the domain classifier's noisy early signal from the
  feature extractor. ``max_lambda`` scales it (the paper's value is 1; it is the usual way to
  pick a smaller final lambda, as in the paper's Office experiments' grid).
* learning rate (Sec. 5.2.2): mu_p = mu_0 / (1 + alpha p)^beta with mu_0 = 0.01, alpha = 10,
  beta = 0.75; ``dann_lr`` gives the factor (1 + alpha p)^-beta to a ``LambdaLR``, so mu_0 is
  the optimizer's own lr.

p is progress over optimizer steps (not epochs): p = step / total_steps. Past
``total_steps`` the learning-rate factor stays at its p = 1 value (an addition: the
paper never trains past p = 1).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, overload

import torch
from torch import Tensor

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import validated
from gradhub.kinds.inputs import require_tensor, require_values
from gradhub_dann import DANN_LAMBDA, DANN_LR

_PROGRESS = "p (training progress) must be a finite number in [0, 1], or a real floating tensor of them"


def _check_progress(p: Any) -> None:
    if isinstance(p, Tensor):
        require_tensor(DANN_LAMBDA.name, "p", p, what="of progress values in [0, 1]")
        require_values(DANN_LAMBDA.name, "p", ~((p >= 0) & (p <= 1)), p, _PROGRESS)  # NaN lands here too
    elif isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= float(p) <= 1:  # NaN too
        raise UnsupportedInputError(DANN_LAMBDA.name, "p", repr(p), _PROGRESS)


@overload
def dann_lambda(p: float, *, gamma: float = ..., max_lambda: float = ...) -> float: ...
@overload
def dann_lambda(p: Tensor, *, gamma: float = ..., max_lambda: float = ...) -> Tensor: ...


@validated(DANN_LAMBDA)
def dann_lambda(p: float | Tensor, *, gamma: float, max_lambda: float) -> float | Tensor:
    """lambda_p = max_lambda * (2 / (1 + exp(-gamma p)) - 1) (Sec. 5.2.2); 0 at p = 0, increasing.

    ``p`` is a number in [0, 1] (returns a float) or a floating tensor of them (returns a tensor).
    Written as ``max_lambda * tanh(gamma p / 2)``, the same function without the cancellation
    of ``2 / (1 + e^-x) - 1`` near p = 0.
    """
    _check_progress(p)
    if isinstance(p, Tensor):
        return max_lambda * torch.tanh(p * (gamma / 2))
    return max_lambda * math.tanh(gamma * float(p) / 2)


class DannLrFactor:
    """The ``LambdaLR`` multiplier (1 + alpha min(step / total_steps, 1))^-beta (Sec. 5.2.2).

    A callable object rather than a closure so that ``LambdaLR.state_dict`` saves its fields.
    """

    def __init__(self, total_steps: int, alpha: float, beta: float) -> None:
        self.total_steps, self.alpha, self.beta = total_steps, alpha, beta

    def __call__(self, step: int) -> float:
        progress = min(step / self.total_steps, 1.0)
        return (1.0 + self.alpha * progress) ** -self.beta


@validated(DANN_LR)
def dann_lr(
    optimizer: torch.optim.Optimizer, *, total_steps: int, alpha: float, beta: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` giving mu_p = mu_0 / (1 + alpha p)^beta, p = step / total_steps (Sec. 5.2.2).

    mu_0 is each param group's lr when the scheduler is built (paper: SGD, lr 0.01, momentum 0.9).
    Call ``scheduler.step()`` after each ``optimizer.step()``.
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise UnsupportedInputError(
            DANN_LR.name, "optimizer", type(optimizer).__name__, "optimizer must be a torch.optim.Optimizer"
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, DannLrFactor(total_steps, alpha, beta))


# The public names, from the objects themselves: each method's name is written once, in its spec.
__all__ = [
    exported.__name__
    for exported in (
        DannLrFactor,
        dann_lambda,
        dann_lr,
    )
]
