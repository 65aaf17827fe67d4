"""Seeded examples for the conformance suite: tiny inputs, thresholds that every hyperparameter reaches."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gradhub.kinds.layer import LayerExample
from gradhub.kinds.probe import ProbeExample
from gradhub.kinds.schedule import ScheduleExample

# nn.Linear / nn.Conv2d initialise |W| below 1/sqrt(fan_in) (0.19 for the 3x3x3 convolution), far inside the
# official t_w = 1.5: the examples clip the weights at 0.15 with an interval of 0.02, so that moving t_w or
# the interval changes the weight gradient (the hyperparameters_have_effect check), and use o = 2, where the
# chord branch differs from the power branch (at o = 1 both are 1 and the interval has no effect).
_LAYER_OPTIONS = {"o": 2.0, "t_w": 0.15, "interval": 0.02}


def _randn(shape: tuple[int, ...], seed: int, device: Any, dtype: torch.dtype) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)  # drawn on the host and moved: the same inputs on every device
    return torch.randn(shape, generator=generator, dtype=torch.float64, device="cpu").to(device, dtype)


def spread_inputs_at_o_2(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> LayerExample:
    """48 standard-normal values: some inside the interval, most on the power branch, some beyond t."""
    return LayerExample(inputs=(_randn((6, 8), seed, device, dtype),), hparams={"o": 2.0, "t": 1.5, "interval": 0.1})


def small_image_batch(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> LayerExample:
    """Two 3-channel 5 x 5 images through a 3 -> 4 channel, 3 x 3 convolution with padding 1."""
    hparams = {"in_channels": 3, "out_channels": 4, "kernel_size": 3, "padding": 1, **_LAYER_OPTIONS}
    return LayerExample(inputs=(_randn((2, 3, 5, 5), seed, device, dtype),), hparams=hparams)


def small_feature_batch(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> LayerExample:
    """Four 6-feature samples through a 6 -> 5 linear layer."""
    hparams = {"in_features": 6, "out_features": 5, **_LAYER_OPTIONS}
    return LayerExample(inputs=(_randn((4, 6), seed, device, dtype),), hparams=hparams)


def official_schedule_over_40_epochs(
    device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> ScheduleExample:
    """o from 1 to 3 over 40 epochs, evaluated for 50 (past the end o stays 3)."""
    return ScheduleExample(hparams={"total_epochs": 40, "o_start": 1.0, "o_end": 3.0}, steps=50)


def binary_mlp_after_backward(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> ProbeExample:
    """8 -> 16 (full precision) -> 16 -> 16 (two ReSTE 1W1A layers) -> 3, after one backward at o = 2."""
    from gradhub_reste.layers import ReSTELinear

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(
            nn.Linear(8, 16), ReSTELinear(16, 16, o=2.0), ReSTELinear(16, 16, o=2.0), nn.Linear(16, 3)
        ).to(device=device, dtype=dtype)
    inputs = _randn((10, 8), seed + 1, device, dtype)
    model(inputs).square().mean().backward()
    return ProbeExample(model=model, hparams={"o": 3.0})
