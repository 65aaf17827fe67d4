"""Seeded examples for the conformance suite: a batch of 32 probabilities with both classes.

``L = 5`` keeps ``A`` well conditioned for gradcheck (at ``L = 73`` most of ``A``'s slope
sits within 0.05 of the threshold); the targets are integer labels, which every method
accepts.
"""

from __future__ import annotations

from typing import Any

import torch

from gradhub.kinds.loss import LossExample


def _batch(device: Any, dtype: torch.dtype, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    # drawn on the host and moved: the same batch on every device
    generator = torch.Generator().manual_seed(seed)
    probabilities = torch.rand(32, generator=generator, dtype=torch.float64, device="cpu") * 0.9 + 0.05
    labels = (torch.rand(32, generator=generator, device="cpu") < 0.3).long()
    labels[:2] = torch.tensor([0, 1], device="cpu")  # both classes, whatever the seed
    return probabilities.to(device=device, dtype=dtype), labels.to(device)


def f1_module_on_batch(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> LossExample:
    """The module with the F1 metric, at L = 5."""
    return LossExample(inputs=_batch(device, dtype, seed), hparams={"metric": "f1", "L": 5.0})


def amplified_batch(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> LossExample:
    """A loss of one fixed metric at L = 5 (accuracy, G-mean, balanced accuracy)."""
    return LossExample(inputs=_batch(device, dtype, seed), hparams={"L": 5.0})


def amplified_batch_beta_2(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> LossExample:
    """F-beta at L = 5 with beta = 2."""
    return LossExample(inputs=_batch(device, dtype, seed), hparams={"L": 5.0, "beta": 2.0})


def raw_batch_balanced_accuracy(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> LossExample:
    """WBCE plus balanced accuracy of the raw probabilities (no L), half and half."""
    return LossExample(inputs=_batch(device, dtype, seed), hparams={"metric": "balanced_accuracy", "r": 0.5})
