"""The attack kind: ``attack(model, *observed, generator=None, **hparams) -> AttackResult``.

An attack works on a user's model (never a downloaded one) from what the attacker
observes (gradients, inputs and labels, ...). It must leave the model as it found it
(weights, buffers, gradients, training mode, ``requires_grad``), stay within its budget
(``max_iter`` iterations; ``eps`` in the norm ``AttackCapabilities.perturbation_norm``
names, around the example's ``reference``) and draw randomness only from ``generator``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = ["AttackExample", "AttackResult", "is_attack_target"]


@dataclass
class AttackResult:
    output: torch.Tensor
    """The adversarial input or the reconstruction."""
    iterations: int
    history: torch.Tensor | None = None
    """The attack objective after each iteration, if recorded."""


@dataclass(kw_only=True)
class AttackExample:
    model: nn.Module
    args: tuple[Any, ...]
    hparams: dict[str, Any] = field(default_factory=dict)
    reference: torch.Tensor | None = None
    """The clean input the perturbation budget is measured from, for norm-bounded attacks."""


def is_attack_target(target: Any) -> bool:
    return callable(target) and not isinstance(target, type)
