"""The probe kind: ``probe(model, *args, generator=None, **hparams) -> result``.

A probe measures a model or a training run (a Hessian spectrum, a gradient norm, ...).
It leaves the model as it found it and, given a seeded ``generator``, is deterministic.
The result is a tensor, a number, or a dataclass/dict/tuple of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

__all__ = ["ProbeExample", "is_probe_target"]


@dataclass(kw_only=True)
class ProbeExample:
    model: nn.Module
    args: tuple[Any, ...] = ()
    hparams: dict[str, Any] = field(default_factory=dict)


def is_probe_target(target: Any) -> bool:
    return callable(target) and not isinstance(target, type)
