"""Seeded examples for the conformance suite: the 2-D four-Gaussian mixture and its exact denoiser.

Samplers get the exact denoiser (a plain function, so the suite can count its calls) and a few
steps; stochastic settings (``eta = 0.5``, ``S_churn = 2``) where the sampler has them, so the
generator matters. Losses get a tiny MLP ``model(x_t, t)`` and mixture samples, with the noise
generator passed as the third input (the loss kind passes no generator of its own).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from gradhub.kinds.loss import LossExample
from gradhub.kinds.sampler import SamplerExample
from gradhub.kinds.schedule import ScheduleExample
from gradhub_diffusion.gmm import square_mixture
from gradhub_diffusion.paths import GaussianPath
from gradhub_diffusion.samplers import edm_sigmas


class TinyTimeMLP(nn.Module):
    """``model(x, t)`` for 2-D data: an MLP on ``(x, t)``, t a ``(batch,)`` tensor."""

    def __init__(self, dim: int = 2, width: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim + 1, width), nn.SiLU(), nn.Linear(width, dim))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.net(torch.cat([x, t[:, None]], dim=1))


def vp_cosine_schedule(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> ScheduleExample:
    return ScheduleExample(hparams={"kind": "vp_cosine"}, steps=50)


def _sigma_sampler(device: Any, dtype: torch.dtype, seed: int, steps: int = 4, **hparams: Any) -> SamplerExample:
    mixture = square_mixture(dtype, device)
    generator = torch.Generator(device=device).manual_seed(seed)
    sigmas = edm_sigmas(steps, device=device)
    x_T = torch.randn(8, 2, generator=generator, device=device, dtype=dtype) * float(sigmas[0])
    return SamplerExample(model=mixture.denoiser, args=(x_T, sigmas), hparams=hparams)


def _time_sampler(device: Any, dtype: torch.dtype, seed: int, kind: str, **hparams: Any) -> SamplerExample:
    mixture, path = square_mixture(dtype, device), GaussianPath(kind=kind)
    generator = torch.Generator(device=device).manual_seed(seed)
    x_T = torch.randn(8, 2, generator=generator, device=device, dtype=dtype)
    ts = torch.linspace(path.t_max * 0.999, path.t_min, 6, dtype=torch.float64, device=device)
    model = mixture.path_denoiser(path)
    if hparams.get("prediction") == "velocity":
        denoiser = model

        def model(x: Tensor, t: Tensor) -> Tensor:
            return path.to_velocity(denoiser(x, t), x, t.to(torch.float64), "x0")

    return SamplerExample(model=model, args=(x_T, ts), hparams={"path": kind, **hparams})


def mixture_on_edm_sigmas(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> SamplerExample:
    """Four steps of ``edm_sigmas`` on the mixture's exact denoiser."""
    return _sigma_sampler(device, dtype, seed)


def mixture_with_churn(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> SamplerExample:
    """Four steps of ``edm_sigmas`` with EDM's churn on (S_churn = 2, S_noise = 1.003), so the generator matters."""
    return _sigma_sampler(device, dtype, seed, S_churn=2.0, S_noise=1.003)


def mixture_on_six_edm_sigmas(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> SamplerExample:
    return _sigma_sampler(device, dtype, seed, steps=6)


def mixture_on_vp_linear(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> SamplerExample:
    return _time_sampler(device, dtype, seed, "vp_linear")


def mixture_on_vp_cosine_half_eta(
    device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> SamplerExample:
    return _time_sampler(device, dtype, seed, "vp_cosine", eta=0.5)


def velocity_on_linear_fm(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> SamplerExample:
    """The mixture's exact velocity field on linear_fm (``prediction="velocity"``)."""
    return _time_sampler(device, dtype, seed, "linear_fm", prediction="velocity")


def tiny_mlp_on_mixture(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> LossExample:
    """A tiny MLP ``model(x_t, t)`` and 16 mixture samples; the suite passes a freshly seeded ``generator=``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TinyTimeMLP().to(device=device, dtype=dtype)
    data_generator = torch.Generator(device=device).manual_seed(seed + 1)
    x0 = square_mixture(dtype, device).sample(16, data_generator)
    return LossExample(inputs=(model, x0))
