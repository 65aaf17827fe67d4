"""Seeded examples for the conformance suite, on the claim's 2-D log-normal mixture.

The sampler gets the mixture's exact GBM score (a plain function, so the suite can count its calls), a
log-normal ``x_T`` from the schedule's prior and a 6-step grid; the loss a tiny MLP ``model(x_t, t)`` on
``(log x_t, t)`` and 16 positive mixture samples (the suite passes its own seeded ``generator=``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from gradhub.kinds.loss import LossExample
from gradhub.kinds.sampler import SamplerExample
from gradhub.kinds.schedule import ScheduleExample
from gradhub_dale_langevin.lognormal import claim_mixture
from gradhub_dale_langevin.schedule import GBMSchedule


class LogInputMLP(nn.Module):
    """``model(x, t)`` for positive 2-D data: an MLP on ``(log x, t)``; ``t`` a ``(batch,)`` tensor."""

    def __init__(self, dim: int = 2, width: int = 16, depth: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(dim + 1, width), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), nn.SiLU()]
        self.net = nn.Sequential(*layers, nn.Linear(width, dim))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.net(torch.cat([torch.log(x), t[:, None]], dim=1))


def geometric_schedule(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> ScheduleExample:
    """The claim's schedule, s(t) from 0.01 to 1.5, on 50 grid points."""
    return ScheduleExample(hparams={"sigma_max": 1.5}, steps=50)


def exact_score_on_positive_mixture(
    device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> SamplerExample:
    """Six steps of the Dale-Langevin sampler on the mixture's exact score, from the schedule's prior."""
    schedule = GBMSchedule(sigma_max=1.5)
    mixture = claim_mixture(dtype, device)
    generator = torch.Generator(device=device).manual_seed(seed)
    x_T = schedule.prior((8, 2), generator=generator, device=device, dtype=dtype)

    def score(x: Tensor, t: Tensor) -> Tensor:
        return mixture.score(x, t, schedule)

    return SamplerExample(model=score, args=(x_T, schedule.times(6, device=device)), hparams={"schedule": schedule})


def tiny_mlp_on_positive_mixture(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> LossExample:
    """A tiny MLP score model and 16 positive mixture samples."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LogInputMLP().to(device=device, dtype=dtype)
    data_generator = torch.Generator(device=device).manual_seed(seed + 1)
    x0 = claim_mixture(dtype, device).sample(16, data_generator)
    return LossExample(inputs=(model, x0), hparams={"schedule": GBMSchedule(sigma_max=1.5)})
