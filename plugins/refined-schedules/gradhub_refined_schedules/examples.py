"""Seeded examples for the conformance suite: tiny schedules and a small model with gradients."""

from __future__ import annotations

import math

import torch
from torch import nn

from gradhub.kinds.probe import ProbeExample
from gradhub.kinds.schedule import ScheduleExample


def warmup_then_decay_over_40_steps(
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> ScheduleExample:
    return ScheduleExample(hparams={"total_steps": 40, "warmup_steps": 5, "final_frac": 0.1}, steps=50, base_lr=0.1)


def norms_falling_then_rising(
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> ScheduleExample:
    # norms that fall early (a warm-up appears) and rise a little at the end; resampled to 40 steps
    norms = tuple(round(1.0 + 4.0 * math.exp(-t / 2.0) + 0.05 * t, 6) for t in range(12))
    return ScheduleExample(hparams={"grad_norms": norms, "tau": 0.1, "total_steps": 40}, steps=50, base_lr=0.1)


def tanh_mlp_after_backward(
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> ProbeExample:
    generator = torch.Generator().manual_seed(seed)  # drawn on the host and moved: the same on every device
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, device="cpu") * 0.5)
    inputs = torch.randn(16, 6, generator=generator, device="cpu")
    model.to(device=device, dtype=dtype)
    model(inputs.to(device=device, dtype=dtype)).square().mean().backward()
    return ProbeExample(model=model, hparams={"kind": "l2"})


def tanh_mlp_trained_for_8_steps(
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> ProbeExample:
    """A recorder's example: the suite trains the model on ``loss_fn`` for ``steps`` SGD steps."""
    generator = torch.Generator().manual_seed(seed)  # drawn on the host and moved: the same on every device
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, device="cpu") * 0.5)
    model.to(device=device, dtype=dtype)
    inputs = torch.randn(16, 6, generator=generator, device="cpu").to(device=device, dtype=dtype)

    def loss_fn(model: nn.Module) -> torch.Tensor:
        return model(inputs).square().mean()

    # sync_every=3 < steps, so a round trip happens with values both on the host and on the device.
    return ProbeExample(model=model, args=(loss_fn,), hparams={"kind": "l2", "sync_every": 3}, steps=8)
