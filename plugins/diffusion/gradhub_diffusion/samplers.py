"""Diffusion samplers over one denoiser contract, plus ``edm_sigmas`` and classifier-free guidance.

"The Principles of Diffusion Models", C.-H. Lai, Y. Song, D. Kim, Y. Mitsufuji, S. Ermon, 2025,
arXiv:2510.21890 (its solver chapters); the algorithms are those of the papers it presents, with
NVlabs/edm (``generate.py``, ``edm_sampler``; https://github.com/NVlabs/edm) and crowsonkb/k-diffusion
(``k_diffusion/sampling.py``) as the reference implementations of the sigma-grid solvers.

The contract (gradhub's sampler kind): ``sampler(model, x_T, grid, *, generator=None, **hparams)``
returns a :class:`~gradhub.kinds.sampler.SampleResult` (samples, number of model calls, optional
trajectory); randomness only from ``generator``. ``model(x, t)`` gets ``x`` shaped like ``x_T`` in
``x_T``'s dtype and ``t`` a ``(batch,)`` tensor of the same dtype; it returns the x0 ("data")
prediction by default (``prediction=`` converts eps / score / v / velocity outputs through the path).

* Sigma-grid samplers (``euler_ode``, ``heun_edm``, ``dpmpp_2m``, ``euler_maruyama_sde``) use the
  EDM form alpha = 1, sigma(t) = t: ``x_T`` is already at noise level ``sigmas[0]`` (k-diffusion's
  convention: pass ``torch.randn(...) * sigmas[0]``; EDM's ``generate.py`` multiplies inside), and
  the model is called at sigma. ``sigmas`` strictly decreases; only its last entry may be 0.
* Time-grid samplers (``ddpm_ancestral``, ``ddim``, ``fm_euler``) take a :class:`GaussianPath`
  (``path=``) and times from near ``t_max`` down to ``t_min`` (data at t_min), strictly decreasing.

Grid arithmetic is float64 on the host (the grid is read once, one host sync per call); the state
``x`` is kept in at least float32 and the model runs in ``x_T``'s dtype. Differences from the
references: the Heun step uses ``sigma_next > 0`` to decide the correction (k-diffusion's test; EDM
tests ``i < N - 1``, the same on an ``edm_sigmas`` grid); churn noise is drawn only when gamma > 0.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from gradhub.errors import HyperparameterError, UnsupportedInputError
from gradhub.hyperparameters import validated
from gradhub.kinds.sampler import SampleResult
from gradhub.progress import ProgressCallback, tracker
from gradhub_diffusion import (
    DDIMHyperparameters,
    DDPMAncestralHyperparameters,
    FMEulerHyperparameters,
    HeunEDMHyperparameters,
    SigmaSamplerHyperparameters,
)
from gradhub_diffusion.paths import GaussianPath, resolve_path

__all__ = [
    "cfg",
    "ddim",
    "ddpm_ancestral",
    "dpmpp_2m",
    "edm_sigmas",
    "euler_maruyama_sde",
    "euler_ode",
    "fm_euler",
    "heun_edm",
]

Model = Callable[[Tensor, Tensor], Tensor]
_SIGMA_PATH = GaussianPath(kind="edm")  # alpha = 1, sigma(t) = t: converts outputs on a sigma grid


# --- helpers ---------------------------------------------------------------------------------


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


class _Model:
    """Calls the user's model in its dtype, counts calls, converts its output through a path."""

    def __init__(self, method: str, model: Any, x_T: Tensor, path: GaussianPath, prediction: str) -> None:
        if not callable(model):
            raise UnsupportedInputError(method, "model", type(model).__name__, "pass a callable model(x, t)")
        self.method, self.model, self.path, self.prediction = method, model, path, prediction
        self.dtype, self.batch = x_T.dtype, x_T.shape[0]
        self.evaluations = 0

    def raw(self, x: Tensor, t: float) -> Tensor:
        time = torch.full((self.batch,), t, dtype=self.dtype, device=x.device)
        output = self.model(x.to(self.dtype), time)
        self.evaluations += 1
        if not isinstance(output, Tensor) or output.shape != x.shape or output.device != x.device:
            got = f"{tuple(output.shape)} on {output.device}" if isinstance(output, Tensor) else type(output).__name__
            raise UnsupportedInputError(
                self.method,
                "model output",
                got,
                f"the model must return a tensor shaped like x {tuple(x.shape)} on {x.device}",
            )
        return output.to(x.dtype)

    def x0(self, x: Tensor, t: float) -> Tensor:
        """The data prediction D(x; t)."""
        return self.path.to_x0(self.raw(x, t), x, t, self.prediction)

    def velocity(self, x: Tensor, t: float) -> Tensor:
        return self.path.to_velocity(self.raw(x, t), x, t, self.prediction)


