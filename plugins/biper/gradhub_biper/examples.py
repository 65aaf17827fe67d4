"""Seeded examples for the conformance suite: tiny inputs, BiPer's default frequency."""

from __future__ import annotations

from typing import Any

import torch

from gradhub.kinds.layer import LayerExample


def _randn(shape: tuple[int, ...], seed: int, device: Any, dtype: torch.dtype, scale: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)  # drawn on the host and moved: the same inputs on every device
    return (scale * torch.randn(shape, generator=generator, dtype=torch.float64, device="cpu")).to(device, dtype)


def small_image_batch(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> LayerExample:
    """Two 3-channel 5 x 5 images through a 3 -> 4 channel, 3 x 3 convolution with padding 1."""
    inputs = _randn((2, 3, 5, 5), seed, device, dtype)
    return LayerExample(inputs=(inputs,), hparams={"in_channels": 3, "out_channels": 4, "kernel_size": 3, "padding": 1})


def small_feature_batch(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> LayerExample:
    """Four 6-feature samples through a 6 -> 5 linear layer."""
    inputs = _randn((4, 6), seed, device, dtype)
    return LayerExample(inputs=(inputs,), hparams={"in_features": 6, "out_features": 5})


def small_latent_weights(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> LayerExample:
    """Latent weights of scale 0.1 (a few periods of the square wave at freq 20)."""
    weights = _randn((4, 6), seed, device, dtype, scale=0.1)
    return LayerExample(inputs=(weights,), hparams={"freq": 20.0})


def standard_normal_activations(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> LayerExample:
    return LayerExample(inputs=(_randn((4, 6), seed, device, dtype),), hparams={})
