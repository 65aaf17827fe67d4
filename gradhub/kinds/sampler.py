"""The sampler kind: ``sample(model, *args, generator=None, **hparams) -> SampleResult``.

A sampler draws from a model (a denoiser, a score, an energy) using only ``generator``
for randomness, so a seed reproduces the samples, and reports how many times it
evaluated the model (one call, batched or not, is one evaluation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["SampleResult", "SamplerExample", "is_sampler_target"]


@dataclass
class SampleResult:
    samples: torch.Tensor
    evaluations: int
    trajectory: torch.Tensor | None = None


@dataclass(kw_only=True)
class SamplerExample:
    model: Callable[..., Any]
    args: tuple[Any, ...] = ()
    hparams: dict[str, Any] = field(default_factory=dict)


def is_sampler_target(target: Any) -> bool:
    return callable(target) and not isinstance(target, type)
