"""Shared Gaussians for the tests: a random rotation, eigenvalues over three decades, a random mean (float64)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from gradhub_gaussian_pfode.examples import random_rotation
from gradhub_gaussian_pfode.gaussian import GaussianPFODE

from gradhub.testing.pytest_plugin import one_torch_thread_per_test as pytest_runtest_call  # noqa: F401


@dataclass
class Case:
    rotation: torch.Tensor  # (d, d) orthogonal
    lam: torch.Tensor  # (d,) descending
    mean: torch.Tensor  # (d,)
    generator: torch.Generator

    @property
    def cov(self) -> torch.Tensor:
        cov = (self.rotation * self.lam) @ self.rotation.T
        return (cov + cov.T) / 2

    def gaussian(self, **kwargs) -> GaussianPFODE:
        return GaussianPFODE(self.mean, self.cov, **kwargs)

    def noisy(self, count: int, sigma: float) -> torch.Tensor:
        """``count`` draws of ``x ~ N(mean, cov + sigma^2 I)``."""
        noise = torch.randn(count, self.mean.numel(), generator=self.generator, dtype=torch.float64)
        return self.mean + (noise * (self.lam + sigma**2).sqrt()) @ self.rotation.T


def build_case(dim: int = 8, seed: int = 0, low: float = -2.0) -> Case:
    generator = torch.Generator().manual_seed(seed)
    rotation = random_rotation(dim, generator)
    lam = torch.logspace(1, low, dim, dtype=torch.float64)
    mean = torch.randn(dim, generator=generator, dtype=torch.float64)
    return Case(rotation, lam, mean, generator)


@pytest.fixture
def case() -> Case:
    return build_case()


@pytest.fixture
def make_case():
    """The factory, for a test that needs another dimension or seed (conftest is not importable under importlib)."""
    return build_case
