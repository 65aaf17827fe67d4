"""Samplers against closed forms: point masses, constant denoisers, step variances, grids, guidance."""

from __future__ import annotations

import math

import pytest
import torch
from gradhub_diffusion.gmm import square_mixture
from gradhub_diffusion.paths import GaussianPath
from gradhub_diffusion.samplers import (
    cfg,
    ddim,
    ddpm_ancestral,
    dpmpp_2m,
    edm_sigmas,
    euler_maruyama_sde,
    euler_ode,
    fm_euler,
    heun_edm,
)

C = torch.tensor([1.5, -0.5], dtype=torch.float64)


def point_mass(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The exact denoiser of the point mass x0 = C (any path): E[x0 | x_t] = C."""
    return C.to(x.dtype).expand_as(x).clone()


def _x(count: int = 5, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(count, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("kind", ["vp_linear", "vp_cosine", "linear_fm", "ve"])
def test_ddim_point_mass_one_step(kind: str) -> None:
    """DDIM(eta=0) with the exact denoiser of a point mass maps any x_T to alpha(0) C in one step."""
    path = GaussianPath(kind=kind)
    result = ddim(point_mass, _x(scale=3.0), torch.tensor([0.9, 0.0], dtype=torch.float64), path=kind)
    expected = C * path.alpha(0.0).item() + (
        path.sigma(0.0).item() * (_x(scale=3.0) - path.alpha(0.9).item() * C) / path.sigma(0.9).item()
    )
    torch.testing.assert_close(result.samples, expected, rtol=1e-12, atol=1e-12)
    assert result.evaluations == 1
    if kind.startswith("vp") or kind == "linear_fm":
        torch.testing.assert_close(result.samples, C.expand(5, 2), rtol=0, atol=1e-12)


def test_ddim_deterministic_and_exact_trajectory() -> None:
    """eta = 0 draws nothing (two generators, same samples) and follows the exact point-mass trajectory
    x_s = alpha_s C + sigma_s eps with eps fixed by x_T."""
    path = GaussianPath(kind="vp_cosine")
    ts = torch.linspace(0.95, 0.0, 11, dtype=torch.float64)
    x_T = _x()
    first = ddim(
        point_mass, x_T, ts, path="vp_cosine", generator=torch.Generator().manual_seed(0), return_trajectory=True
    )
    second = ddim(point_mass, x_T, ts, path="vp_cosine", generator=torch.Generator().manual_seed(1))
    assert torch.equal(first.samples, second.samples)
    eps = (x_T - path.alpha(0.95).item() * C) / path.sigma(0.95).item()
    expected = path.alpha(ts)[:, None, None] * C + path.sigma(ts)[:, None, None] * eps
    torch.testing.assert_close(first.trajectory, expected, rtol=1e-10, atol=1e-10)


def _one_step_samples(sampler, path: GaussianPath, t: float, s: float, count: int = 200_000, **hparams) -> torch.Tensor:
    x_t = torch.full((count, 1), 0.4, dtype=torch.float64)
    model = lambda x, time: torch.zeros_like(x)  # noqa: E731 - the point mass at 0
    ts = torch.tensor([t, s, 0.0], dtype=torch.float64)
    result = sampler(model, x_t, ts, generator=torch.Generator().manual_seed(0), return_trajectory=True, **hparams)
    return result.trajectory[1]


def test_ddim_eta_one_step_variance_is_beta_tilde() -> None:
    """DDIM(eta = 1): the step t -> s has variance beta~ = (1 - abar_s)/(1 - abar_t) (1 - abar_t/abar_s)."""
    path, t, s = GaussianPath(kind="vp_linear"), 0.6, 0.5
    abar_t, abar_s = path.alpha(t).item() ** 2, path.alpha(s).item() ** 2
    beta_tilde = (1 - abar_s) / (1 - abar_t) * (1 - abar_t / abar_s)
    samples = _one_step_samples(ddim, path, t, s, eta=1.0)
    assert samples.var().item() == pytest.approx(beta_tilde, rel=0.015)
    half = _one_step_samples(ddim, path, t, s, eta=0.5)
    assert half.var().item() == pytest.approx(0.25 * beta_tilde, rel=0.015)


@pytest.mark.parametrize(("variance", "tilde"), [("beta", False), ("beta_tilde", True)])
def test_ddpm_step_variance(variance: str, tilde: bool) -> None:
    """DDPM ancestral step variance: beta = 1 - abar_t/abar_s (default) or beta~; mean = posterior mean."""
    path, t, s = GaussianPath(kind="vp_linear"), 0.6, 0.5
    abar_t, abar_s = path.alpha(t).item() ** 2, path.alpha(s).item() ** 2
    beta = 1 - abar_t / abar_s
    expected = beta * (1 - abar_s) / (1 - abar_t) if tilde else beta
    samples = _one_step_samples(ddpm_ancestral, path, t, s, variance=variance)
    assert samples.var().item() == pytest.approx(expected, rel=0.015)
    # Algorithm 2's mean with x0 = 0: (x_t - beta / sqrt(1 - abar_t) eps) / sqrt(1 - beta), eps = x_t / sqrt(1 - abar_t)
    mean = (0.4 - beta / math.sqrt(1 - abar_t) * 0.4 / math.sqrt(1 - abar_t)) / math.sqrt(1 - beta)
    assert samples.mean().item() == pytest.approx(mean, abs=5 * math.sqrt(expected / samples.numel()))


def test_ddpm_beta_tilde_equals_ddim_eta_one() -> None:
    """Both are q(x_s | x_t, x0 = D): with one generator seed the whole runs agree to round-off."""
    mixture, path = square_mixture(), GaussianPath(kind="vp_cosine")
    ts = torch.linspace(0.99, 0.0, 8, dtype=torch.float64)
    x_T = _x(50)
    ddpm = ddpm_ancestral(
        mixture.path_denoiser(path),
        x_T,
        ts,
        path="vp_cosine",
        variance="beta_tilde",
        generator=torch.Generator().manual_seed(3),
    )
    implicit = ddim(
        mixture.path_denoiser(path), x_T, ts, path="vp_cosine", eta=1.0, generator=torch.Generator().manual_seed(3)
    )
    torch.testing.assert_close(ddpm.samples, implicit.samples, rtol=1e-10, atol=1e-10)


def test_heun_last_step_to_zero_is_one_euler_step() -> None:
    """sigma_{i+1} = 0: a single Euler step (x + (0 - sigma) d = D), one model call, no division by zero."""
    calls = []

    def model(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        calls.append(sigma.clone())
        return 0.5 * x

    x_T = _x(scale=10.0)
    result = heun_edm(model, x_T, torch.tensor([10.0, 0.0], dtype=torch.float64))
    assert result.evaluations == 1 and len(calls) == 1 and torch.isfinite(result.samples).all()
    torch.testing.assert_close(result.samples, 0.5 * x_T)
    full = heun_edm(square_mixture().denoiser, _x(scale=80.0), edm_sigmas(18))
    assert full.evaluations == 35  # 2N - 1 (EDM's 35 NFE for N = 18)


def test_heun_correction_is_trapezoidal() -> None:
    """One Heun step between positive sigmas equals x + h (d + d')/2, by hand."""
    model = lambda x, sigma: 0.5 * x  # noqa: E731
    x, s0, s1 = _x(), 2.0, 1.0
    d = (x - 0.5 * x) / s0
    x_euler = x + (s1 - s0) * d
    d_next = (x_euler - 0.5 * x_euler) / s1
    result = heun_edm(model, x, torch.tensor([s0, s1], dtype=torch.float64))
    torch.testing.assert_close(result.samples, x + (s1 - s0) * (d + d_next) / 2)
    assert result.evaluations == 2


def test_heun_churn_raises_sigma_then_denoises() -> None:
    """With churn the model is first called at sigma_hat = sigma (1 + gamma), gamma = min(S_churn/N, sqrt 2 - 1)."""
    seen = []
    model = lambda x, sigma: seen.append(sigma[0].item()) or torch.zeros_like(x)  # noqa: E731
    heun_edm(model, _x(), torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64), S_churn=0.4, generator=torch.Generator())
    assert seen[0] == pytest.approx(2.0 * 1.2) and seen[1] == pytest.approx(1.0)
    seen.clear()
    heun_edm(
        model,
        _x(),
        torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64),
        S_churn=40.0,
        S_tmax=1.5,
        generator=torch.Generator(),
    )
    assert seen[0] == pytest.approx(2.0) and seen[2] == pytest.approx(1.0 * math.sqrt(2))


