"""Seeded examples for the conformance suite: tiny inputs that exercise both branches of the solve."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gradhub.kinds.layer import LayerExample


def _randn(shape: tuple[int, ...], seed: int, device: Any, dtype: torch.dtype) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)  # drawn on the host and moved: the same inputs on every device
    return torch.randn(shape, generator=generator, dtype=torch.float64, device="cpu").to(device, dtype)


def token_batch(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> LayerExample:
    """Two sequences of four 5-feature tokens (a ViT-style patch embedding): N = 8 rows >= n = 5."""
    return LayerExample(
        inputs=(_randn((2, 4, 5), seed, device, dtype),), hparams={"in_features": 5, "out_features": 3, "l": 0.5}
    )


def small_image_batch(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> LayerExample:
    """Two 2-channel 5 x 5 images, 2 -> 3 channels, 3 x 3 kernel, padding 1: N = 50 patches >= n = 18."""
    return LayerExample(
        inputs=(_randn((2, 2, 5, 5), seed, device, dtype),),
        hparams={"in_channels": 2, "out_channels": 3, "kernel_size": 3, "padding": 1, "l": 0.5},
    )


def _strided_conv() -> tuple[nn.Module, ...]:
    return (nn.Conv2d(2, 3, 3, stride=2, padding=1),)


def wrapped_strided_conv(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> LayerExample:
    """``tract`` around a stride-2 conv on one 2 x 5 x 5 image: N = 9 patches < n = 18 (the N x N branch)."""
    return LayerExample(inputs=(_randn((1, 2, 5, 5), seed, device, dtype),), hparams={"l": 0.5}, modules=_strided_conv)
