"""``gaussian_skip_sampler``: the closed-form jump, then the hand-over to gradhub-diffusion's samplers."""

from __future__ import annotations

import itertools

import pytest
import torch
from gradhub_diffusion.samplers import dpmpp_2m, edm_sigmas, euler_ode, heun_edm
from gradhub_gaussian_pfode.examples import four_mixture, mixture_moments
from gradhub_gaussian_pfode.gaussian import GaussianPFODE
from gradhub_gaussian_pfode.hybrid import gaussian_skip_sampler

from gradhub.progress import ProgressEvent


@pytest.fixture
def mixture_problem():
    mixture = four_mixture()
    gaussian = GaussianPFODE(*mixture_moments(mixture))
    generator = torch.Generator().manual_seed(0)
    x_T = torch.randn(64, 4, generator=generator, dtype=torch.float64) * 80.0
    return mixture, gaussian, x_T


def toy_denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """A nonlinear stand-in for a network: D(x; sigma) = (tanh(x) + sigma^2 x / 4) / (1 + sigma^2)."""
    s = sigma[:, None]
    return (torch.tanh(x) + s * s * x / 4) / (1 + s * s)


def edm_heun_reference(denoiser, latents: torch.Tensor, t_steps: list[float]) -> torch.Tensor:
    """EDM's deterministic sampler as NVlabs/edm generate.py writes it (S_churn = 0), latents already scaled."""
    num_steps = len(t_steps) - 1
    x_next = latents
    for i, (t_cur, t_next) in enumerate(itertools.pairwise(t_steps)):
        x_hat, t_hat = x_next, t_cur
        denoised = denoiser(x_hat, torch.full((x_hat.shape[0],), t_hat, dtype=x_hat.dtype))
        d_cur = (x_hat - denoised) / t_hat
        x_next = x_hat + (t_next - t_hat) * d_cur
        if i < num_steps - 1:
            denoised = denoiser(x_next, torch.full((x_next.shape[0],), t_next, dtype=x_next.dtype))
            d_prime = (x_next - denoised) / t_next
            x_next = x_hat + (t_next - t_hat) * (0.5 * d_cur + 0.5 * d_prime)
    return x_next


def test_no_skip_reproduces_a_reference_edm_heun_bit_for_bit(mixture_problem):
    _, gaussian, x_T = mixture_problem
    sigmas = edm_sigmas(12)
    result = gaussian_skip_sampler(toy_denoiser, gaussian, x_T, sigmas, skip_to_index=0)
    assert torch.equal(result.samples, edm_heun_reference(toy_denoiser, x_T, sigmas.tolist()))
    assert result.evaluations == 23


@pytest.mark.parametrize("sampler", [heun_edm, euler_ode, dpmpp_2m])
def test_no_skip_is_the_plain_sampler_bit_for_bit(mixture_problem, sampler):
    mixture, gaussian, x_T = mixture_problem
    sigmas = edm_sigmas(10)
    plain = sampler(mixture.denoiser, x_T, sigmas, return_trajectory=True)
    hybrid = gaussian_skip_sampler(
        mixture.denoiser, gaussian, x_T, sigmas, skip_to_index=0, sampler=sampler.method, return_trajectory=True
    )
    assert torch.equal(hybrid.samples, plain.samples) and torch.equal(hybrid.trajectory, plain.trajectory)
    assert hybrid.evaluations == plain.evaluations


@pytest.mark.parametrize(("name", "evaluations"), [("heun_edm", lambda n: 2 * n - 1), ("euler_ode", lambda n: n)])
def test_skip_is_the_jump_then_the_sampler_on_the_rest(mixture_problem, name, evaluations):
    mixture, gaussian, x_T = mixture_problem
    sigmas, skip = edm_sigmas(12), 4
    hybrid = gaussian_skip_sampler(
        mixture.denoiser, gaussian, x_T, sigmas, skip_to_index=skip, sampler=name, return_trajectory=True
    )
    jumped = gaussian.solve(x_T, float(sigmas[0]), float(sigmas[skip]))
    rest = {"heun_edm": heun_edm, "euler_ode": euler_ode}[name](
        mixture.denoiser, jumped, sigmas[skip:], return_trajectory=True
    )
    assert torch.equal(hybrid.samples, rest.samples)
    assert hybrid.evaluations == rest.evaluations == evaluations(12 - skip)
    assert hybrid.trajectory.shape == (13, 64, 4)
    assert torch.equal(hybrid.trajectory[: skip + 1], gaussian.trajectory(x_T, sigmas[: skip + 1]))
    assert torch.equal(hybrid.trajectory[skip + 1 :], rest.trajectory[1:])


