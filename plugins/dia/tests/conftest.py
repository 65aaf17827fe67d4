"""Shared pieces for the DIA tests: a deliberately wrong DIA built from the real one."""

from __future__ import annotations

from typing import Any
from unittest import mock

import torch
from gradhub_dia import inversion
from gradhub_dia.inversion import GradientInversionResult, dropout_inversion_attack


class _FrozenMasks(inversion._Trial):
    """Adam never moves the masks (their gradients are replaced by zeros): they keep their Bernoulli start."""

    def step(self, gradients: Any) -> None:
        x_gradient, *mask_gradients = gradients
        super().step([x_gradient, *(torch.zeros_like(gradient) for gradient in mask_gradients)])


def wrong_dia(*, optimise_masks: bool = True):
    """DIA with one deliberate defect: ``optimise_masks=False`` (the masks are never optimised)."""

    def attack(*args: Any, **kwargs: Any) -> GradientInversionResult:
        trial = inversion._Trial if optimise_masks else _FrozenMasks
        with mock.patch.object(inversion, "_Trial", trial):
            return dropout_inversion_attack(*args, **kwargs)

    return attack


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
