"""Seeded examples for the conformance suite: a tiny MLP with dropout and one client gradient."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gradhub.kinds.attack import AttackExample
from gradhub.kinds.layer import LayerExample


def tiny_victim(
    device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0, p: float = 0.25
) -> tuple[nn.Module, dict[str, torch.Tensor], torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """A 16 -> 16 -> 3 MLP on 1x4x4 inputs with one Dropout(p); the client's gradient on 2 samples."""
    from gradhub_dia.inversion import client_gradients

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Flatten(), nn.Linear(16, 16), nn.ReLU(), nn.Dropout(p), nn.Linear(16, 3))
    model = model.to(device=device, dtype=dtype)
    # drawn on the host and moved (the masks too: MaskDropout draws on the generator's device), so the same
    # victim on every device
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.rand(2, 1, 4, 4, generator=generator, dtype=torch.float64, device="cpu").to(device, dtype)
    labels = torch.randint(3, (2,), generator=generator, device="cpu").to(device)
    gradients, masks = client_gradients(model, inputs, labels, generator=generator)
    masks = [mask.to(device) for mask in masks]
    return model, {k: v.to(device) for k, v in gradients.items()}, labels, inputs, masks


def gradient_of_tiny_dropout_mlp(
    device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> AttackExample:
    """Both attacks' example: the client gradient of :func:`tiny_victim`, 5 iterations."""
    model, gradients, labels, _, _ = tiny_victim(device, dtype, seed)
    return AttackExample(model=model, args=(gradients, labels, (1, 4, 4)), hparams={"max_iter": 5})


def fixed_continuous_mask(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> LayerExample:
    """A fixed (continuous) mask, as the attacker uses it: deterministic, with an exact gradient."""
    generator = torch.Generator().manual_seed(seed)  # drawn on the host and moved: the same on every device
    inputs = torch.randn(3, 5, generator=generator, dtype=torch.float64, device="cpu").to(device, dtype)
    mask = torch.rand(3, 5, generator=generator, dtype=torch.float64, device="cpu").to(device, dtype)
    return LayerExample(inputs=(inputs,), hparams={"p": 0.25, "mask": mask})
