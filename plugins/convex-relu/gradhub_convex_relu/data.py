"""Two interleaved half-moons with labels +-1: the synthetic set of the claim check and the examples."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor


def half_moons(
    n: int = 60, *, noise: float = 0.1, seed: int = 0, device: Any = "cpu", dtype: torch.dtype = torch.float64
) -> tuple[Tensor, Tensor]:
    """``n`` points on two interleaved half circles (the first n // 2 labelled +1), Gaussian noise ``noise``.

    The upper moon is (cos t, sin t), the lower (1 - cos t, 1/2 - sin t), t evenly spaced in [0, pi];
    the noise is drawn on the host from a generator seeded ``seed``, so every device gets the same points.
    """
    upper, lower = n - n // 2, n // 2
    t_upper = torch.linspace(0, math.pi, upper, dtype=torch.float64, device="cpu")
    t_lower = torch.linspace(0, math.pi, lower, dtype=torch.float64, device="cpu")
    points = torch.cat(
        [
            torch.stack([t_upper.cos(), t_upper.sin()], dim=1),
            torch.stack([1 - t_lower.cos(), 0.5 - t_lower.sin()], dim=1),
        ]
    )
    generator = torch.Generator(device="cpu").manual_seed(seed)
    points = points + noise * torch.randn(points.shape, generator=generator, dtype=torch.float64, device="cpu")
    labels = torch.cat(
        [torch.ones(upper, dtype=torch.float64, device="cpu"), -torch.ones(lower, dtype=torch.float64, device="cpu")]
    )
    return points.to(device=device, dtype=dtype), labels.to(device=device, dtype=dtype)
