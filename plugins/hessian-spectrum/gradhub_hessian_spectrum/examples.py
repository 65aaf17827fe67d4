"""Seeded examples for the conformance suite: a tiny tanh MLP with BatchNorm and dropout on 3 clusters.

BatchNorm and dropout make ``model_unchanged`` meaningful (the probes must evaluate in
eval mode and restore training mode); the example model starts in training mode.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gradhub.kinds.probe import ProbeExample


def _problem(device: Any, dtype: torch.dtype, seed: int) -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    # drawn on the host and moved: the same problem on every device
    generator = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(3, 4, generator=generator, dtype=torch.float64, device="cpu")
    labels = torch.arange(3, device="cpu").repeat_interleave(8)
    inputs = centres[labels] + torch.randn(24, 4, generator=generator, dtype=torch.float64, device="cpu")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Dropout(0.2), nn.Linear(6, 3))
    model = model.to(device=device, dtype=dtype).train()
    return model, (inputs.to(device=device, dtype=dtype), labels.to(device))


def lanczos_on_three_clusters(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> ProbeExample:
    model, data = _problem(device, dtype, seed)
    return ProbeExample(model=model, args=(nn.functional.cross_entropy, data), hparams={"method": "lanczos", "k": 8})


def quadrature_on_three_clusters(
    device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> ProbeExample:
    model, data = _problem(device, dtype, seed)
    return ProbeExample(
        model=model, args=(nn.functional.cross_entropy, data), hparams={"n_probes": 3, "m": 10, "grid_points": 64}
    )


def dense_split_on_three_clusters(
    device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> ProbeExample:
    model, data = _problem(device, dtype, seed)
    return ProbeExample(model=model, args=(nn.functional.cross_entropy, data), hparams={"method": "dense"})


def path_between_two_seeds(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> ProbeExample:
    model, data = _problem(device, dtype, seed)
    other, _ = _problem(device, dtype, seed + 1)
    state_a = {name: value.detach().clone() for name, value in model.state_dict().items()}
    state_b = {name: value.detach().clone() for name, value in other.state_dict().items()}
    return ProbeExample(
        model=model, args=(state_a, state_b, nn.functional.cross_entropy, data), hparams={"n_points": 5}
    )
