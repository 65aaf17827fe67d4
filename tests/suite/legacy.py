"""Plugin protocol 1, which the core still accepts from third parties: one small fixture per shape.

* an optimizer with ``method`` and ``hyperparameters`` class attributes and no ``spec``, whose
  own ``__init__`` writes the defaults and calls ``super().__init__(params, defaults)``, and whose
  ``step`` reads ``group[...]`` and the underscore helpers;
* a function validated as ``@validated("name", Model)``, its defaults written in its signature.

The third shape, an entry module with only a ``register_methods`` hook, is installed by
``tests/test_registry.py``. ``conftest.py`` loads this file as ``gradhub_suite_legacy``;
``test_legacy.py`` runs the suite on both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from gradhub_suite_methods import (
    PAPER,
    MomentumHyperparameters,
    SquaredErrorHyperparameters,
)
from torch import Tensor

from gradhub.hyperparameters import validated
from gradhub.kinds.loss import reduce
from gradhub.kinds.optimizer import Optimizer
from gradhub.specs import MethodSpec

MODULE = "gradhub_suite_legacy"

LEGACY_MOMENTUM = MethodSpec(
    name="suite-legacy-momentum",
    kind="optimizer",
    summary="conformance-suite fixture: a protocol-1 optimizer",
    paper=PAPER,
    target=f"{MODULE}:LegacyMomentumSGD",
    params=MomentumHyperparameters,
    example="gradhub_suite_methods:momentum_example",
    capabilities={"ddp": {"status": "untested"}},
)
LEGACY_SQUARED_ERROR = MethodSpec(
    name="suite-legacy-squared-error",
    kind="loss",
    summary="conformance-suite fixture: a protocol-1 function",
    paper=PAPER,
    target=f"{MODULE}:legacy_squared_error",
    params=SquaredErrorHyperparameters,
    example="gradhub_suite_methods:regression_example",
    capabilities={"reductions": ("none", "mean", "sum")},
)


class LegacyMomentumSGD(Optimizer):
    """SGD with momentum as gradhub 0.1 plugins wrote it: the constructor and the defaults by hand."""

    method = LEGACY_MOMENTUM.name
    hyperparameters = MomentumHyperparameters

    def __init__(
        self, params: Any, lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 0.0, *, foreach: Any = None
    ) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, foreach=foreach))

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = self._evaluate(closure)
        for group, params in zip(self.param_groups, self._parameters_with_gradients()):
            for param in params:
                state = self.state[param]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                buffer = state["momentum_buffer"].mul_(group["momentum"]).add_(param.grad)
                if group["weight_decay"]:
                    param.mul_(1 - group["lr"] * group["weight_decay"])
                param.add_(buffer, alpha=-group["lr"])
        return loss


@validated(LEGACY_SQUARED_ERROR.name, SquaredErrorHyperparameters)
def legacy_squared_error(prediction: Tensor, target: Tensor, weight: float = 1.0, reduction: str = "mean") -> Tensor:
    return reduce(weight * (prediction - target) ** 2, reduction, LEGACY_SQUARED_ERROR.name)
