"""Losses at their analytic minima (exact models of a Gaussian / point mass), seeding, gradients."""

from __future__ import annotations

import math

import pytest
import torch
from gradhub_diffusion.losses import (
    EDMPrecondition,
    ddpm_eps_loss,
    dsm_loss,
    edm_loss,
    edm_precondition,
    flow_matching_loss,
)
from gradhub_diffusion.paths import GaussianPath
from torch import nn

from gradhub.errors import HyperparameterError, UnsupportedInputError

MU = torch.tensor([0.7, -1.3], dtype=torch.float64)
COUNT = 200_000


def _data(std: float, count: int = COUNT, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return MU + std * torch.randn(count, 2, generator=generator, dtype=torch.float64)


def _assert_mean(values: torch.Tensor, expected: float, sigmas: float = 4.0) -> None:
    """The Monte-Carlo mean of per-sample values is within `sigmas` standard errors of `expected`."""
    error = values.std().item() / math.sqrt(values.numel())
    assert abs(values.mean().item() - expected) <= sigmas * error, (values.mean().item(), expected, error)


def _uniform_average(function, low: float, high: float, points: int = 200_001) -> float:
    t = torch.linspace(low, high, points, dtype=torch.float64)
    return torch.trapezoid(function(t), t).item() / (high - low)


def _gaussian_denoiser(std: float):
    def denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        gain = (std**2 / (std**2 + sigma.to(torch.float64) ** 2))[:, None]
        return MU + gain * (x - MU)

    return denoiser


@pytest.mark.parametrize("std", [0.5, 1.3])
def test_edm_loss_minimum(std: float) -> None:
    """With D* of N(mu, s^2 I) the EDM loss is E_sigma[lambda(sigma) s^2 sigma^2 / (s^2 + sigma^2)]
    (Var[x0 | x]), which is exactly 1 when s = sigma_data: EDM's unit-variance weighting."""
    values = edm_loss(_gaussian_denoiser(std), _data(std), torch.Generator().manual_seed(0), reduction="none")

    def integrand(z: torch.Tensor) -> torch.Tensor:
        sigma = torch.exp(-1.2 + 1.2 * z)
        weight = (sigma**2 + 0.25) / (sigma * 0.5) ** 2
        return weight * std**2 * sigma**2 / (std**2 + sigma**2) * torch.exp(-(z**2) / 2) / math.sqrt(2 * math.pi)

    expected = _uniform_average(integrand, -10, 10) * 20
    if std == 0.5:
        assert expected == pytest.approx(1.0, abs=1e-9)
    _assert_mean(values, expected)
    worse = edm_loss(_gaussian_denoiser(std * 2.0), _data(std), torch.Generator().manual_seed(0))
    assert worse.item() > expected + 5 * values.std().item() / math.sqrt(COUNT)


@pytest.mark.parametrize("kind", ["vp_linear", "vp_cosine"])
def test_ddpm_eps_loss_minimum(kind: str) -> None:
    """With the exact eps-predictor E[eps | x_t] of N(mu, s^2 I), the loss is E_t[a^2 s^2 / (a^2 s^2 + sigma^2)]."""
    std, path = 0.8, GaussianPath(kind=kind)

    def eps_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha, sigma = path.alpha(t)[:, None], path.sigma(t)[:, None]
        return sigma / (alpha**2 * std**2 + sigma**2) * (x - alpha * MU)

    values = ddpm_eps_loss(eps_model, _data(std), torch.Generator().manual_seed(0), path=kind, reduction="none")

    def integrand(t: torch.Tensor) -> torch.Tensor:
        alpha2 = path.alpha(t) ** 2
        return alpha2 * std**2 / (alpha2 * std**2 + path.sigma(t) ** 2)

    _assert_mean(values, _uniform_average(integrand, 0.0, 1.0))


def test_dsm_loss_minimum_equals_eps_minimum() -> None:
    """With the true score of N(mu, s^2 I) on the VE path, sigma^2-weighted DSM equals E_t[s^2 / (s^2 + sigma_t^2)]."""
    std, path = 0.8, GaussianPath(kind="ve")

    def score_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return -(x - MU) / (std**2 + path.sigma(t)[:, None] ** 2)

    values = dsm_loss(score_model, _data(std), torch.Generator().manual_seed(0), reduction="none")
    _assert_mean(values, _uniform_average(lambda t: std**2 / (std**2 + path.sigma(t) ** 2), 0.0, 1.0))


def test_flow_matching_loss_zero_for_point_mass() -> None:
    """x0 = c: the exact velocity field (x - c)/t gives the loss 0 (t is never 0)."""
    c = torch.tensor([1.5, -0.5], dtype=torch.float64)
    x0 = c.expand(4096, 2).clone()
    loss = flow_matching_loss(lambda x, t: (x - c) / t[:, None], x0, torch.Generator().manual_seed(0))
    assert loss.item() < 1e-24
    wrong = flow_matching_loss(lambda x, t: (c - x) / t[:, None], x0, torch.Generator().manual_seed(0))
    assert wrong.item() > 1.0  # the opposite sign (x0 - eps) is far from the target


def test_seeded_by_generator_only() -> None:
    """Same seed, same loss whatever the global RNG; another seed, another loss; the global RNG is untouched."""
    model = _gaussian_denoiser(0.3)
    x0 = _data(0.3, 64)
    torch.manual_seed(5)
    before = torch.random.get_rng_state()
    first = edm_loss(model, x0, torch.Generator().manual_seed(3))
    assert torch.equal(torch.random.get_rng_state(), before)
    torch.manual_seed(6)
    assert torch.equal(first, edm_loss(model, x0, torch.Generator().manual_seed(3)))
    assert not torch.equal(first, edm_loss(model, x0, torch.Generator().manual_seed(4)))


@pytest.mark.parametrize("loss", [ddpm_eps_loss, dsm_loss, edm_loss, flow_matching_loss])
def test_gradients_reach_model_parameters(loss) -> None:
    """What a model-loss check must assert: a finite scalar whose gradient reaches every model parameter."""
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.SiLU(), torch.nn.Linear(8, 2))

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return network(torch.cat([x, t[:, None]], 1))

    value = loss(model, _data(0.5, 32).float(), torch.Generator().manual_seed(0))
    assert value.dim() == 0 and torch.isfinite(value)
    value.backward()
    for parameter in network.parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all() and parameter.grad.abs().sum() > 0


