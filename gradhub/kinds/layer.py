"""The layer kind: ``gradhub.get(name)`` is an ``nn.Module`` subclass or a function over tensors.

A module class is built as ``cls(**hparams)`` and called as ``module(*inputs)``; a function
is called as ``fn(*inputs, **hparams)``. A *composite* layer wraps modules the user brings
(a wrapper such as DANN's feature extractor + heads): it is built as
``cls(*modules, **hparams)``, and its example supplies the sub-modules through a factory.
The backward is either the exact gradient (``LayerCapabilities.gradient == "exact"``:
gradcheck must pass in float64) or a declared surrogate (straight-through estimators,
smooth surrogates of step functions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = ["LayerExample", "is_layer_target"]


@dataclass(kw_only=True)
class LayerExample:
    """Inputs for one forward pass, and hyperparameters that build a valid instance."""

    inputs: tuple[torch.Tensor, ...]
    """Floating-point inputs are differentiated; keep them small (gradcheck runs on them)."""
    hparams: dict[str, Any] = field(default_factory=dict)
    modules: Callable[[], tuple[nn.Module, ...]] | None = None
    """For a composite layer: builds the sub-modules passed positionally before the hyperparameters.

    A factory, not the modules, so that the suite's seed decides their initial weights.
    """


def is_layer_target(target: Any) -> bool:
    return (isinstance(target, type) and issubclass(target, nn.Module)) or (
        callable(target) and not isinstance(target, type)
    )
