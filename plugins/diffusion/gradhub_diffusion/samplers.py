"""Diffusion samplers over one denoiser contract, plus ``edm_sigmas`` and classifier-free guidance.

"The Principles of Diffusion Models", C.-H. Lai, Y. Song, D. Kim, Y. Mitsufuji, S. Ermon, 2025,
arXiv:2510.21890 (its solver chapters); the algorithms are those of the papers it presents, with
NVlabs/edm (``generate.py``, ``edm_sampler``; https://github.com/NVlabs/edm) and crowsonkb/k-diffusion
(``k_diffusion/sampling.py``) as the reference implementations of the sigma-grid solvers.

Each sampler is one step of its algorithm under the core's frame (:func:`gradhub.kinds.sampler.sampler`:
grid checks, counted model calls, float32-or-wider state, trajectory, progress, ``SampleResult``),
called ``sampler(model, x_T, grid, *, generator=None, **hparams)``. ``model(x, t)`` returns the x0
prediction unless ``prediction=`` says eps / score / v / velocity; the step converts through the path.

* Sigma-grid samplers (``euler_ode``, ``heun_edm``, ``dpmpp_2m``, ``euler_maruyama_sde``) use the
  EDM form alpha = 1, sigma(t) = t: ``x_T`` is already at noise level ``sigmas[0]`` (k-diffusion's
  convention: pass ``torch.randn(...) * sigmas[0]``; EDM's ``generate.py`` multiplies inside), and
  the model is called at sigma. ``sigmas`` strictly decreases; only its last entry may be 0.
* Time-grid samplers (``ddpm_ancestral``, ``ddim``, ``fm_euler``) take a :class:`GaussianPath`
  (``path=``) and times from near ``t_max`` down to ``t_min`` (data at t_min), strictly decreasing.

Differences from the references: the Heun step uses ``sigma_next > 0`` to decide the correction
(k-diffusion's test; EDM tests ``i < N - 1``, the same on an ``edm_sigmas`` grid); churn noise is
drawn only when gamma > 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from gradhub.errors import HyperparameterError, UnsupportedInputError
from gradhub.kinds.sampler import SamplerCall, sampler
from gradhub_diffusion import DDIM, DDPM_ANCESTRAL, DPMPP_2M, EULER_MARUYAMA_SDE, EULER_ODE, FM_EULER, HEUN_EDM
from gradhub_diffusion.paths import GaussianPath, PathPoint

Model = Callable[[Tensor, Tensor], Tensor]
EDM_FORM = GaussianPath(kind="edm")
"""alpha = 1, sigma(t) = t (Karras et al. 2022, §2): the path the sigma-grid samplers convert ``prediction`` on."""


def edm_sigmas(
    n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0, device: Any = None
) -> Tensor:
    """Karras et al. (2022) Eq. 5: ``sigma_i = (s_max^(1/rho) + i/(n-1) (s_min^(1/rho) - s_max^(1/rho)))^rho``.

    ``n`` noise levels from ``sigma_max`` down to ``sigma_min`` followed by ``sigma_n = 0`` (length
    ``n + 1``, float64), as NVlabs/edm ``edm_sampler`` and k-diffusion ``get_sigmas_karras``. With
    ``n = 1`` the single level is ``sigma_max``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise HyperparameterError("edm_sigmas", "n", n, "an integer >= 1")
    for name, value in (("sigma_min", sigma_min), ("sigma_max", sigma_max), ("rho", rho)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise HyperparameterError("edm_sigmas", name, value, "a finite number > 0")
    if sigma_max <= sigma_min:
        raise HyperparameterError("edm_sigmas", "sigma_max", sigma_max, f"> sigma_min={sigma_min}")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64, device=device)
    low, high = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (high + ramp * (low - high)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def cfg(denoiser_cond: Model, denoiser_uncond: Model, w: float) -> Model:
    """Classifier-free guidance (Ho & Salimans 2022): ``D_w = D_uncond + w (D_cond - D_uncond)``.

    ``w = 1`` is the conditional denoiser, ``w = 0`` the unconditional one (both exactly: the
    combination is ``torch.lerp``). Papers that write ``(1 + w) D_cond - w D_uncond`` use ``w - 1``
    of this convention. One call of the guided denoiser calls both denoisers once.
    """
    if not callable(denoiser_cond) or not callable(denoiser_uncond):
        raise UnsupportedInputError("cfg", "denoiser", "a non-callable", "pass two callables denoiser(x, t)")
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
        raise HyperparameterError("cfg", "w", w, "a finite number")

    def guided(x: Tensor, t: Tensor) -> Tensor:
        unconditional = denoiser_uncond(x, t)
        return torch.lerp(unconditional, denoiser_cond(x, t), float(w))

    return guided


def _path_range(values: dict[str, Any]) -> tuple[float, float]:
    return values["path"].t_min, values["path"].t_max


def _grid_points(call: SamplerCall, path: GaussianPath) -> tuple[PathPoint, PathPoint]:
    """The path at this step's two grid times, as Python floats: the whole grid is evaluated at the first
    step (one read of a host tensor per call), so no step makes a tensor for a time or reads one back."""
    points = call.memory.get("path points")
    if points is None:
        points = call.memory["path points"] = path.points(call.grid)
    return points[call.index], points[call.index + 1]


def _coefficients(now: PathPoint, then: PathPoint) -> tuple[float, float, float, float, float]:
    """alpha_t, sigma_t, alpha_s, sigma_s and the transition variance sigma_t^2 - (alpha_t/alpha_s)^2 sigma_s^2."""
    a_t, s_t, a_s, s_s = now.alpha, now.sigma, then.alpha, then.sigma
    return a_t, s_t, a_s, s_s, max(s_t**2 - (a_t / a_s) ** 2 * s_s**2, 0.0)


# --- sigma-grid samplers (EDM form: alpha = 1, sigma(t) = t) -----------------------------------


@sampler(EULER_ODE, grid="sigmas")
def euler_ode(call: SamplerCall, x: Tensor, sigma: float, sigma_next: float, *, prediction: str) -> Tensor:
    """Euler on the probability-flow ODE ``dx/dsigma = (x - D(x; sigma)) / sigma`` (Karras et al. Eq. 3).

    ``x_{i+1} = x_i + (sigma_{i+1} - sigma_i) d_i``; a step to sigma = 0 returns D. Deterministic:
    ``generator`` is accepted for the common contract and unused. One model call per step.
    """
    denoised = EDM_FORM.to_x0(call.model(x, sigma), x, sigma, prediction)
    return denoised if sigma_next == 0 else x + (sigma_next - sigma) / sigma * (x - denoised)


@sampler(HEUN_EDM, grid="sigmas")
def heun_edm(
    call: SamplerCall,
    x: Tensor,
    sigma: float,
    sigma_next: float,
    *,
    S_churn: float,
    S_tmin: float,
    S_tmax: float,
    S_noise: float,
    prediction: str,
) -> Tensor:
    """EDM's stochastic sampler (Karras et al. 2022, Algorithm 2; Algorithm 1 when ``S_churn = 0``).

    Per step: ``gamma = min(S_churn / N, sqrt(2) - 1)`` if ``S_tmin <= sigma_i <= S_tmax``;
    ``sigma_hat = sigma_i (1 + gamma)``, ``x_hat = x_i + sqrt(sigma_hat^2 - sigma_i^2) S_noise z``;
    Euler from ``sigma_hat`` to ``sigma_{i+1}``, then the trapezoidal (Heun) correction when
    ``sigma_{i+1} > 0``. Model calls: ``2N - 1`` on a grid ending at 0.
    """
    gamma = min(S_churn / call.steps, math.sqrt(2) - 1) if S_tmin <= sigma <= S_tmax else 0.0
    sigma_hat = sigma * (1 + gamma)
    if gamma > 0:
        x = x + math.sqrt(sigma_hat**2 - sigma**2) * S_noise * call.noise(x)
    slope = (x - EDM_FORM.to_x0(call.model(x, sigma_hat), x, sigma_hat, prediction)) / sigma_hat
    x_euler = x + (sigma_next - sigma_hat) * slope
    if sigma_next == 0:
        return x_euler
    denoised_next = EDM_FORM.to_x0(call.model(x_euler, sigma_next), x_euler, sigma_next, prediction)
    slope_next = (x_euler - denoised_next) / sigma_next
    return x + (sigma_next - sigma_hat) * (0.5 * slope + 0.5 * slope_next)


@sampler(DPMPP_2M, grid="sigmas")
def dpmpp_2m(call: SamplerCall, x: Tensor, sigma: float, sigma_next: float, *, prediction: str) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) in EDM form (alpha = 1, lambda = -log sigma).

    ``h_i = log(sigma_{i-1} / sigma_i)``; first step ``x_i = (sigma_i/sigma_{i-1}) x_{i-1} - (e^{-h_i} - 1) D_{i-1}``;
    later steps use ``D = (1 + 1/(2r)) D_{i-1} - 1/(2r) D_{i-2}``, ``r = h_{i-1}/h_i``; a step to
    sigma = 0 returns D (first order), as k-diffusion ``sample_dpmpp_2m``. Deterministic.
    """
    denoised = EDM_FORM.to_x0(call.model(x, sigma), x, sigma, prediction)
    previous, previous_h = call.memory.get("denoised"), call.memory.get("h")
    call.memory["denoised"] = denoised
    if sigma_next == 0:
        return denoised
    h = call.memory["h"] = math.log(sigma / sigma_next)
    # x_i = (sigma_i / sigma_{i-1}) x - (e^{-h} - 1) D, with D's two terms folded into the coefficients (floats,
    # float64 on the host): two or three tensor operations a step
    step = -math.expm1(-h)
    x_next = x * (sigma_next / sigma)
    if previous is None:
        return x_next.add_(denoised, alpha=step)
    half_inverse_r = h / (2 * previous_h)  # 1 / (2r), r = h_{i-1} / h_i
    return x_next.add_(denoised, alpha=step * (1 + half_inverse_r)).add_(previous, alpha=-step * half_inverse_r)


@sampler(EULER_MARUYAMA_SDE, grid="sigmas")
def euler_maruyama_sde(call: SamplerCall, x: Tensor, sigma: float, sigma_next: float, *, prediction: str) -> Tensor:
    """Euler-Maruyama on the reverse SDE ``dx = -2 sigma grad log p(x; sigma) dsigma + sqrt(2 sigma) dW``.

    Karras et al. Eq. 6 with beta(t) = sigma'/sigma (Song et al. 2021's reverse VE SDE); with
    ``grad log p = (D - x) / sigma^2``: ``x_{i+1} = x_i + 2 (sigma_{i+1} - sigma_i)(x_i - D_i)/sigma_i
    + sqrt(sigma_i^2 - sigma_{i+1}^2) z`` (noise variance of the exact increment, first-order equal
    to ``2 sigma |dsigma|``); a step to sigma = 0 returns D.
    """
    denoised = EDM_FORM.to_x0(call.model(x, sigma), x, sigma, prediction)
    if sigma_next == 0:
        return denoised
    drift = 2 * (sigma_next - sigma) / sigma * (x - denoised)
    return x + drift + math.sqrt(sigma**2 - sigma_next**2) * call.noise(x)


# --- time-grid samplers on a Gaussian path ----------------------------------------------------


@sampler(DDPM_ANCESTRAL, grid="ts", bounds=_path_range)
def ddpm_ancestral(
    call: SamplerCall, x: Tensor, t: float, s: float, *, path: GaussianPath, variance: str, prediction: str
) -> Tensor:
    """DDPM ancestral sampling (Ho et al. 2020, Algorithm 2) between consecutive times ``t > s`` of ``ts``.

    The mean is the posterior mean of q(x_s | x_t, x0 = D(x_t, t)) (Eq. 7), which for a VP path
    equals Algorithm 2's ``(x_t - beta/sqrt(1 - abar_t) eps) / sqrt(1 - beta)`` with
    ``beta = 1 - abar_t / abar_s`` and does not divide by alpha_t (finite at alpha_t = 0). Variance
    ``beta`` (sigma_{t|s}^2, DDPM's default) or ``beta_tilde`` = beta (1 - abar_s)/(1 - abar_t);
    no noise on the last step.
    """
    now, then = _grid_points(call, path)
    a_t, s_t, a_s, s_s, transition = _coefficients(now, then)
    denoised = path.to_x0(call.model(x, t), x, now, prediction)
    x = (a_t / a_s) * (s_s**2 / s_t**2) * x + (a_s * transition / s_t**2) * denoised
    step_variance = transition * s_s**2 / s_t**2 if variance == "beta_tilde" else transition
    if call.index < call.steps - 1 and step_variance > 0:
        x = x + math.sqrt(step_variance) * call.noise(x)
    return x


@sampler(DDIM, grid="ts", bounds=_path_range)
def ddim(
    call: SamplerCall, x: Tensor, t: float, s: float, *, path: GaussianPath, eta: float, prediction: str
) -> Tensor:
    """DDIM (Song, Meng, Ermon 2021, Eq. 12): ``x_s = alpha_s x0 + sqrt(sigma_s^2 - c^2) eps + c z``.

    ``c = eta sqrt(sigma_{t|s}^2 sigma_s^2 / sigma_t^2)`` (Eq. 16: for VP,
    ``eta sqrt((1 - abar_s)/(1 - abar_t)) sqrt(1 - abar_t/abar_s)``); eta = 0 is deterministic (the
    probability-flow discretisation), eta = 1 has DDPM's posterior variance.
    """
    now, then = _grid_points(call, path)
    a_t, s_t, a_s, s_s, transition = _coefficients(now, then)
    denoised = path.to_x0(call.model(x, t), x, now, prediction)
    c = eta * math.sqrt(transition * s_s**2 / s_t**2)
    # with eps = (x - alpha_t x0) / sigma_t: x_s = (alpha_s - alpha_t k) x0 + k x + c z,
    # k = sqrt(sigma_s^2 - c^2) / sigma_t; the coefficients in float64 on the host, two tensor operations
    k = math.sqrt(max(s_s**2 - c**2, 0.0)) / s_t
    x = torch.add(x * k, denoised, alpha=a_s - a_t * k)
    return x + c * call.noise(x) if c > 0 else x


@sampler(FM_EULER, grid="ts", bounds=_path_range)
def fm_euler(call: SamplerCall, x: Tensor, t: float, s: float, *, path: GaussianPath, prediction: str) -> Tensor:
    """Euler on the flow ODE ``dx/dt = u(x, t)``, t from 1 (noise) to 0 (data): ``x <- x + (t_{k+1} - t_k) u``.

    Flow matching (Lipman et al. 2023) / rectified flow (Liu et al. 2023); the model returns the
    velocity by default (``prediction="velocity"``); other outputs are converted through the path.
    """
    now, _ = _grid_points(call, path)
    return x + (s - t) * path.to_velocity(call.model(x, t), x, now, prediction)


# The public names, from the objects themselves: each method's name is written once, in its spec.
__all__ = [
    exported.__name__
    for exported in (
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
]