def test_reductions() -> None:
    model, x0 = _gaussian_denoiser(0.3), _data(0.3, 10)
    none = edm_loss(model, x0, torch.Generator().manual_seed(0), reduction="none")
    assert none.shape == (10,)
    torch.testing.assert_close(edm_loss(model, x0, torch.Generator().manual_seed(0), reduction="sum"), none.sum())
    torch.testing.assert_close(edm_loss(model, x0, torch.Generator().manual_seed(0)), none.mean())


def test_edm_precondition_formula() -> None:
    """D = c_skip x + c_out F(c_in x, ln(sigma)/4) with EDM's Table 1 coefficients."""
    seen = {}

    def network(x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        seen["x"], seen["c_noise"] = x, c_noise
        return torch.ones_like(x)

    x = torch.randn(3, 2, dtype=torch.float64)
    sigma = torch.tensor([0.1, 1.0, 10.0], dtype=torch.float64)
    out = edm_precondition(network, 0.5)(x, sigma)
    norm = (sigma**2 + 0.25).sqrt()[:, None]
    torch.testing.assert_close(seen["x"], x / norm)
    torch.testing.assert_close(seen["c_noise"], sigma.log() / 4)
    torch.testing.assert_close(out, 0.25 / norm**2 * x + sigma[:, None] * 0.5 / norm)


class _TimeMLP(nn.Module):
    """A raw network F(x, c_noise) for 2-D data."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = nn.Sequential(nn.Linear(3, 8), nn.SiLU(), nn.Dropout(0.0), nn.Linear(8, 2))

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, c_noise.reshape(-1, 1).expand(x.shape[0], 1)], dim=1))


def _closure_precondition(network, sigma_data: float = 0.5):
    """edm_precondition as it was up to 0.4.0 (a closure), the reference for "numbers unchanged"."""

    def denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        sigma64 = sigma.to(torch.float64)
        norm = (sigma64**2 + sigma_data**2).sqrt()
        c_skip, c_out, c_in = sigma_data**2 / norm**2, sigma64 * sigma_data / norm, 1 / norm
        output = network(c_in.to(x.dtype)[:, None] * x, (sigma64.log() / 4).to(x.dtype))
        return c_skip.to(x.dtype)[:, None] * x + c_out.to(x.dtype)[:, None] * output

    return denoiser


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sigma_data", [0.5, 1.3])
def test_edm_precondition_numbers_unchanged(dtype: torch.dtype, sigma_data: float) -> None:
    """The module gives the closure's numbers bit for bit, and edm_loss over it the same loss and gradients."""
    network = _TimeMLP().to(dtype)
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(0), dtype=dtype)
    sigma = torch.tensor([0.002, 0.05, 0.5, 1.0, 10.0, 80.0], dtype=dtype)
    module, closure = edm_precondition(network, sigma_data), _closure_precondition(network, sigma_data)
    with torch.no_grad():
        assert torch.equal(module(x, sigma), closure(x, sigma))
    x0 = _data(0.5, 16).to(dtype)
    losses = [
        edm_loss(model, x0, torch.Generator().manual_seed(2), sigma_data=sigma_data) for model in (module, closure)
    ]
    assert torch.equal(losses[0], losses[1])
    gradients = [torch.autograd.grad(value, list(network.parameters())) for value in losses]
    for ours, reference in zip(*gradients):
        assert torch.equal(ours, reference)