def test_hand_over_to_a_sampler_function_with_options_and_generator(mixture_problem):
    mixture, gaussian, x_T = mixture_problem
    sigmas, skip = edm_sigmas(8), 3
    options = {"S_churn": 4.0, "S_noise": 1.003}

    def run(seed: int):
        generator = torch.Generator().manual_seed(seed)
        return gaussian_skip_sampler(
            mixture.denoiser,
            gaussian,
            x_T,
            sigmas,
            skip_to_index=skip,
            sampler=heun_edm,
            sampler_options=options,
            generator=generator,
        ).samples

    jumped = gaussian.solve(x_T, float(sigmas[0]), float(sigmas[skip]))
    direct = heun_edm(mixture.denoiser, jumped, sigmas[skip:], generator=torch.Generator().manual_seed(5), **options)
    assert torch.equal(run(5), direct.samples)
    assert not torch.equal(run(5), run(6))


def test_skipping_everything_samples_the_gaussian_without_the_model(mixture_problem):
    _, gaussian, x_T = mixture_problem
    sigmas = edm_sigmas(6)

    def never(x, sigma):
        raise AssertionError("the model must not be called")

    result = gaussian_skip_sampler(never, gaussian, x_T, sigmas, skip_to_index=6)
    assert result.evaluations == 0
    assert torch.equal(result.samples, gaussian.solve(x_T, float(sigmas[0]), 0.0))


def test_skipping_on_gaussian_data_is_within_the_discretisation_error(make_case):
    """With Gaussian data the jump is exact: the hybrid differs from all-numerical Heun only by Heun's own
    discretisation error over the skipped part (it shrinks as N^-2), and is closer to the exact flow."""
    case = make_case()
    gaussian, x = case.gaussian(), case.noisy(128, 80.0)
    differences = []
    for steps in (18, 36, 72):
        sigmas = edm_sigmas(steps)
        exact = gaussian.solve(x, 80.0, float(sigmas[-2]))
        plain = heun_edm(gaussian.denoise, x, sigmas, return_trajectory=True).trajectory[-2]
        hybrid = gaussian_skip_sampler(
            gaussian.denoise, gaussian, x, sigmas, skip_to_index=steps // 3, return_trajectory=True
        ).trajectory[-2]
        scale = (exact - case.mean).norm()
        plain_error, hybrid_error = (plain - exact).norm() / scale, (hybrid - exact).norm() / scale
        assert hybrid_error <= plain_error
        differences.append(float((hybrid - plain).norm() / scale))
        assert differences[-1] <= 0.25 * plain_error  # measured 0.14, 0.11, 0.10 of it
    assert 3.0 < differences[1] / differences[2] < 6.5  # measured 4.6: second order

    # wrong variant: a jump with the sigma ratio's exponent 1 is no longer within Heun's error
    class WrongExponent(GaussianPFODE):
        def solve(self, x_T, sigma_T, sigma, *, check=True):
            gain = (self.lam + sigma**2) / (self.lam + sigma_T**2)
            return self.mean + ((x_T - self.mean) @ self.U * gain) @ self.U.T

    wrong = WrongExponent(case.mean, case.cov)
    sigmas = edm_sigmas(36)
    plain = heun_edm(gaussian.denoise, x, sigmas).samples
    hybrid = gaussian_skip_sampler(gaussian.denoise, wrong, x, sigmas, skip_to_index=12).samples
    assert float((hybrid - plain).norm() / (plain - case.mean).norm()) > 0.1


def test_float32_state_with_a_float64_gaussian(mixture_problem):
    mixture, gaussian, x_T = mixture_problem
    sigmas = edm_sigmas(8)
    single = gaussian_skip_sampler(
        mixture.to(dtype=torch.float32).denoiser, gaussian, x_T.float(), sigmas, skip_to_index=3
    )
    double = gaussian_skip_sampler(mixture.denoiser, gaussian, x_T, sigmas, skip_to_index=3)
    assert single.samples.dtype == torch.float32
    assert torch.allclose(single.samples.double(), double.samples, rtol=1e-4, atol=1e-4)


def test_progress_counts_every_grid_step(mixture_problem):
    mixture, gaussian, x_T = mixture_problem
    events: list[ProgressEvent] = []
    gaussian_skip_sampler(mixture.denoiser, gaussian, x_T, edm_sigmas(8), skip_to_index=3, progress=events.append)
    steps = [event.step for event in events]
    assert steps == sorted(steps) and steps[0] == 3 and steps[-1] == 8
    assert [event.done for event in events].count(True) == 1 and events[-1].done
    assert {event.task for event in events} == {"gaussian_skip_sampler"} and events[0].total == 8