def _check_state(method: str, x_T: Any, generator: Any) -> None:
    if not isinstance(x_T, Tensor) or not x_T.is_floating_point() or x_T.dim() < 1 or x_T.shape[0] < 1:
        shown = f"{x_T.dtype} tensor of shape {tuple(x_T.shape)}" if isinstance(x_T, Tensor) else type(x_T).__name__
        raise UnsupportedInputError(method, "x_T", shown, "x_T must be a real floating tensor (batch, ...)")
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise UnsupportedInputError(method, "generator", type(generator).__name__, "pass a torch.Generator or None")
        if generator.device.type != x_T.device.type:
            raise UnsupportedInputError(
                method, "generator device", generator.device, f"the generator must be on x_T's device ({x_T.device})"
            )


def _grid(method: str, name: str, grid: Any, x_T: Tensor, low: float, high: float | None = None) -> list[float]:
    """The grid as Python floats (float64), after checking it strictly decreases within [low, high]."""
    if isinstance(grid, Tensor):
        if grid.device.type not in ("cpu", x_T.device.type):
            raise UnsupportedInputError(
                method, f"{name} device", grid.device, f"put {name} on the CPU or on {x_T.device}"
            )
        if grid.dim() != 1 or grid.is_complex():
            raise UnsupportedInputError(
                method, name, f"a tensor of shape {tuple(grid.shape)}", f"{name} must be 1-D and real"
            )
        values = grid.detach().to("cpu", torch.float64).tolist()
    elif isinstance(grid, Sequence) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in grid):
        values = [float(v) for v in grid]
    else:
        raise UnsupportedInputError(
            method, name, type(grid).__name__, f"{name} must be a 1-D tensor or a list of numbers"
        )
    if len(values) < 2:
        raise UnsupportedInputError(method, name, values, f"{name} needs at least 2 entries (one step)")
    if not all(math.isfinite(v) for v in values):
        raise UnsupportedInputError(method, name, values, f"every entry of {name} must be finite")
    for i in range(len(values) - 1):
        if not values[i + 1] < values[i]:
            raise UnsupportedInputError(
                method,
                name,
                f"{name}[{i}]={values[i]:.6g}, {name}[{i + 1}]={values[i + 1]:.6g}",
                f"{name} must strictly decrease (noise first, data last)",
            )
    tolerance = 1e-9 * max(1.0, abs(high) if high is not None else 1.0)
    if values[-1] < low - tolerance or (high is not None and values[0] > high + tolerance):
        allowed = f"[{low:g}, {high:g}]" if high is not None else f"[{low:g}, inf)"
        raise UnsupportedInputError(
            method, name, f"from {values[0]:.6g} to {values[-1]:.6g}", f"{name} must lie in {allowed}"
        )
    return values


def _state(x_T: Tensor) -> Tensor:
    return x_T.to(torch.promote_types(x_T.dtype, torch.float32))