def test_edm_precondition_is_a_module() -> None:
    """The raw network is a submodule: parameters, state_dict (network.*), .to(), train/eval all reach it."""
    network = _TimeMLP()
    denoiser = edm_precondition(network, sigma_data=0.5)
    assert isinstance(denoiser, nn.Module) and isinstance(denoiser, EDMPrecondition)
    assert denoiser.network is network and "sigma_data=0.5" in repr(denoiser)
    assert [id(p) for p in denoiser.parameters()] == [id(p) for p in network.parameters()]
    assert list(denoiser.state_dict()) == [f"network.{key}" for key in network.state_dict()]
    other = edm_precondition(_TimeMLP(seed=1))
    x, sigma = torch.randn(4, 2, generator=torch.Generator().manual_seed(1)), torch.tensor([0.1, 1.0, 5.0, 40.0])
    with torch.no_grad():
        assert not torch.equal(other(x, sigma), denoiser(x, sigma))
        other.load_state_dict(denoiser.state_dict())
        assert torch.equal(other(x, sigma), denoiser(x, sigma))
        denoiser.to(torch.float64)
        assert all(p.dtype == torch.float64 for p in network.parameters())
        assert denoiser(x.double(), sigma.double()).dtype == torch.float64
        assert denoiser(x.double(), 2.0).shape == (4, 2)  # a number sigma, for the whole batch
    denoiser.eval()
    assert not network.training
    denoiser.train()
    assert network.training


def test_edm_precondition_errors_and_plain_functions() -> None:
    with pytest.raises(HyperparameterError, match=r"edm_precondition: invalid sigma_data=0; sigma_data must be a fin"):
        edm_precondition(_TimeMLP(), 0)
    with pytest.raises(HyperparameterError, match="sigma_data=inf"):
        edm_precondition(_TimeMLP(), math.inf)
    with pytest.raises(UnsupportedInputError, match="edm_precondition: unsupported network: int"):
        edm_precondition(3)
    wrapped = edm_precondition(lambda x, c_noise: torch.zeros_like(x))  # a plain function: kept, nothing to move
    assert list(wrapped.parameters()) == [] and list(wrapped.state_dict()) == []
    x = torch.ones(2, 2, dtype=torch.float64)
    torch.testing.assert_close(wrapped(x, torch.tensor([0.5, 1.0])), x * torch.tensor([[0.5], [0.2]], dtype=x.dtype))
