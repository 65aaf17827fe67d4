"""Seeded examples for the conformance suite: a noisy distillation batch for the loss, a tiny student for the sampler.

The loss example has 32 samples whose logits span [-5, 5] (ratios from 0.007 to 148, beyond both clip
bounds) at times spread over [0, 1], so every bin statistic, the clipping and the normalisations matter.
The sampler example runs two steps on the EDM path (80 -> 1 -> 0), so it re-noises once and the
generator matters.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from gradhub.kinds.loss import LossExample
from gradhub.kinds.sampler import SamplerExample


def loss_on_noisy_batch(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> LossExample:
    """``(x_gen, teacher_x0, fake_x0, disc_logits, t)`` for 32 two-dimensional samples."""
    generator = torch.Generator(device="cpu").manual_seed(
        seed
    )  # drawn on the host and moved: the same batch on every device
    x_gen = torch.randn(32, 2, generator=generator, dtype=torch.float64, device="cpu")
    teacher_x0 = x_gen + 0.5 * torch.randn(32, 2, generator=generator, dtype=torch.float64, device="cpu")
    fake_x0 = x_gen + 0.5 * torch.randn(32, 2, generator=generator, dtype=torch.float64, device="cpu")
    disc_logits = torch.linspace(-5, 5, 32, dtype=torch.float64, device="cpu")
    disc_logits = disc_logits[torch.randperm(32, generator=generator, device="cpu")]
    t = torch.rand(32, generator=generator, dtype=torch.float64, device="cpu")
    inputs = tuple(tensor.to(device=device, dtype=dtype) for tensor in (x_gen, teacher_x0, fake_x0, disc_logits, t))
    return LossExample(inputs=inputs)


class AffineStudent(nn.Module):
    """A toy one-step generator ``G(x, t) = W x / sqrt(1 + t^2) + b`` (its input is noise of scale t)."""

    def __init__(self, dim: int = 2) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, dim)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.linear(x / (1 + t[:, None].square()).sqrt())


def two_step_student(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> SamplerExample:
    """A seeded :class:`AffineStudent` sampled on the EDM grid [80, 1, 0] from ``x_T = 80 z``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        student = AffineStudent().to(device=device, dtype=dtype)
    generator = torch.Generator(device="cpu").manual_seed(seed + 1)
    x_T = 80.0 * torch.randn(8, 2, generator=generator, dtype=torch.float64, device="cpu").to(
        device=device, dtype=dtype
    )
    ts = torch.tensor([80.0, 1.0, 0.0], dtype=torch.float64, device=device)
    return SamplerExample(model=student, args=(x_T, ts))
