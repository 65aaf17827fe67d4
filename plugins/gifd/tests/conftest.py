"""Shared pieces for the GIFD tests: a tiny generator, a tiny client, a plain latent attack."""

from __future__ import annotations

import pytest
import torch
from gradhub_gifd.prior import SequentialGenerator
from torch import nn

from gradhub.testing.pytest_plugin import one_torch_thread_per_test as pytest_runtest_call  # noqa: F401


def tiny_prior(seed: int = 1, dtype: torch.dtype = torch.float64) -> SequentialGenerator:
    """4 -> 8 -> 16 -> 1x4x4 (tanh), three blocks."""
    torch.manual_seed(seed)
    blocks = [
        nn.Linear(4, 8),
        nn.Sequential(nn.ReLU(), nn.Linear(8, 16)),
        nn.Sequential(nn.Tanh(), nn.Unflatten(1, (1, 4, 4))),
    ]
    return SequentialGenerator(blocks, (4,)).to(dtype)


def tiny_client(seed: int = 0, dtype: torch.dtype = torch.float64, batch: int = 1):
    """A 16 -> 8 -> ReLU -> 3 MLP, one image in [0, 1] drawn by the prior plus noise, its gradient."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)).to(dtype)
    images = torch.rand(batch, 1, 4, 4, dtype=dtype)
    labels = torch.arange(batch) % 3
    loss = nn.functional.cross_entropy(model(images), labels)
    return model, [g.detach() for g in torch.autograd.grad(loss, list(model.parameters()))], labels, images


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def world():
    """The helpers above, for the tests (pytest imports test files with --import-mode=importlib)."""
    return type(
        "World",
        (),
        {"prior": staticmethod(tiny_prior), "client": staticmethod(tiny_client), "generator": staticmethod(generator)},
    )
