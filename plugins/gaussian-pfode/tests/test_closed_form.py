"""The closed forms pinned to their definitions: scores, denoisers, flow map (VE and VP), special cases.

References are independent of the plugin's eigendecomposition: ``torch.linalg.solve`` with the dense
covariance, autograd of ``torch.distributions.MultivariateNormal.log_prob``, and scipy's ``solve_ivp``
(DOP853, float64) on the PF-ODE with the exact score. Each key criterion is also run on a wrong variant
(a wrong exponent of the sigma ratio, sigma used where sigma^2 belongs, variances where standard deviations
belong) to show it fails.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gradhub_diffusion.samplers import edm_sigmas, heun_edm
from gradhub_gaussian_pfode.gaussian import GaussianPFODE, gaussian_pfode
from scipy.integrate import solve_ivp

from gradhub.kinds.solver import SolverResult


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def direct_score(cov, mean, x, sigma):
    eye = torch.eye(mean.numel(), dtype=torch.float64)
    return -torch.linalg.solve(cov + sigma**2 * eye, (x - mean).T).T


def wrong_flow_exponent(gaussian: GaussianPFODE, x_T, sigma_T, sigma):
    """The flow with the ratio (lam + sigma^2)/(lam + sigma_T^2) to the power 1 instead of 1/2."""
    gain = (gaussian.lam + sigma**2) / (gaussian.lam + sigma_T**2)
    return gaussian.mean + ((x_T - gaussian.mean) @ gaussian.U * gain) @ gaussian.U.T


# --- score and denoiser -------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [0.05, 0.7, 12.0])
def test_score_and_denoiser_match_direct_formulas(case, sigma):
    gaussian, x = case.gaussian(), case.noisy(16, sigma)
    reference = direct_score(case.cov, case.mean, x, sigma)
    assert relative(gaussian.score(x, sigma), reference) < 1e-10
    eye = torch.eye(8, dtype=torch.float64)
    denoised = case.mean + (case.cov @ torch.linalg.solve(case.cov + sigma**2 * eye, (x - case.mean).T)).T
    assert relative(gaussian.denoise(x, sigma), denoised) < 1e-10
    # Tweedie: D(x, sigma) = x + sigma^2 grad log p_sigma(x)
    assert relative(gaussian.denoise(x, sigma), x + sigma**2 * gaussian.score(x, sigma)) < 1e-10


def test_score_is_the_gradient_of_the_log_density(case):
    sigma = 0.4
    x = case.noisy(8, sigma).requires_grad_(True)
    marginal = case.cov + sigma**2 * torch.eye(8, dtype=torch.float64)
    centred = x - case.mean
    log_density = -0.5 * (centred * torch.linalg.solve(marginal, centred.T).T).sum(1) - 0.5 * torch.logdet(marginal)
    (gradient,) = torch.autograd.grad(log_density.sum(), x)
    assert relative(case.gaussian().score(x.detach(), sigma), gradient) < 1e-10
    # wrong variant: sigma where sigma^2 belongs (the variance confused with the standard deviation)
    wrong = -torch.linalg.solve(case.cov + sigma * torch.eye(8, dtype=torch.float64), (x.detach() - case.mean).T).T
    assert relative(wrong, gradient) > 1e-2


def test_vp_score_and_denoiser_match_direct_formulas(case):
    gaussian, abar = case.gaussian(schedule="vp"), 0.3
    x = math.sqrt(abar) * case.noisy(16, math.sqrt((1 - abar) / abar))
    marginal = abar * case.cov + (1 - abar) * torch.eye(8, dtype=torch.float64)
    centred = (x - math.sqrt(abar) * case.mean).T
    assert relative(gaussian.score(x, abar), -torch.linalg.solve(marginal, centred).T) < 1e-10
    denoised = case.mean + math.sqrt(abar) * (case.cov @ torch.linalg.solve(marginal, centred)).T
    assert relative(gaussian.denoise(x, abar), denoised) < 1e-10
    # Tweedie on the VP path: D = (x + (1 - abar) score) / sqrt(abar)
    tweedie = (x + (1 - abar) * gaussian.score(x, abar)) / math.sqrt(abar)
    assert relative(gaussian.denoise(x, abar), tweedie) < 1e-10


def test_per_sample_noise_levels_match_separate_calls(case):
    gaussian, x = case.gaussian(), case.noisy(5, 3.0)
    sigmas = torch.tensor([0.1, 0.5, 1.0, 3.0, 20.0], dtype=torch.float64)
    for method in (gaussian.score, gaussian.denoise):
        batched = method(x, sigmas)
        separate = torch.stack([method(x[i : i + 1], float(s))[0] for i, s in enumerate(sigmas)])
        assert torch.allclose(batched, separate, rtol=1e-13, atol=1e-13)
    targets = torch.tensor([0.0, 0.2, 1.0, 2.5, 10.0], dtype=torch.float64)
    batched = gaussian.solve(x, 30.0, targets)
    separate = torch.stack([gaussian.solve(x[i : i + 1], 30.0, float(s))[0] for i, s in enumerate(targets)])
    assert torch.allclose(batched, separate, rtol=1e-13, atol=1e-13)


# --- the flow map ---------------------------------------------------------------------------------------


def test_semigroup_and_identity(case):
    gaussian, x = case.gaussian(), case.noisy(16, 80.0)
    twice = gaussian.solve(gaussian.solve(x, 80.0, 5.0), 5.0, 0.5)
    assert relative(twice, gaussian.solve(x, 80.0, 0.5)) < 1e-12
    same = gaussian.solve(x, 80.0, 80.0)
    assert torch.equal(same, x) and same is not x


def test_data_end_lies_in_the_span_for_a_low_rank_covariance(case):
    basis, lam = case.rotation[:, :3], case.lam[:3]
    gaussian = GaussianPFODE(case.mean, U=basis, lam=lam)
    x = case.noisy(16, 80.0)
    end = gaussian.solve(x, 80.0, 0.0)
    off_span = (end - case.mean) - ((end - case.mean) @ basis) @ basis.T
    assert float(off_span.abs().max()) < 1e-12 * float(end.abs().max())
    # and the rest of the complement shrinks like sigma / sigma_T on the way
    halfway = gaussian.solve(x, 80.0, 8.0)
    projected = lambda z: (z - case.mean) - ((z - case.mean) @ basis) @ basis.T  # noqa: E731
    assert relative(projected(halfway), 0.1 * projected(x)) < 1e-12


def _ode_reference(case, x_T, sigma_T, sigma):
    """solve_ivp (DOP853, rtol 1e-12) on dx/dlog sigma = sigma^2 (Sigma + sigma^2 I)^{-1} (x - mu)."""
    cov, mean, count = case.cov.numpy(), case.mean.numpy(), x_T.shape[0]

    def slope(u, flat):
        noise = math.exp(2 * u)
        x = flat.reshape(count, -1)
        return (noise * np.linalg.solve(cov + noise * np.eye(mean.size), (x - mean).T).T).reshape(-1)

    solution = solve_ivp(
        slope, (math.log(sigma_T), math.log(sigma)), x_T.numpy().reshape(-1), method="DOP853", rtol=1e-12, atol=1e-12
    )
    return torch.from_numpy(solution.y[:, -1].reshape(count, -1))


def test_flow_matches_numerical_integration(case):
    gaussian, x = case.gaussian(), case.noisy(4, 80.0)
    reference = _ode_reference(case, x, 80.0, 0.01)
    scale = (reference - case.mean).norm()
    assert float((gaussian.solve(x, 80.0, 0.01) - reference).norm() / scale) < 1e-8
    # wrong variant: the sigma ratio's exponent 1 instead of 1/2
    assert float((wrong_flow_exponent(gaussian, x, 80.0, 0.01) - reference).norm() / scale) > 0.1


def test_vp_flow_matches_numerical_integration_and_the_rescaled_ve_flow(case):
    """VP PF-ODE in log abar: dx/dlog abar = (x + grad log p_abar(x)) / 2 (the official code's -beta (x + score))."""
    gaussian = case.gaussian(schedule="vp")
    abar_T, abar = 1e-3, 0.9
    x = math.sqrt(abar_T) * case.noisy(4, math.sqrt((1 - abar_T) / abar_T))
    cov, mean, count = case.cov.numpy(), case.mean.numpy(), x.shape[0]

    def slope(u, flat):
        level = math.exp(u)
        y = flat.reshape(count, -1)
        marginal = level * cov + (1 - level) * np.eye(mean.size)
        score = -np.linalg.solve(marginal, (y - math.sqrt(level) * mean).T).T
        return ((y + score) / 2).reshape(-1)

    solution = solve_ivp(
        slope, (math.log(abar_T), math.log(abar)), x.numpy().reshape(-1), method="DOP853", rtol=1e-12, atol=1e-12
    )
    reference = torch.from_numpy(solution.y[:, -1].reshape(count, -1))
    assert relative(gaussian.solve(x, abar_T, abar), reference) < 1e-8
    ve = case.gaussian().solve(x / math.sqrt(abar_T), math.sqrt((1 - abar_T) / abar_T), math.sqrt((1 - abar) / abar))
    assert relative(gaussian.solve(x, abar_T, abar), math.sqrt(abar) * ve) < 1e-10
    # the VP closed form, written out
    centred = (x - math.sqrt(abar_T) * case.mean) @ case.rotation
    gain = ((abar * case.lam + 1 - abar) / (abar_T * case.lam + 1 - abar_T)).sqrt()
    written = math.sqrt(abar) * case.mean + (centred * gain) @ case.rotation.T
    assert relative(gaussian.solve(x, abar_T, abar), written) < 1e-12


def test_vp_flow_from_pure_noise_is_the_limit(case):
    """abar_T = 0 (x_T carries no signal): the VE flow from sigma_T -> infinity, rescaled."""
    gaussian = case.gaussian(schedule="vp")
    x = torch.randn(4, 8, generator=case.generator, dtype=torch.float64)
    limit = gaussian.solve(x, 0.0, 0.5)
    near = gaussian.solve(x * math.sqrt(1 - 1e-12), 1e-12, 0.5)
    assert relative(limit, near) < 1e-5
    assert torch.isfinite(limit).all()


def test_flow_matches_many_heun_steps_with_the_gaussian_denoiser(case):
    """gradhub-diffusion's heun_edm with the exact Gaussian denoiser converges to the closed form, second order."""
    gaussian, x = case.gaussian(), case.noisy(64, 80.0)
    errors = []
    for steps in (32, 64, 128):
        sigmas = edm_sigmas(steps)
        states = heun_edm(gaussian.denoise, x, sigmas, return_trajectory=True).trajectory
        exact = gaussian.trajectory(x, sigmas[:-1])
        errors.append(relative(states[-2], exact[-1]))  # at sigma_min, before Heun's last (Euler) step
    assert errors[-1] < 1e-3  # measured 4.6e-4 (1.9e-3 and 7.6e-3 with 64 and 32 steps)
    assert 3.0 < errors[0] / errors[1] < 5.0 and 3.0 < errors[1] / errors[2] < 5.0


@pytest.mark.parametrize("sigma", [0.0, 1.5])
def test_transport_is_exact_in_distribution(case, sigma):
    """x_T ~ N(mu, Sigma + 80^2 I) mapped to sigma has covariance Sigma + sigma^2 I (20k samples, 5% Frobenius)."""
    gaussian, x = case.gaussian(), case.noisy(20000, 80.0)
    expected = case.cov + sigma**2 * torch.eye(8, dtype=torch.float64)
    moved = gaussian.solve(x, 80.0, sigma)
    assert relative(torch.cov(moved.T), expected) < 0.05
    assert float((moved.mean(0) - case.mean).norm()) < 0.05
    # wrong variant: variances where the standard deviations belong (no square root)
    wrong = wrong_flow_exponent(gaussian, x, 80.0, sigma)
    assert relative(torch.cov(wrong.T), expected) > 0.5


def test_trajectory_is_the_flow_at_each_time(case):
    gaussian, x = case.gaussian(), case.noisy(6, 80.0).reshape(6, 2, 4)
    sigmas = torch.tensor([80.0, 20.0, 3.0, 0.4, 0.0], dtype=torch.float64)
    states = gaussian.trajectory(x, sigmas)
    assert states.shape == (5, 6, 2, 4)
    assert torch.equal(states[0], x)
    for state, sigma in zip(states[1:], sigmas[1:]):
        assert torch.allclose(state, gaussian.solve(x, 80.0, float(sigma)), rtol=1e-13, atol=1e-13)


# --- special cases of the covariance ----------------------------------------------------------------------


def test_low_rank_equals_full_with_zero_eigenvalues(case):
    rank = 3
    low = GaussianPFODE(case.mean, U=case.rotation[:, :rank], lam=case.lam[:rank])
    padded = torch.cat([case.lam[:rank], torch.zeros(8 - rank, dtype=torch.float64)])
    full = GaussianPFODE(case.mean, U=case.rotation, lam=padded)
    dense = GaussianPFODE(case.mean, (case.rotation * padded) @ case.rotation.T)  # through eigh
    x = case.noisy(10, 80.0)
    for other in (full, dense):
        for sigma in (0.0, 0.3, 7.0):
            assert torch.allclose(low.solve(x, 80.0, sigma), other.solve(x, 80.0, sigma), rtol=1e-12, atol=1e-12)
            assert torch.allclose(low.denoise(x, sigma), other.denoise(x, sigma), rtol=1e-12, atol=1e-12)
        assert torch.allclose(low.score(x, 0.3), other.score(x, 0.3), rtol=1e-12, atol=1e-12)
    assert torch.allclose(low.covariance(), full.covariance(), atol=1e-12)


def test_low_rank_with_floor_equals_full(case):
    rank, floor = 3, 0.05
    low = GaussianPFODE(case.mean, U=case.rotation[:, :rank], lam=case.lam[:rank], floor=floor)
    values = torch.cat([case.lam[:rank], torch.full((8 - rank,), floor, dtype=torch.float64)])
    full = GaussianPFODE(case.mean, U=case.rotation, lam=values)
    x = case.noisy(10, 80.0)
    for sigma in (0.0, 0.3, 7.0):
        assert torch.allclose(low.solve(x, 80.0, sigma), full.solve(x, 80.0, sigma), rtol=1e-12, atol=1e-12)
        assert torch.allclose(low.denoise(x, sigma), full.denoise(x, sigma), rtol=1e-12, atol=1e-12)
        assert torch.allclose(low.score(x, sigma), full.score(x, sigma), rtol=1e-12, atol=1e-12)


def test_diagonal_equals_full(case):
    variances = case.lam[torch.randperm(8, generator=case.generator)]
    diagonal = GaussianPFODE(case.mean, diag=variances)
    full = GaussianPFODE(case.mean, torch.diag(variances))
    x = case.noisy(10, 80.0)
    for sigma in (0.0, 0.3, 7.0):
        assert torch.allclose(diagonal.solve(x, 80.0, sigma), full.solve(x, 80.0, sigma), rtol=1e-12, atol=1e-12)
        assert torch.allclose(diagonal.denoise(x, sigma), full.denoise(x, sigma), rtol=1e-12, atol=1e-12)
        assert torch.allclose(diagonal.score(x, sigma), full.score(x, sigma), rtol=1e-12, atol=1e-12)
    sigmas = torch.tensor([80.0, 1.0, 0.0], dtype=torch.float64)
    assert torch.allclose(diagonal.trajectory(x, sigmas), full.trajectory(x, sigmas), rtol=1e-12, atol=1e-12)


def test_unsorted_eigenpairs_are_sorted(case):
    order = torch.randperm(8, generator=case.generator)
    gaussian = GaussianPFODE(case.mean, U=case.rotation[:, order], lam=case.lam[order])
    assert torch.equal(gaussian.lam, case.lam)
    x = case.noisy(4, 80.0)
    assert torch.allclose(gaussian.solve(x, 80.0, 0.2), case.gaussian().solve(x, 80.0, 0.2), rtol=1e-12, atol=1e-12)


def test_image_shaped_and_float32_inputs(case):
    gaussian = GaussianPFODE(case.mean.reshape(2, 4), case.cov)
    x = case.noisy(5, 80.0)
    image = gaussian.solve(x.reshape(5, 2, 4), 80.0, 0.5)
    assert image.shape == (5, 2, 4)
    assert torch.allclose(image.reshape(5, 8), case.gaussian().solve(x, 80.0, 0.5), rtol=1e-13, atol=1e-13)
    single = gaussian.solve(x.float(), 80.0, 0.5)
    assert single.dtype == torch.float32
    assert relative(single.double(), image.reshape(5, 8)) < 1e-5
    assert gaussian.mean.shape == (2, 4)


def test_commitment_sigmas_formula(case):
    q = 0.8
    assert torch.allclose(case.gaussian().commitment_sigmas(q), (case.lam * (1 / q**2 - 1)).sqrt(), rtol=1e-14)


# --- the registered solver ----------------------------------------------------------------------------------


def test_solver_returns_the_closed_form_with_zero_iterations(case):
    gaussian, x = case.gaussian(), case.noisy(6, 80.0)
    result = gaussian_pfode(gaussian, x, 80.0, 0.5)
    assert isinstance(result, SolverResult)
    assert torch.equal(result.solution, gaussian.solve(x, 80.0, 0.5))
    assert result.converged is True and result.iterations == 0
    assert result.residuals.shape == (1,) and float(result.residuals[0]) < 1e-13
    single = gaussian_pfode(gaussian.to(dtype=torch.float32), x.float(), 80.0, 0.5)
    assert single.converged and float(single.residuals[0]) < 1e-5


def test_flow_residual_measures_the_conserved_coordinates(case, make_case):
    gaussian, x = case.gaussian(), case.noisy(6, 80.0)
    right = gaussian.solve(x, 80.0, 0.5)
    assert float(gaussian.flow_residual(x, 80.0, right, 0.5)) < 1e-13
    # a wrong answer (the exponent-1 flow) is seen as one, and the solver would not report convergence
    wrong = wrong_flow_exponent(gaussian, x, 80.0, 0.5)
    assert float(gaussian.flow_residual(x, 80.0, wrong, 0.5)) > 0.5
    low = make_case(seed=1)
    low_rank = GaussianPFODE(low.mean, U=low.rotation[:, :2], lam=low.lam[:2])
    y = low.noisy(6, 80.0)
    assert float(low_rank.flow_residual(y, 80.0, low_rank.solve(y, 80.0, 0.0), 0.0)) < 1e-13
    assert float(low_rank.flow_residual(y, 80.0, y * 0.5, 0.0)) > 0.1
