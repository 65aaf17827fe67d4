"""The loss kind: an ``nn.Module`` subclass or a function ``(input, target, ...) -> Tensor``.

Built and called like layers: ``cls(**hparams)(*inputs)`` or ``fn(*inputs, **hparams)``, with
``inputs[0]`` the prediction that gradients flow into. A loss of ``LossCapabilities.form``
``"model"`` is a training objective over a model instead (a diffusion or score-matching loss
that draws noise levels and noise itself): ``fn(model, *data, generator=g, **hparams)``, with
``inputs[0]`` the model, randomness drawn only from ``generator``, and gradients flowing into
the model's parameters. A loss that takes ``reduction``
lists the values it accepts in ``LossCapabilities.reductions``; ``"none"`` returns
per-element (or per-sample) values whose sum and mean are the other two reductions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from gradhub.errors import HyperparameterError

__all__ = ["LossExample", "is_loss_target", "reduce"]


@dataclass(kw_only=True)
class LossExample:
    inputs: tuple[Any, ...]
    """``(prediction, target, ...)``, the prediction differentiated; for a model-form loss
    ``(model, *data)``, the model's parameters differentiated."""
    hparams: dict[str, Any] = field(default_factory=dict)


def is_loss_target(target: Any) -> bool:
    return callable(target)


def reduce(values: torch.Tensor, reduction: str, method: str) -> torch.Tensor:
    """Apply ``reduction`` ("none", "mean" or "sum") to per-element loss values."""
    if reduction == "none":
        return values
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    raise HyperparameterError(method, "reduction", reduction, "one of 'none', 'mean', 'sum'")
