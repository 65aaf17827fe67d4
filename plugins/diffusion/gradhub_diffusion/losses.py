"""Diffusion training losses: DDPM eps-prediction, denoising score matching, EDM, flow matching.

"The Principles of Diffusion Models", C.-H. Lai, Y. Song, D. Kim, Y. Mitsufuji, S. Ermon, 2025,
arXiv:2510.21890 (its variational, score and flow views); the losses are those of Ho et al. 2020
(Eq. 14, "L_simple"), Vincent 2011 / Song et al. 2021 (Eq. 7, lambda(t) = sigma_t^2), Karras et al.
2022 (Eq. 2 and Table 1; official code NVlabs/edm ``training/loss.py`` ``EDMLoss``,
https://github.com/NVlabs/edm) and Lipman et al. 2023 (conditional flow matching).

Each is ``loss(model, x0, generator=None, *, ..., reduction="mean")``: it draws the times (or
noise levels) and the noise from ``generator`` (float64 times, noise in x0's dtype), calls
``model(x_t, t)`` with ``t`` a ``(batch,)`` tensor in x0's dtype, and returns the mean over the
non-batch dimensions per sample, reduced over the batch (``"none"``: one value per sample).
Differences from the references: times are continuous, ``t ~ U(t_min, t_max]`` (DDPM draws
an integer step); EDM's loss is averaged over elements where the official training loop sums
over elements and divides by the batch size (a constant factor: the number of data dimensions).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from gradhub.errors import HyperparameterError, UnsupportedInputError
from gradhub.kinds.inputs import require_generator, require_matching_shapes, require_tensor
from gradhub.kinds.loss import loss, reduce
from gradhub_diffusion import DDPM_EPS_LOSS, DSM_LOSS, EDM_LOSS, FLOW_MATCHING_LOSS
from gradhub_diffusion.paths import GaussianPath, _broadcast


def _check(method: str, model: Any, x0: Any, generator: Any) -> None:
    if not callable(model):
        raise UnsupportedInputError(method, "model", type(model).__name__, "pass a callable model(x_t, t)")
    require_tensor(method, "x0", x0, min_dim=1, nonempty=True, what="(batch, ...)")
    require_generator(method, generator, x0, "x0")


def _call(method: str, model: Any, x_t: Tensor, t: Tensor) -> Tensor:
    output = require_tensor(method, "model output", model(x_t, t.to(x_t.dtype)))
    require_matching_shapes(method, **{"model output": output, "x_t": x_t})
    return output


def _per_sample(values: Tensor) -> Tensor:
    return values.reshape(values.shape[0], -1).mean(1)


def _times_and_noise(path: GaussianPath, x0: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """``t ~ U(t_min, t_max]`` (float64, never t_min, so sigma_t > 0) and ``eps ~ N(0, I)``."""
    uniform = torch.rand(x0.shape[0], generator=generator, device=x0.device, dtype=torch.float64)
    t = path.t_max - (path.t_max - path.t_min) * uniform
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    return t, noise


@loss(DDPM_EPS_LOSS)
def ddpm_eps_loss(
    model: Any, x0: Tensor, generator: torch.Generator | None = None, *, path: GaussianPath, reduction: str
) -> Tensor:
    """Ho et al. 2020, Eq. 14: ``|| eps - eps_theta(alpha_t x0 + sigma_t eps, t) ||^2``; the model predicts eps."""
    _check(DDPM_EPS_LOSS.name, model, x0, generator)
    t, noise = _times_and_noise(path, x0, generator)
    predicted = _call(DDPM_EPS_LOSS.name, model, path.sample(x0, t, noise), t)
    return reduce(_per_sample((noise - predicted).square()), reduction, DDPM_EPS_LOSS.name)


@loss(DSM_LOSS)
def dsm_loss(
    model: Any, x0: Tensor, generator: torch.Generator | None = None, *, path: GaussianPath, reduction: str
) -> Tensor:
    """Denoising score matching (Song et al. 2021, Eq. 7) with lambda(t) = sigma_t^2.

    ``sigma_t^2 || s_theta(x_t, t) + eps / sigma_t ||^2 = || sigma_t s_theta + eps ||^2``; the model
    predicts the score. Its minimiser is the true score, and the loss equals the eps-loss of
    ``eps_theta = -sigma_t s_theta``.
    """
    _check(DSM_LOSS.name, model, x0, generator)
    t, noise = _times_and_noise(path, x0, generator)
    score = _call(DSM_LOSS.name, model, path.sample(x0, t, noise), t)
    return reduce(_per_sample((_broadcast(path.sigma(t), x0) * score + noise).square()), reduction, DSM_LOSS.name)


@loss(EDM_LOSS)
def edm_loss(
    model: Any,
    x0: Tensor,
    generator: torch.Generator | None = None,
    *,
    P_mean: float,
    P_std: float,
    sigma_data: float,
    reduction: str,
) -> Tensor:
    """Karras et al. 2022, Eq. 2 with Table 1's choices: ``lambda(sigma) || D(x0 + sigma eps; sigma) - x0 ||^2``.

    ``ln sigma ~ N(P_mean, P_std^2)``, ``lambda = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2``.
    As in NVlabs/edm ``EDMLoss``, ``model`` is the preconditioned denoiser D (EDMPrecond: ``c_skip x
    + c_out F(c_in x; c_noise)``); wrap a raw network with :func:`edm_precondition`.
    """
    _check(EDM_LOSS.name, model, x0, generator)
    normal = torch.randn(x0.shape[0], generator=generator, device=x0.device, dtype=torch.float64)
    sigma = (normal * P_std + P_mean).exp()
    weight = (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    denoised = _call(EDM_LOSS.name, model, x0 + _broadcast(sigma, x0) * noise, sigma)
    return reduce(_per_sample(_broadcast(weight, x0) * (denoised - x0).square()), reduction, EDM_LOSS.name)


class EDMPrecondition(nn.Module):
    """EDM's preconditioning (Karras et al. 2022, Table 1; NVlabs/edm ``EDMPrecond``) around a raw network F.

    ``D(x; sigma) = c_skip x + c_out F(c_in x, c_noise)`` with ``c_skip = sigma_d^2/(sigma^2 + sigma_d^2)``,
    ``c_out = sigma sigma_d / sqrt(sigma^2 + sigma_d^2)``, ``c_in = 1/sqrt(sigma^2 + sigma_d^2)``,
    ``c_noise = ln(sigma)/4``; ``network(x, c_noise)`` gets c_noise as a tensor shaped like sigma (``(batch,)``)
    in x's dtype; the coefficients are computed in float64 and cast to x's dtype at the multiply.

    An ``nn.Module`` whose submodule ``network`` is the raw network (when that is a module), so ``.to()``,
    ``.parameters()``, ``state_dict()`` (under ``network.``) and ``train()``/``eval()`` reach it, as with
    ``EDMPrecond``'s ``model``. A plain function is kept as it is (nothing to move or save).
    """

    def __init__(self, network: Any, sigma_data: float = 0.5) -> None:
        super().__init__()
        if not callable(network):
            raise UnsupportedInputError(
                "edm_precondition", "network", type(network).__name__, "pass a callable network(x, c_noise)"
            )
        real = isinstance(sigma_data, (int, float)) and not isinstance(sigma_data, bool)
        if not real or not math.isfinite(sigma_data) or sigma_data <= 0:
            raise HyperparameterError("edm_precondition", "sigma_data", sigma_data, "a finite number > 0")
        self.network = network
        self.sigma_data = sigma_data

    def extra_repr(self) -> str:
        return f"sigma_data={self.sigma_data}"

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        """``D(x; sigma)``; ``sigma`` a tensor of shape () or (batch,) (or a number)."""
        sigma64 = torch.as_tensor(sigma, dtype=torch.float64, device=x.device)
        sigma_data = self.sigma_data
        norm = (sigma64**2 + sigma_data**2).sqrt()
        c_skip, c_out, c_in = sigma_data**2 / norm**2, sigma64 * sigma_data / norm, 1 / norm
        output = self.network(_broadcast(c_in, x) * x, (sigma64.log() / 4).to(x.dtype))
        return _broadcast(c_skip, x) * x + _broadcast(c_out, x) * output


def edm_precondition(network: Any, sigma_data: float = 0.5) -> EDMPrecondition:
    """EDM's preconditioned denoiser around a raw network: :class:`EDMPrecondition` (an ``nn.Module``).

    ``edm_precondition(F, sigma_data)(x, sigma)`` is ``c_skip x + c_out F(c_in x, ln(sigma)/4)`` (Karras et al.
    2022, Table 1), as before 0.5.0 when it returned a plain function; now the result is a module that owns F.
    """
    return EDMPrecondition(network, sigma_data)


@loss(FLOW_MATCHING_LOSS)
def flow_matching_loss(
    model: Any, x0: Tensor, generator: torch.Generator | None = None, *, path: GaussianPath, reduction: str
) -> Tensor:
    """Conditional flow matching: ``|| u_theta(x_t, t) - (alpha'(t) x0 + sigma'(t) eps) ||^2``, t uniform.

    On ``linear_fm`` (x_t = (1 - t) x0 + t eps, t = 1 noise) the target is ``eps - x0``.
    """
    _check(FLOW_MATCHING_LOSS.name, model, x0, generator)
    t, noise = _times_and_noise(path, x0, generator)
    target = _broadcast(path.d_alpha(t), x0) * x0 + _broadcast(path.d_sigma(t), x0) * noise
    velocity = _call(FLOW_MATCHING_LOSS.name, model, path.sample(x0, t, noise), t)
    return reduce(_per_sample((velocity - target).square()), reduction, FLOW_MATCHING_LOSS.name)


# The public names, from the objects themselves: each method's name is written once, in its spec.
__all__ = [
    exported.__name__
    for exported in (
        EDMPrecondition,
        ddpm_eps_loss,
        dsm_loss,
        edm_loss,
        edm_precondition,
        flow_matching_loss,
    )
]
