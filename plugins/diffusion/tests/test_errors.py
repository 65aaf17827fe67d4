"""Bad input gives gradhub errors naming the method, the parameter, the value and what is allowed."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from gradhub_diffusion.gmm import square_mixture
from gradhub_diffusion.losses import ddpm_eps_loss, edm_loss, flow_matching_loss
from gradhub_diffusion.paths import GaussianPath
from gradhub_diffusion.samplers import cfg, ddim, ddpm_ancestral, dpmpp_2m, edm_sigmas, euler_ode, fm_euler, heun_edm

from gradhub.errors import HyperparameterError, UnknownHyperparameterError, UnsupportedInputError

DENOISER = square_mixture().denoiser
X = torch.randn(4, 2, dtype=torch.float64)


def _explains(error: Exception, method: str, *words: str) -> None:
    message = str(error)
    assert message.startswith(f"{method}:"), message
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize("sampler", [euler_ode, heun_edm, dpmpp_2m])
@pytest.mark.parametrize(
    ("sigmas", "words"),
    [
        ([80.0, 10.0, 20.0, 0.0], ("sigmas[1]=10", "sigmas[2]=20", "strictly decrease")),
        ([80.0, 80.0, 0.0], ("strictly decrease",)),
        ([1.0, 0.0, -1.0], ("must lie in", "[0, inf)")),
        ([80.0, -0.5], ("must lie in", "[0, inf)")),
        ([80.0, math.nan], ("finite",)),
        ([80.0], ("at least 2",)),
    ],
)
def test_sigma_grid_must_decrease(sampler: Any, sigmas: list[float], words: tuple[str, ...]) -> None:
    with pytest.raises(UnsupportedInputError) as caught:
        sampler(DENOISER, X, torch.tensor(sigmas, dtype=torch.float64))
    _explains(caught.value, sampler.__name__, "sigmas", *words)


def test_time_grid_within_path() -> None:
    with pytest.raises(UnsupportedInputError) as caught:
        ddim(DENOISER, X, torch.tensor([1.5, 0.0], dtype=torch.float64), path="vp_cosine")
    _explains(caught.value, "ddim", "ts", "[0, 1]")
    with pytest.raises(UnsupportedInputError) as caught:
        ddpm_ancestral(DENOISER, X, torch.tensor([0.0, 0.5], dtype=torch.float64))
    _explains(caught.value, "ddpm_ancestral", "ts", "strictly decrease")


def test_grid_shape_and_device() -> None:
    with pytest.raises(UnsupportedInputError) as caught:
        euler_ode(DENOISER, X, edm_sigmas(4)[None])
    _explains(caught.value, "euler_ode", "sigmas", "(1, 5)", "1-D")
    with pytest.raises(UnsupportedInputError) as caught:
        euler_ode(DENOISER, X, edm_sigmas(4).to("meta"))
    _explains(caught.value, "euler_ode", "sigmas device", "meta", "CPU")


def test_bad_state_model_and_generator() -> None:
    with pytest.raises(UnsupportedInputError) as caught:
        heun_edm(DENOISER, torch.zeros(4, 2, dtype=torch.int64), edm_sigmas(3))
    _explains(caught.value, "heun_edm", "x_T", "int64", "floating")
    with pytest.raises(UnsupportedInputError) as caught:
        heun_edm(lambda x, s: x[:, :1], X, edm_sigmas(3))
    _explains(caught.value, "heun_edm", "model output", "(4, 1)", "(4, 2)")
    with pytest.raises(UnsupportedInputError) as caught:
        heun_edm("not a model", X, edm_sigmas(3))
    _explains(caught.value, "heun_edm", "model", "str")
    with pytest.raises(UnsupportedInputError) as caught:
        heun_edm(DENOISER, X, edm_sigmas(3), generator=0)
    _explains(caught.value, "heun_edm", "generator", "torch.Generator")


@pytest.mark.parametrize(
    ("sampler", "name", "value", "allowed"),
    [
        (ddim, "eta", 1.5, "<= 1"),
        (ddim, "eta", -0.1, ">= 0"),
        (ddim, "eta", math.nan, "finite"),
        (heun_edm, "S_churn", -1.0, ">= 0"),
        (heun_edm, "S_noise", math.inf, ">= 0"),
        (heun_edm, "S_tmin", -0.5, ">= 0"),
        (heun_edm, "S_tmax", math.nan, ">= 0"),
        (heun_edm, "prediction", "noise", "'x0'"),
        (ddpm_ancestral, "variance", "large", "'beta'"),
        (ddpm_ancestral, "path", "vp_quadratic", "'vp_linear'"),
        (fm_euler, "return_trajectory", "yes", "True or False"),
    ],
)
def test_out_of_range_hyperparameters(sampler: Any, name: str, value: Any, allowed: str) -> None:
    sigmas = (
        torch.tensor([0.9, 0.0], dtype=torch.float64) if sampler in (ddim, ddpm_ancestral, fm_euler) else edm_sigmas(3)
    )
    with pytest.raises(HyperparameterError) as caught:
        sampler(DENOISER, X, sigmas, **{name: value})
    _explains(caught.value, sampler.__name__, name, repr(value), allowed)


def test_s_tmax_below_s_tmin() -> None:
    with pytest.raises(HyperparameterError) as caught:
        heun_edm(DENOISER, X, edm_sigmas(3), S_tmin=2.0, S_tmax=1.0)
    _explains(caught.value, "heun_edm", "S_tmax=1.0", ">= S_tmin=2.0")


def test_unknown_keyword_suggests() -> None:
    with pytest.raises(UnknownHyperparameterError) as caught:
        heun_edm(DENOISER, X, edm_sigmas(3), s_churn=1.0)
    _explains(caught.value, "heun_edm", "did you mean 'S_churn'")


def test_edm_sigmas_and_cfg_arguments() -> None:
    for kwargs, name in [
        ({"n": 0}, "n"),
        ({"n": 2.5}, "n"),
        ({"n": 4, "sigma_min": -1.0}, "sigma_min"),
        ({"n": 4, "sigma_max": 0.001}, "sigma_max"),
        ({"n": 4, "rho": math.inf}, "rho"),
    ]:
        with pytest.raises(HyperparameterError) as caught:
            edm_sigmas(**kwargs)
        _explains(caught.value, "edm_sigmas", name)
    with pytest.raises(HyperparameterError) as caught:
        cfg(DENOISER, DENOISER, math.nan)
    _explains(caught.value, "cfg", "w=nan", "finite")


def test_gaussian_path_errors() -> None:
    with pytest.raises(HyperparameterError) as caught:
        GaussianPath(kind="cosine")
    _explains(caught.value, "gaussian_path", "kind", "'vp_cosine'")
    with pytest.raises(HyperparameterError) as caught:
        GaussianPath(kind="ve", sigma_min=10.0, sigma_max=1.0)
    _explains(caught.value, "gaussian_path", "sigma_max=1.0", "> sigma_min=10.0")
    with pytest.raises(HyperparameterError) as caught:
        GaussianPath(kind="vp_linear", beta_min=0.0)
    _explains(caught.value, "gaussian_path", "beta_min", "> 0")


def test_loss_errors() -> None:
    with pytest.raises(UnsupportedInputError) as caught:
        edm_loss(DENOISER, torch.zeros(4, 2, dtype=torch.int32))
    _explains(caught.value, "edm_loss", "x0", "int32")
    with pytest.raises(HyperparameterError) as caught:
        edm_loss(DENOISER, X, P_std=0.0)
    _explains(caught.value, "edm_loss", "P_std", "> 0")
    with pytest.raises(HyperparameterError) as caught:
        ddpm_eps_loss(DENOISER, X, reduction="avg")
    _explains(caught.value, "ddpm_eps_loss", "reduction", "'mean'")
    with pytest.raises(HyperparameterError) as caught:
        flow_matching_loss(DENOISER, X, path=object())
    _explains(caught.value, "flow_matching_loss", "path")
    with pytest.raises(UnsupportedInputError) as caught:
        flow_matching_loss(lambda x, t: x.sum(1), X)
    _explains(caught.value, "flow_matching_loss", "model output", "(4,)")
    with pytest.raises(UnsupportedInputError) as caught:
        edm_loss(DENOISER, X, generator="seed")
    _explains(caught.value, "edm_loss", "generator")


def test_custom_path_object_accepted() -> None:
    """A configured GaussianPath passes where a kind's name does."""
    path = GaussianPath(kind="ve", sigma_min=0.02, sigma_max=10.0)
    model = square_mixture().path_denoiser(path)
    result = ddim(model, X * 10, torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64), path=path)
    assert torch.isfinite(result.samples).all()
