"""Clear errors (gradhub errors naming the method, the argument, the value and what is allowed), and
``converged=False`` for a non-finite answer."""

from __future__ import annotations

import math

import pytest
import torch
from gradhub_diffusion.samplers import edm_sigmas
from gradhub_gaussian_pfode.gaussian import GaussianPFODE, gaussian_pfode
from gradhub_gaussian_pfode.hybrid import gaussian_skip_sampler

from gradhub.errors import GradhubError, HyperparameterError, UnsupportedInputError

F64 = torch.float64


def raises(error, *words):
    """pytest.raises for a gradhub error whose message contains every word."""

    class Matcher:
        def __enter__(self):
            self.context = pytest.raises(error)
            self.info = self.context.__enter__()
            return self.info

        def __exit__(self, *exc):
            handled = self.context.__exit__(*exc)
            message = str(self.info.value)
            assert isinstance(self.info.value, GradhubError)
            for word in words:
                assert word in message, f"{word!r} not in {message!r}"
            return handled

    return Matcher()


# --- building a Gaussian -----------------------------------------------------------------------------


def test_covariance_not_positive_semidefinite(case):
    bad = case.cov - 0.5 * torch.eye(8, dtype=F64)  # smallest eigenvalue 0.01 - 0.5
    with raises(UnsupportedInputError, "gaussian_pfode", "cov", "negative eigenvalue", "positive semidefinite"):
        GaussianPFODE(case.mean, bad)


def test_round_off_negative_eigenvalues_are_clamped(case):
    rank_two = (case.rotation[:, :2] * case.lam[:2]) @ case.rotation[:, :2].T  # six eigenvalues at +-1e-16
    gaussian = GaussianPFODE(case.mean, rank_two.float())
    assert float(gaussian.lam.min()) >= 0.0


def test_covariance_not_symmetric_or_misshapen(case):
    skewed = case.cov.clone()
    skewed[0, 1] += 0.1
    with raises(UnsupportedInputError, "gaussian_pfode", "cov", "non-symmetric", "symmetric"):
        GaussianPFODE(case.mean, skewed)
    with raises(UnsupportedInputError, "gaussian_pfode", "cov shape", "(7, 7)", "(8, 8)"):
        GaussianPFODE(case.mean, case.cov[:7, :7])


def test_basis_and_eigenvalue_errors(case):
    with raises(UnsupportedInputError, "gaussian_pfode", "U", "orthonormal"):
        GaussianPFODE(case.mean, U=2 * case.rotation[:, :3], lam=case.lam[:3])
    with raises(UnsupportedInputError, "gaussian_pfode", "lam shape", "(4,)", "(3,)"):
        GaussianPFODE(case.mean, U=case.rotation[:, :3], lam=case.lam[:4])
    with raises(UnsupportedInputError, "gaussian_pfode", "U shape", "(7, 3)"):
        GaussianPFODE(case.mean, U=case.rotation[:7, :3], lam=case.lam[:3])
    with raises(UnsupportedInputError, "gaussian_pfode", "lam", "negative variance"):
        GaussianPFODE(case.mean, U=case.rotation[:, :3], lam=torch.tensor([1.0, -0.1, 0.2], dtype=F64))
    with raises(UnsupportedInputError, "gaussian_pfode", "diag", "negative variance"):
        GaussianPFODE(case.mean, diag=-case.lam)


def test_covariance_given_twice_or_not_at_all(case):
    with raises(UnsupportedInputError, "gaussian_pfode", "covariance", "exactly one"):
        GaussianPFODE(case.mean, case.cov, diag=case.lam)
    with raises(UnsupportedInputError, "gaussian_pfode", "covariance", "exactly one"):
        GaussianPFODE(case.mean)
    with raises(UnsupportedInputError, "gaussian_pfode", "floor"):
        GaussianPFODE(case.mean, case.cov, floor=0.1)
    with raises(UnsupportedInputError, "gaussian_pfode", "floor", ">= 0"):
        GaussianPFODE(case.mean, U=case.rotation[:, :3], lam=case.lam[:3], floor=-1.0)