def _noise(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _result(x: Tensor, x_T: Tensor, model: _Model, trajectory: list[Tensor] | None) -> SampleResult:
    stacked = torch.stack([step.to(x_T.dtype) for step in trajectory]) if trajectory is not None else None
    return SampleResult(samples=x.to(x_T.dtype), evaluations=model.evaluations, trajectory=stacked)


# --- sigma-grid samplers (EDM form: alpha = 1, sigma(t) = t) -----------------------------------


@validated("euler_ode", SigmaSamplerHyperparameters)
def euler_ode(
    model: Model,
    x_T: Tensor,
    sigmas: Tensor,
    *,
    generator: torch.Generator | None = None,
    progress: ProgressCallback | None = None,
    prediction: str = "x0",
    return_trajectory: bool = False,
) -> SampleResult:
    """Euler on the probability-flow ODE ``dx/dsigma = (x - D(x; sigma)) / sigma`` (Karras et al. Eq. 3).

    ``x_{i+1} = x_i + (sigma_{i+1} - sigma_i) d_i``; a step to sigma = 0 returns D. Deterministic:
    ``generator`` is accepted for the common contract and unused. One model call per step.
    """
    _check_state("euler_ode", x_T, generator)
    grid = _grid("euler_ode", "sigmas", sigmas, x_T, 0.0)
    denoiser = _Model("euler_ode", model, x_T, _SIGMA_PATH, prediction)
    x = _state(x_T)
    trajectory = [x] if return_trajectory else None
    with tracker(progress, total=len(grid) - 1, task="euler_ode") as bar:
        for sigma, sigma_next in itertools.pairwise(grid):
            denoised = denoiser.x0(x, sigma)
            x = denoised if sigma_next == 0 else x + (sigma_next - sigma) / sigma * (x - denoised)
            if trajectory is not None:
                trajectory.append(x)
            bar.update(sigma=sigma_next)
    return _result(x, x_T, denoiser, trajectory)


@validated("heun_edm", HeunEDMHyperparameters)
def heun_edm(
    model: Model,
    x_T: Tensor,
    sigmas: Tensor,
    *,
    generator: torch.Generator | None = None,
    progress: ProgressCallback | None = None,
    S_churn: float = 0.0,
    S_tmin: float = 0.0,
    S_tmax: float = math.inf,
    S_noise: float = 1.0,
    prediction: str = "x0",
    return_trajectory: bool = False,
) -> SampleResult:
    """EDM's stochastic sampler (Karras et al. 2022, Algorithm 2; Algorithm 1 when ``S_churn = 0``).

    Per step: ``gamma = min(S_churn / N, sqrt(2) - 1)`` if ``S_tmin <= sigma_i <= S_tmax``;
    ``sigma_hat = sigma_i (1 + gamma)``, ``x_hat = x_i + sqrt(sigma_hat^2 - sigma_i^2) S_noise z``;
    Euler from ``sigma_hat`` to ``sigma_{i+1}``, then the trapezoidal (Heun) correction when
    ``sigma_{i+1} > 0`` (lines 5-8). Model calls: ``2N - 1`` on a grid ending at 0.
    """
    if S_tmax < S_tmin:
        raise HyperparameterError("heun_edm", "S_tmax", S_tmax, f">= S_tmin={S_tmin}")
    _check_state("heun_edm", x_T, generator)
    grid = _grid("heun_edm", "sigmas", sigmas, x_T, 0.0)
    denoiser = _Model("heun_edm", model, x_T, _SIGMA_PATH, prediction)
    steps = len(grid) - 1
    x = _state(x_T)
    trajectory = [x] if return_trajectory else None
    with tracker(progress, total=steps, task="heun_edm") as bar:
        for sigma, sigma_next in itertools.pairwise(grid):
            gamma = min(S_churn / steps, math.sqrt(2) - 1) if S_tmin <= sigma <= S_tmax else 0.0
            sigma_hat = sigma * (1 + gamma)
            if gamma > 0:
                x = x + math.sqrt(sigma_hat**2 - sigma**2) * S_noise * _noise(x, generator)
            slope = (x - denoiser.x0(x, sigma_hat)) / sigma_hat
            x_euler = x + (sigma_next - sigma_hat) * slope
            if sigma_next > 0:
                slope_next = (x_euler - denoiser.x0(x_euler, sigma_next)) / sigma_next
                x = x + (sigma_next - sigma_hat) * (0.5 * slope + 0.5 * slope_next)
            else:
                x = x_euler
            if trajectory is not None:
                trajectory.append(x)
            bar.update(sigma=sigma_next)
    return _result(x, x_T, denoiser, trajectory)


@validated("dpmpp_2m", SigmaSamplerHyperparameters)
def dpmpp_2m(
    model: Model,
    x_T: Tensor,
    sigmas: Tensor,
    *,
    generator: torch.Generator | None = None,
    progress: ProgressCallback | None = None,
    prediction: str = "x0",
    return_trajectory: bool = False,
) -> SampleResult:
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) in EDM form (alpha = 1, lambda = -log sigma).

    ``h_i = log(sigma_{i-1} / sigma_i)``; first step ``x_i = (sigma_i/sigma_{i-1}) x_{i-1} - (e^{-h_i} - 1) D_{i-1}``;
    later steps use ``D = (1 + 1/(2r)) D_{i-1} - 1/(2r) D_{i-2}``, ``r = h_{i-1}/h_i``; a step to
    sigma = 0 returns D (first order), as k-diffusion ``sample_dpmpp_2m``. Deterministic.
    """
    _check_state("dpmpp_2m", x_T, generator)
    grid = _grid("dpmpp_2m", "sigmas", sigmas, x_T, 0.0)
    denoiser = _Model("dpmpp_2m", model, x_T, _SIGMA_PATH, prediction)
    x = _state(x_T)
    trajectory = [x] if return_trajectory else None
    previous: Tensor | None = None
    previous_h = 0.0
    with tracker(progress, total=len(grid) - 1, task="dpmpp_2m") as bar:
        for sigma, sigma_next in itertools.pairwise(grid):
            denoised = denoiser.x0(x, sigma)
            if sigma_next == 0:
                x = denoised
            else:
                h = math.log(sigma / sigma_next)
                if previous is None:
                    combined = denoised
                else:
                    r = previous_h / h
                    combined = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * previous
                x = (sigma_next / sigma) * x - math.expm1(-h) * combined
                previous_h = h
            previous = denoised
            if trajectory is not None:
                trajectory.append(x)
            bar.update(sigma=sigma_next)
    return _result(x, x_T, denoiser, trajectory)


@validated("euler_maruyama_sde", SigmaSamplerHyperparameters)
def euler_maruyama_sde(
    model: Model,
    x_T: Tensor,
    sigmas: Tensor,
    *,
    generator: torch.Generator | None = None,
    progress: ProgressCallback | None = None,
    prediction: str = "x0",
    return_trajectory: bool = False,
) -> SampleResult:
    """Euler-Maruyama on the reverse SDE ``dx = -2 sigma grad log p(x; sigma) dsigma + sqrt(2 sigma) dW``.

    Karras et al. Eq. 6 with beta(t) = sigma'/sigma (Song et al. 2021's reverse VE SDE); with
    ``grad log p = (D - x) / sigma^2``: ``x_{i+1} = x_i + 2 (sigma_{i+1} - sigma_i)(x_i - D_i)/sigma_i
    + sqrt(sigma_i^2 - sigma_{i+1}^2) z`` (noise variance of the exact increment, first-order equal
    to ``2 sigma |dsigma|``); a step to sigma = 0 returns D.
    """
    _check_state("euler_maruyama_sde", x_T, generator)
    grid = _grid("euler_maruyama_sde", "sigmas", sigmas, x_T, 0.0)
    denoiser = _Model("euler_maruyama_sde", model, x_T, _SIGMA_PATH, prediction)
    x = _state(x_T)
    trajectory = [x] if return_trajectory else None
    with tracker(progress, total=len(grid) - 1, task="euler_maruyama_sde") as bar:
        for sigma, sigma_next in itertools.pairwise(grid):
            denoised = denoiser.x0(x, sigma)
            if sigma_next == 0:
                x = denoised
            else:
                drift = 2 * (sigma_next - sigma) / sigma * (x - denoised)
                x = x + drift + math.sqrt(sigma**2 - sigma_next**2) * _noise(x, generator)
            if trajectory is not None:
                trajectory.append(x)
            bar.update(sigma=sigma_next)
    return _result(x, x_T, denoiser, trajectory)


# --- time-grid samplers on a Gaussian path ----------------------------------------------------


def _coefficients(path: GaussianPath, t: float, s: float) -> tuple[float, float, float, float, float]:
    """alpha_t, sigma_t, alpha_s, sigma_s and the transition variance sigma_t^2 - (alpha_t/alpha_s)^2 sigma_s^2."""
    a_t, s_t, a_s, s_s = (float(v) for v in (path.alpha(t), path.sigma(t), path.alpha(s), path.sigma(s)))
    return a_t, s_t, a_s, s_s, max(s_t**2 - (a_t / a_s) ** 2 * s_s**2, 0.0)


@validated("ddpm_ancestral", DDPMAncestralHyperparameters)
def ddpm_ancestral(
    model: Model,
    x_T: Tensor,
    ts: Tensor,
    *,
    generator: torch.Generator | None = None,
    progress: ProgressCallback | None = None,
    path: Any = "vp_linear",
    variance: str = "beta",
    prediction: str = "x0",
    return_trajectory: bool = False,
) -> SampleResult:
    """DDPM ancestral sampling (Ho et al. 2020, Algorithm 2) between consecutive times ``t > s`` of ``ts``.

    The mean is the posterior mean of q(x_s | x_t, x0 = D(x_t, t)) (Eq. 7), which for a VP path
    equals Algorithm 2's ``(x_t - beta/sqrt(1 - abar_t) eps) / sqrt(1 - beta)`` with
    ``beta = 1 - abar_t / abar_s`` and does not divide by alpha_t (finite at alpha_t = 0). Variance
    ``beta`` (sigma_{t|s}^2, DDPM's default) or ``beta_tilde`` = beta (1 - abar_s)/(1 - abar_t);
    no noise on the last step.
    """
    path = resolve_path("ddpm_ancestral", path)
    _check_state("ddpm_ancestral", x_T, generator)
    grid = _grid("ddpm_ancestral", "ts", ts, x_T, path.t_min, path.t_max)
    denoiser = _Model("ddpm_ancestral", model, x_T, path, prediction)
    x = _state(x_T)
    trajectory = [x] if return_trajectory else None
    steps = len(grid) - 1
    with tracker(progress, total=steps, task="ddpm_ancestral") as bar:
        for index, (t, s) in enumerate(itertools.pairwise(grid)):
            a_t, s_t, a_s, s_s, transition = _coefficients(path, t, s)
            denoised = denoiser.x0(x, t)
            x = (a_t / a_s) * (s_s**2 / s_t**2) * x + (a_s * transition / s_t**2) * denoised
            step_variance = transition * s_s**2 / s_t**2 if variance == "beta_tilde" else transition
            if index < steps - 1 and step_variance > 0:
                x = x + math.sqrt(step_variance) * _noise(x, generator)
            if trajectory is not None:
                trajectory.append(x)
            bar.update(t=s)
    return _result(x, x_T, denoiser, trajectory)


@validated("ddim", DDIMHyperparameters)
def ddim(
    model: Model,
    x_T: Tensor,
    ts: Tensor,
    *,
    generator: torch.Generator | None = None,
    progress: ProgressCallback | None = None,
    path: Any = "vp_linear",
    eta: float = 0.0,
    prediction: str = "x0",
    return_trajectory: bool = False,
) -> SampleResult:
    """DDIM (Song, Meng, Ermon 2021, Eq. 12): ``x_s = alpha_s x0 + sqrt(sigma_s^2 - c^2) eps + c z``.

    ``c = eta sqrt(sigma_{t|s}^2 sigma_s^2 / sigma_t^2)`` (Eq. 16: for VP,
    ``eta sqrt((1 - abar_s)/(1 - abar_t)) sqrt(1 - abar_t/abar_s)``); eta = 0 is deterministic (the
    probability-flow discretisation), eta = 1 has DDPM's posterior variance.
    """
    path = resolve_path("ddim", path)
    _check_state("ddim", x_T, generator)
    grid = _grid("ddim", "ts", ts, x_T, path.t_min, path.t_max)
    denoiser = _Model("ddim", model, x_T, path, prediction)
    x = _state(x_T)
    trajectory = [x] if return_trajectory else None
    with tracker(progress, total=len(grid) - 1, task="ddim") as bar:
        for t, s in itertools.pairwise(grid):
            a_t, s_t, a_s, s_s, transition = _coefficients(path, t, s)
            denoised = denoiser.x0(x, t)
            noise_pred = (x - a_t * denoised) / s_t
            c = eta * math.sqrt(transition * s_s**2 / s_t**2)
            x = a_s * denoised + math.sqrt(max(s_s**2 - c**2, 0.0)) * noise_pred
            if c > 0:
                x = x + c * _noise(x, generator)
            if trajectory is not None:
                trajectory.append(x)
            bar.update(t=s)
    return _result(x, x_T, denoiser, trajectory)


@validated("fm_euler", FMEulerHyperparameters)
def fm_euler(
    model: Model,
    x_T: Tensor,
    ts: Tensor,
    *,
    generator: torch.Generator | None = None,
    progress: ProgressCallback | None = None,
    path: Any = "linear_fm",
    prediction: str = "velocity",
    return_trajectory: bool = False,
) -> SampleResult:
    """Euler on the flow ODE ``dx/dt = u(x, t)``, t from 1 (noise) to 0 (data): ``x <- x + (t_{k+1} - t_k) u``.

    Flow matching (Lipman et al. 2023) / rectified flow (Liu et al. 2023); the model returns the
    velocity by default (``prediction="velocity"``); other outputs are converted through the path.
    """
    path = resolve_path("fm_euler", path)
    _check_state("fm_euler", x_T, generator)
    grid = _grid("fm_euler", "ts", ts, x_T, path.t_min, path.t_max)
    denoiser = _Model("fm_euler", model, x_T, path, prediction)
    x = _state(x_T)
    trajectory = [x] if return_trajectory else None
    with tracker(progress, total=len(grid) - 1, task="fm_euler") as bar:
        for t, s in itertools.pairwise(grid):
            x = x + (s - t) * denoiser.velocity(x, t)
            if trajectory is not None:
                trajectory.append(x)
            bar.update(t=s)
    return _result(x, x_T, denoiser, trajectory)
