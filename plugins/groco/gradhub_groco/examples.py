"""Seeded examples for the conformance suite: tiny inputs, moderate steepness (gradcheck runs on them)."""

from __future__ import annotations

from typing import Any

import torch

from gradhub.kinds.layer import LayerExample
from gradhub.kinds.loss import LossExample


def _randn(shape: tuple[int, ...], seed: int, device: Any, dtype: torch.dtype) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)  # drawn on the host and moved: the same inputs on every device
    return torch.randn(shape, generator=generator, dtype=torch.float64, device="cpu").to(device, dtype)


def small_batch_odd_even(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> LayerExample:
    """Two vectors of 8 values through the odd-even network, Cauchy relaxation, steepness 2."""
    return LayerExample(inputs=(_randn((2, 8), seed, device, dtype),), hparams={"size": 8, "steepness": 2.0})


def three_views_multicrop(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> LossExample:
    """7 images x 3 views of 4-dim projections; views 0 and 1 are the full-size crops (positives), view 2 a
    small crop; the 3 hardest negatives, steepness 2. ``stop_grad=False``: the backward is then the exact
    gradient of the loss, which the suite's gradcheck verifies (stop_grad=True holds positives and negatives
    constant by design)."""
    return LossExample(
        inputs=(_randn((3, 7, 4), seed, device, dtype),),
        hparams={"n_augs": 3, "n_pos_augs": 2, "topk_neg": 3, "steepness": 2.0, "stop_grad": False},
    )
