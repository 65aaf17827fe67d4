"""The probe kind: a measurement of a model, or of a training run.

``ProbeCapabilities.form`` says which:

``function`` (default)
    ``probe(model, *args, generator=None, **hparams) -> result``: measures the model as it is
    (a Hessian spectrum, a loss along a path). It leaves the model as it found it and, given
    a seeded ``generator``, is deterministic. The result is a tensor, a number, or a
    dataclass/dict/tuple of them.
``recorder``
    ``cls(model, **hparams)`` is a :class:`Recorder` that watches a run: the training loop
    calls ``record()`` once per step, after ``backward()`` and before ``optimizer.step()``,
    and it returns that step's measurement (a gradient norm, a sharpness estimate). Recording
    changes nothing in the model or its gradients, and ``state_dict()`` /
    ``load_state_dict()`` carry the history across a checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

__all__ = ["ProbeExample", "Recorder", "is_probe_target"]


@dataclass(kw_only=True)
class ProbeExample:
    model: nn.Module
    args: tuple[Any, ...] = ()
    """A function probe's arguments after the model. For a recorder: ``(loss_fn,)`` with
    ``loss_fn(model) -> scalar tensor``, the loss of the run the suite trains."""
    hparams: dict[str, Any] = field(default_factory=dict)
    steps: int = 4
    """For a recorder: the number of training steps the suite runs (SGD) while recording."""


@runtime_checkable
class Recorder(Protocol):
    """What a recorder-form probe builds: one measurement per ``record()``, a resumable history."""

    def record(self) -> Any: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


LossFunction = Callable[[nn.Module], torch.Tensor]


def is_probe_target(target: Any) -> bool:
    return callable(target)