def test_non_finite_parameters_and_bad_schedule(case):
    mean = case.mean.clone()
    mean[2] = math.nan
    with raises(UnsupportedInputError, "gaussian_pfode", "mean values", "non-finite"):
        GaussianPFODE(mean, case.cov)
    with raises(UnsupportedInputError, "gaussian_pfode", "cov values", "non-finite"):
        GaussianPFODE(case.mean, case.cov * math.inf)
    with raises(HyperparameterError, "gaussian_pfode", "schedule", "'edm'", "'ve'"):
        GaussianPFODE(case.mean, case.cov, schedule="edm")


# --- using it ---------------------------------------------------------------------------------------------


def test_noise_levels_out_of_range_or_order(case):
    gaussian, x = case.gaussian(), case.noisy(4, 80.0)
    with raises(UnsupportedInputError, "gaussian_pfode", "sigma", "100", "[0, sigma_T=80]"):
        gaussian.solve(x, 80.0, 100.0)
    with raises(UnsupportedInputError, "gaussian_pfode", "sigma", "-0.5"):
        gaussian.solve(x, 80.0, -0.5)
    with raises(UnsupportedInputError, "gaussian_pfode", "sigma_T", "> 0"):
        gaussian.solve(x, 0.0, 0.0)
    with raises(UnsupportedInputError, "gaussian_pfode", "sigma", "[0, sigma_T=80]"):
        gaussian.solve(x, 80.0, torch.tensor([1.0, 2.0, 90.0, 3.0], dtype=F64))
    with raises(UnsupportedInputError, "gaussian_pfode", "sigma_T", "nan"):
        gaussian.solve(x, math.nan, 1.0)
    with raises(UnsupportedInputError, "gaussian_pfode", "sigma", "(3,)"):
        gaussian.solve(x, 80.0, torch.ones(3, dtype=F64))
    with raises(UnsupportedInputError, "gaussian_pfode", "sigma", ">= 0"):
        gaussian.denoise(x, -1.0)
    with raises(UnsupportedInputError, "gaussian_pfode", "sigmas", "strictly decrease"):
        gaussian.trajectory(x, [80.0, 1.0, 2.0])


def test_vp_times_out_of_range(case):
    gaussian, x = case.gaussian(schedule="vp"), case.noisy(4, 1.0)
    with raises(UnsupportedInputError, "gaussian_pfode", "sigma_T", "abar_T", "[0, 1)"):
        gaussian.solve(x, 1.0, 1.0)
    with raises(UnsupportedInputError, "gaussian_pfode", "sigma", "abar", "[abar_T=0.5, 1]"):
        gaussian.solve(x, 0.5, 0.2)
    with raises(UnsupportedInputError, "gaussian_pfode", "sigmas", "strictly increase"):
        gaussian.trajectory(x, [0.1, 0.5, 0.3])


def test_score_at_the_data_end_of_a_singular_covariance(case):
    low = GaussianPFODE(case.mean, U=case.rotation[:, :3], lam=case.lam[:3])
    x = case.noisy(4, 1.0)
    with raises(UnsupportedInputError, "gaussian_pfode", "sigma", "> 0", "singular"):
        low.score(x, 0.0)
    assert torch.isfinite(case.gaussian().score(x, 0.0)).all()  # nonsingular: the data density's score


def test_input_shapes_and_values(case):
    gaussian = case.gaussian()
    with raises(UnsupportedInputError, "gaussian_pfode", "x_T shape", "(4, 7)", "dimension 8"):
        gaussian.solve(torch.zeros(4, 7, dtype=F64), 80.0, 1.0)
    with raises(UnsupportedInputError, "gaussian_pfode", "x_T shape", "(8,)"):
        gaussian.solve(torch.zeros(8, dtype=F64), 80.0, 1.0)
    x = case.noisy(4, 80.0)
    x[1, 3] = math.inf
    with raises(UnsupportedInputError, "gaussian_pfode", "x_T values", "non-finite"):
        gaussian.solve(x, 80.0, 1.0)
    with raises(UnsupportedInputError, "gaussian_pfode", "x values", "non-finite"):
        gaussian.denoise(x, 1.0)
    with raises(UnsupportedInputError, "gaussian_pfode", "x_T", "int64"):
        gaussian.solve(torch.zeros(4, 8, dtype=torch.int64), 80.0, 1.0)