def test_edm_sigmas() -> None:
    sigmas = edm_sigmas(18)
    assert sigmas.dtype == torch.float64 and len(sigmas) == 19
    assert (
        sigmas[0].item() == pytest.approx(80.0) and sigmas[-2].item() == pytest.approx(0.002) and sigmas[-1].item() == 0
    )
    assert bool((sigmas[1:] < sigmas[:-1]).all())
    i = torch.arange(18, dtype=torch.float64)
    formula = (80 ** (1 / 7) + i / 17 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    torch.testing.assert_close(sigmas[:-1], formula, rtol=1e-14, atol=0)
    assert edm_sigmas(1).tolist() == [80.0, 0.0]
    assert edm_sigmas(5, sigma_min=0.1, sigma_max=10.0, rho=1.0)[:-1].tolist() == pytest.approx(
        [10.0, 7.525, 5.05, 2.575, 0.1]
    )


def test_dpmpp_2m_exact_for_constant_denoiser() -> None:
    """D = c: the PF-ODE solution is x(sigma) = c + (sigma / sigma_0)(x_0 - c); DPM++(2M) hits it at every step."""
    sigmas = edm_sigmas(12, sigma_max=20.0)
    x_T = _x(scale=20.0)
    result = dpmpp_2m(point_mass, x_T, sigmas, return_trajectory=True)
    expected = C + (sigmas / sigmas[0])[:, None, None] * (x_T - C)
    torch.testing.assert_close(result.trajectory, expected, rtol=1e-12, atol=1e-12)
    assert result.evaluations == 12


def test_dpmpp_2m_multistep_combination() -> None:
    """A denoiser linear in sigma, D = sigma k: the second step uses (1 + 1/2r) D_1 - 1/2r D_0 by hand."""
    k = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    model = lambda x, sigma: sigma[:, None] * k  # noqa: E731
    s = [4.0, 2.0, 0.5]
    x0 = _x(1)
    result = dpmpp_2m(model, x0, torch.tensor(s, dtype=torch.float64))
    h1, h2 = math.log(s[0] / s[1]), math.log(s[1] / s[2])
    x1 = s[1] / s[0] * x0 - math.expm1(-h1) * s[0] * k
    r = h1 / h2
    combined = (1 + 1 / (2 * r)) * s[1] * k - 1 / (2 * r) * s[0] * k
    torch.testing.assert_close(result.samples, s[2] / s[1] * x1 - math.expm1(-h2) * combined)


def test_euler_maruyama_step_mean_and_variance() -> None:
    """One step from fixed x: mean x + 2(s' - s)(x - D)/s, variance s^2 - s'^2 (the exact increment)."""
    x = torch.full((200_000, 1), 3.0, dtype=torch.float64)
    result = euler_maruyama_sde(
        lambda y, sigma: torch.ones_like(y),
        x,
        torch.tensor([2.0, 1.5, 0.0], dtype=torch.float64),
        generator=torch.Generator().manual_seed(0),
        return_trajectory=True,
    )
    step = result.trajectory[1]
    assert step.var().item() == pytest.approx(4.0 - 2.25, rel=0.015)
    assert step.mean().item() == pytest.approx(3.0 + 2 * (1.5 - 2.0) * 2.0 / 2.0, abs=0.01)
    assert torch.equal(result.samples, torch.ones_like(x))  # the last step returns D


def test_euler_ode_step() -> None:
    model = lambda x, sigma: 0.25 * x  # noqa: E731
    x = _x()
    result = euler_ode(model, x, torch.tensor([3.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(result.samples, x + (1.0 - 3.0) * (x - 0.25 * x) / 3.0)


def test_fm_euler_straight_paths_one_step() -> None:
    """Point mass on linear_fm: the velocity (x - c)/t is constant along straight paths, so one step lands on c."""
    result = fm_euler(lambda x, t: (x - C) / t[:, None], _x(scale=2.0), torch.tensor([1.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(result.samples, C.expand(5, 2), rtol=0, atol=1e-12)
    x0_model = fm_euler(point_mass, _x(scale=2.0), torch.tensor([1.0, 0.0], dtype=torch.float64), prediction="x0")
    torch.testing.assert_close(x0_model.samples, C.expand(5, 2), rtol=0, atol=1e-12)


def test_prediction_types_agree() -> None:
    """An eps- or score-predicting model of the same mixture gives the x0 model's samples."""
    mixture = square_mixture()
    x_T, sigmas = _x(20, scale=80.0), edm_sigmas(10)
    reference = heun_edm(mixture.denoiser, x_T, sigmas).samples
    eps_model = lambda x, s: (x - mixture.denoiser(x, s)) / s[:, None]  # noqa: E731
    score_model = lambda x, s: (mixture.denoiser(x, s) - x) / s[:, None] ** 2  # noqa: E731
    torch.testing.assert_close(heun_edm(eps_model, x_T, sigmas, prediction="eps").samples, reference)
    torch.testing.assert_close(heun_edm(score_model, x_T, sigmas, prediction="score").samples, reference)


def test_model_dtype_and_time_shape() -> None:
    """The model runs in x_T's dtype with t a (batch,) tensor; samples come back in that dtype."""
    seen = []

    def model(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        seen.append((x.dtype, sigma.dtype, tuple(sigma.shape)))
        return torch.zeros_like(x)

    result = dpmpp_2m(model, torch.randn(7, 3, 2), edm_sigmas(3))
    assert result.samples.dtype == torch.float32 and result.samples.shape == (7, 3, 2)
    assert set(seen) == {(torch.float32, torch.float32, (7,))}


def test_cfg() -> None:
    cond = lambda x, t: x + 1.0  # noqa: E731
    uncond = lambda x, t: 2.0 * x  # noqa: E731
    x, t = _x(), torch.ones(5, dtype=torch.float64)
    assert torch.equal(cfg(cond, uncond, 1.0)(x, t), cond(x, t))
    assert torch.equal(cfg(cond, uncond, 0.0)(x, t), uncond(x, t))
    torch.testing.assert_close(cfg(cond, uncond, 3.0)(x, t), uncond(x, t) + 3.0 * (cond(x, t) - uncond(x, t)))
    result = euler_ode(cfg(cond, uncond, 2.0), _x(), edm_sigmas(4))
    assert result.evaluations == 4  # one guided call per step


def test_progress_callback_counts_steps() -> None:
    events = []
    heun_edm(square_mixture().denoiser, _x(scale=80.0), edm_sigmas(6), progress=events.append)
    assert [event.step for event in events if not event.done] == [1, 2, 3, 4, 5, 6]
    assert events[-1].done and events[-1].task == heun_edm.method
