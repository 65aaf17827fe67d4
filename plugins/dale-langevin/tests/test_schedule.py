"""GBMSchedule: closed-form values, the marginal against simulations of the SDE, the conditional score.

Monte-Carlo margins are CLT margins from the theory (5 standard errors of the known variance, plus a bound on the
simulation's discretisation bias where it has one), never from what one draw showed.
"""

from __future__ import annotations

import math

import pytest
import torch
from gradhub_dale_langevin.lognormal import LogNormalMixture
from gradhub_dale_langevin.schedule import GBMSchedule

from gradhub.kinds.schedule import NoiseSchedule

from .conftest import NoItoSchedule

T = torch.linspace(0.0, 1.0, 11, dtype=torch.float64)


@pytest.mark.parametrize("kind", ["geometric", "linear"])
def test_closed_form_values(kind: str) -> None:
    """s(0) = sigma_min, s(1) = sigma_max, s increasing; m_t = mu t - s_t^2/2; sigma(t)^2 = d s_t^2 / dt."""
    schedule = GBMSchedule(sigma_min=0.05, sigma_max=1.5, kind=kind, mu=0.3)
    s = schedule.log_std(T)
    assert s[0].item() == pytest.approx(0.05, rel=1e-12) and s[-1].item() == pytest.approx(1.5, rel=1e-12)
    assert bool((s[1:] > s[:-1]).all())
    if kind == "geometric":
        torch.testing.assert_close(s, 0.05 * 30.0**T, rtol=1e-12, atol=0)
    else:
        torch.testing.assert_close(s, 0.05 + 1.45 * T, rtol=1e-12, atol=0)
    torch.testing.assert_close(schedule.mean_shift(T), 0.3 * T - 0.5 * s**2, rtol=1e-12, atol=1e-15)
    t = T.clone().requires_grad_(True)
    (derivative,) = torch.autograd.grad(schedule.log_var(t).sum(), t)
    torch.testing.assert_close(schedule.volatility(T) ** 2, derivative, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(schedule.drift(T), torch.full_like(T, 0.3))


def test_noise_schedule_view() -> None:
    """As a gradhub noise schedule: the centred log's Gaussian path, alpha = 1 and sigma = s_t."""
    schedule = GBMSchedule()
    assert isinstance(schedule, NoiseSchedule)
    assert (schedule.t_min, schedule.t_max) == (0.0, 1.0)
    torch.testing.assert_close(schedule.alpha(T), torch.ones_like(T))
    torch.testing.assert_close(schedule.sigma(T), schedule.log_std(T))


def test_sample_is_the_multiplicative_perturbation() -> None:
    """x_t = x0 exp(m_t + s_t eps); log_marginal gives (log x0 + m_t, s_t); per-sample times broadcast."""
    schedule = GBMSchedule(sigma_max=1.5, mu=0.2)
    generator = torch.Generator().manual_seed(0)
    x0 = torch.rand(5, 3, generator=generator, dtype=torch.float64) + 0.1
    eps = torch.randn(5, 3, generator=generator, dtype=torch.float64)
    t = torch.linspace(0.1, 0.9, 5, dtype=torch.float64)
    m, s = schedule.mean_shift(t)[:, None], schedule.log_std(t)[:, None]
    torch.testing.assert_close(schedule.sample(x0, t, eps), x0 * torch.exp(m + s * eps), rtol=1e-13, atol=0)
    mean, std = schedule.log_marginal(x0, t)
    torch.testing.assert_close(mean, x0.log() + m, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(std, s)
    torch.testing.assert_close(
        schedule.sample(x0, 0.5, eps), x0 * torch.exp(schedule.mean_shift(0.5) + schedule.log_std(0.5) * eps)
    )


def _log_space_em(
    schedule: GBMSchedule, y0: torch.Tensor, stops: tuple[int, ...], steps: int, generator: torch.Generator
):
    """Euler-Maruyama on dy = (mu - sigma(t)^2/2) dt + sigma(t) dW over [0, 1] in ``steps`` steps (midpoint
    volatility: O(dt^2) quadrature of the integrals), the state kept after each step listed in ``stops``."""
    dt = 1.0 / steps
    y, kept = y0.clone(), {}
    for k in range(steps):
        sigma = schedule.volatility((k + 0.5) * dt).item()
        noise = torch.randn(y.shape, generator=generator).to(y.dtype)  # float32 draws: 5x cheaper, still N(0, 1)
        y += (schedule.mu - 0.5 * sigma**2) * dt + sigma * math.sqrt(dt) * noise
        if k + 1 in stops:
            kept[(k + 1) * dt] = y.clone()
    return kept


def _ambient_em(schedule: GBMSchedule, x0: torch.Tensor, t_end: float, steps: int, generator: torch.Generator):
    """Euler-Maruyama on the SDE as written, dx = mu x dt + sigma(t) x dW: no Ito term anywhere. Returns log x
    and a bound on the bias of its log-mean, sum_k (a_k^4 + b_k^2) with a_k^2 = sigma^2 dt, b_k = mu dt (the
    expansion E log(1 + b + a z) = b - a^2/2 - b^2/2 - 3a^4/4 + ...)."""
    dt = t_end / steps
    x, bias = x0.clone(), 0.0
    for k in range(steps):
        sigma = schedule.volatility((k + 0.5) * dt).item()
        x = x * (
            1 + schedule.mu * dt + sigma * math.sqrt(dt) * torch.randn(x.shape, generator=generator, dtype=x.dtype)
        )
        bias += (sigma**2 * dt) ** 2 + (schedule.mu * dt) ** 2
    return x.log(), bias


def _marginal_matches(schedule: GBMSchedule, log_x: torch.Tensor, log_x0: float, t: float, bias: float = 0.0) -> bool:
    """Sample mean and variance of log x_t within 5 standard errors (CLT, from the known s_t) of the closed form."""
    n = log_x.numel()
    mean, var = log_x0 + schedule.mean_shift(t).item(), schedule.log_var(t).item()
    mean_ok = abs(log_x.mean().item() - mean) <= 5 * math.sqrt(var / n) + bias
    var_ok = abs(log_x.var().item() / var - 1) <= 5 * math.sqrt(2 / n) + bias / var
    return mean_ok and var_ok


@pytest.mark.parametrize("kind", ["geometric", "linear"])
def test_marginal_matches_log_space_simulation(kind: str) -> None:
    """From the t = 0 marginal, 400 Euler-Maruyama steps of the log SDE (40 000 paths) reach the closed-form
    N(log x0 + m_t, s_t^2) at t = 0.5 and t = 1; the schedule without the Ito shift does not."""
    generator = torch.Generator().manual_seed(0)
    log_x0 = math.log(0.7)
    schedule = GBMSchedule(sigma_max=1.5, kind=kind, mu=0.4)
    start = (
        log_x0
        + schedule.mean_shift(0.0).item()
        + schedule.log_std(0.0).item() * torch.randn(40_000, generator=generator, dtype=torch.float64)
    )
    for t, simulated in _log_space_em(schedule, start, (200, 400), 400, generator).items():
        assert _marginal_matches(schedule, simulated, log_x0, t), (kind, t)
        assert not _marginal_matches(NoItoSchedule(sigma_max=1.5, kind=kind, mu=0.4), simulated, log_x0, t), (kind, t)


def test_ito_correction_against_the_sde_in_x() -> None:
    """Simulating dx = mu x dt + sigma x dW directly in x (no Ito term written anywhere), the log-mean is
    log x0 + mu t - s_t^2/2 and E[x_t] = x0 exp(mu t): the closed form passes, the Ito-free one fails."""
    generator = torch.Generator().manual_seed(1)
    schedule, wrong = GBMSchedule(sigma_max=1.2, mu=0.3), NoItoSchedule(sigma_max=1.2, mu=0.3)
    x0 = 0.7 * torch.exp(
        schedule.mean_shift(0.0) + schedule.log_std(0.0) * torch.randn(10_000, generator=generator, dtype=torch.float64)
    )
    log_x, bias = _ambient_em(schedule, x0, 1.0, 2000, generator)
    assert _marginal_matches(schedule, log_x, math.log(0.7), 1.0, bias)
    assert not _marginal_matches(wrong, log_x, math.log(0.7), 1.0, bias)
    # the martingale part: E[x_1] = x0 e^mu, within 5 standard errors of the log-normal's known variance
    mean, var = 0.7 * math.exp(0.3), (0.7 * math.exp(0.3)) ** 2 * math.expm1(schedule.log_var(1.0).item())
    assert abs(log_x.exp().mean().item() - mean) <= 5 * math.sqrt(var / 10_000)


def test_conditional_score_is_the_lognormal_score() -> None:
    """grad_x log p(x_t | x0) equals autograd of the log-normal log-density in x (float64, exact) and
    -(1 + eps/s_t)/x_t for x_t made from eps."""
    schedule = GBMSchedule(sigma_max=1.5, mu=-0.2)
    generator = torch.Generator().manual_seed(2)
    x0 = torch.rand(6, 2, generator=generator, dtype=torch.float64) + 0.05
    eps = torch.randn(6, 2, generator=generator, dtype=torch.float64)
    t = torch.linspace(0.05, 1.0, 6, dtype=torch.float64)
    x_t = schedule.sample(x0, t, eps).requires_grad_(True)
    mean, std = schedule.log_marginal(x0, t)
    density = torch.distributions.LogNormal(mean, std).log_prob(x_t).sum()
    (expected,) = torch.autograd.grad(density, x_t)
    score = schedule.conditional_score(x_t.detach(), x0, t)
    torch.testing.assert_close(score, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(score, -(1 + eps / std) / x_t.detach(), rtol=1e-12, atol=1e-12)


def test_prior_and_times() -> None:
    """prior: log x_T ~ N(log_mean + m_1, s_1^2 + log_std^2) (CLT margins); times: n + 1 points from 1 to 0."""
    schedule = GBMSchedule(sigma_max=1.5)
    generator = torch.Generator().manual_seed(3)
    x_T = schedule.prior((50_000,), log_mean=0.4, log_std=0.5, generator=generator, dtype=torch.float64)
    assert bool((x_T > 0).all())
    var = 1.5**2 + 0.5**2
    assert abs(x_T.log().mean().item() - (0.4 - 1.125)) <= 5 * math.sqrt(var / 50_000)
    assert abs(x_T.log().var().item() / var - 1) <= 5 * math.sqrt(2 / 50_000)
    ts = schedule.times(4)
    assert ts.dtype == torch.float64 and ts.tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]
    points = schedule.points(ts.tolist())
    assert points[0].v == pytest.approx(2.25) and points[-1].m == pytest.approx(-0.5e-4)


def test_mixture_score_is_exact() -> None:
    """The helper the tests and claims use as the exact score: autograd of the perturbed mixture's log-density in x
    (log p_X(x) = log p_Y(log x) - sum log x, p_Y the Gaussian mixture N(c_k + m_t, tau^2 + s_t^2)), float64."""
    schedule = GBMSchedule(sigma_max=1.5, mu=0.2)
    mixture = LogNormalMixture([[-1.0, 0.5], [0.5, -0.5]], 0.15, weights=[0.3, 0.7])
    generator = torch.Generator().manual_seed(4)
    x = mixture.sample(32, generator).requires_grad_(True)
    t = torch.rand(32, generator=generator, dtype=torch.float64)
    shift, var = schedule.mean_shift(t)[:, None, None], (schedule.log_var(t) + 0.15**2)[:, None, None]
    components = torch.distributions.Independent(
        torch.distributions.Normal(mixture.means[None] + shift, var.sqrt().expand(32, 2, 2)), 1
    )
    y = x.log()
    log_p_y = torch.logsumexp(components.log_prob(y[:, None, :]) + mixture.weights.log(), dim=1)
    (expected,) = torch.autograd.grad((log_p_y - y.sum(1)).sum(), x)
    torch.testing.assert_close(mixture.score(x.detach(), t, schedule), expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(
        mixture.log_score(x.detach(), t, schedule), x.detach() * expected + 1, rtol=1e-10, atol=1e-10
    )