def test_fit_errors():
    data = torch.randn(20, 4, generator=torch.Generator().manual_seed(0), dtype=F64)
    with raises(UnsupportedInputError, "gaussian_pfode", "data shape", "N >= 2"):
        GaussianPFODE.fit(data[:1])
    with raises(HyperparameterError, "gaussian_pfode", "rank", ">= 1"):
        GaussianPFODE.fit(data, rank=0)
    with raises(HyperparameterError, "gaussian_pfode", "shrinkage", "[0, 1]"):
        GaussianPFODE.fit(data, shrinkage=1.5)
    data[3, 1] = math.nan
    with raises(UnsupportedInputError, "gaussian_pfode", "data values", "non-finite"):
        GaussianPFODE.fit(data)


# --- the solver: finite or it says so --------------------------------------------------------------------


def test_solver_never_reports_convergence_on_a_non_finite_answer(case):
    gaussian = case.gaussian().to(dtype=torch.float32)
    huge = torch.full((2, 8), 3e38, dtype=torch.float32)  # finite, but the projection overflows float32
    result = gaussian_pfode(gaussian, huge, 80.0, 0.5)
    assert not torch.isfinite(result.solution).all()
    assert result.converged is False
    with raises(UnsupportedInputError, "gaussian_pfode", "gaussian", "GaussianPFODE"):
        gaussian_pfode(case.cov, case.noisy(2, 80.0), 80.0, 0.5)
    with raises(HyperparameterError, "gaussian_pfode", "tol"):
        gaussian_pfode(case.gaussian(), case.noisy(2, 80.0), 80.0, 0.5, tol=-1.0)


# --- the skip sampler ---------------------------------------------------------------------------------------


def _denoiser(x, sigma):
    return x / (1 + sigma[:, None] ** 2)


def test_skip_sampler_errors(case):
    gaussian, x, sigmas = case.gaussian(), case.noisy(4, 80.0), edm_sigmas(6)
    with raises(HyperparameterError, "gaussian_skip_sampler", "skip_to_index", "7", "[0, 6]"):
        gaussian_skip_sampler(_denoiser, gaussian, x, sigmas, skip_to_index=7)
    with raises(HyperparameterError, "gaussian_skip_sampler", "skip_to_index", "-1"):
        gaussian_skip_sampler(_denoiser, gaussian, x, sigmas, skip_to_index=-1)
    with raises(UnsupportedInputError, "gaussian_skip_sampler", "gaussian", "Tensor", "GaussianPFODE"):
        gaussian_skip_sampler(_denoiser, case.cov, x, sigmas, skip_to_index=2)
    with raises(UnsupportedInputError, "gaussian_skip_sampler", "gaussian schedule", "with_schedule('ve')"):
        gaussian_skip_sampler(_denoiser, gaussian.with_schedule("vp"), x, sigmas, skip_to_index=2)
    with raises(UnsupportedInputError, "gaussian_pfode", "x_T shape", "dimension 8"):
        gaussian_skip_sampler(_denoiser, gaussian, x[:, :5], sigmas, skip_to_index=2)
    with raises(UnsupportedInputError, "gaussian_skip_sampler", "sigmas", "strictly decrease"):
        gaussian_skip_sampler(_denoiser, gaussian, x, sigmas.flip(0), skip_to_index=2)


def test_skip_sampler_hand_over_errors(case):
    gaussian, x, sigmas = case.gaussian(), case.noisy(4, 80.0), edm_sigmas(6)
    with raises(HyperparameterError, "gaussian_skip_sampler", "sampler", "no installed method", "heun_edn"):
        gaussian_skip_sampler(_denoiser, gaussian, x, sigmas, skip_to_index=2, sampler="heun_edn")
    with raises(HyperparameterError, "gaussian_skip_sampler", "sampler", "is a solver"):
        gaussian_skip_sampler(_denoiser, gaussian, x, sigmas, skip_to_index=2, sampler="gaussian_pfode")
    with raises(UnsupportedInputError, "gaussian_skip_sampler", "sampler", "ddim", "sigma-grid"):
        gaussian_skip_sampler(_denoiser, gaussian, x, sigmas, skip_to_index=2, sampler="ddim")
    with raises(HyperparameterError, "gaussian_skip_sampler", "sampler_options", "generator"):
        gaussian_skip_sampler(_denoiser, gaussian, x, sigmas, skip_to_index=2, sampler_options={"generator": None})
    with raises(HyperparameterError, "heun_edm", "S_churn"):
        gaussian_skip_sampler(_denoiser, gaussian, x, sigmas, skip_to_index=2, sampler_options={"S_churn": -1.0})
