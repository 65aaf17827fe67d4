"""Gaussian paths ``x_t = alpha(t) x_0 + sigma(t) eps`` and the conversions between model outputs.

"The Principles of Diffusion Models", C.-H. Lai, Y. Song, D. Kim, Y. Mitsufuji, S. Ermon, 2025,
arXiv:2510.21890 (the unified forward process of its variational, score and flow views). The
kinds and their defaults come from the papers the monograph builds on:

``vp_linear``  DDPM (Ho et al. 2020) in continuous time (Song et al. 2021, VP SDE):
               beta(t) = beta_min + t (beta_max - beta_min), alpha = exp(-int_0^t beta / 2),
               sigma = sqrt(1 - alpha^2), t in [0, 1]. beta_min = 0.1, beta_max = 20 are
               T beta_1 and T beta_T of DDPM's discrete schedule (1e-4 .. 0.02, T = 1000).
``vp_cosine``  Nichol & Dhariwal 2021: alpha = cos(pi/2 (t+s)/(1+s)) / cos(pi/2 s/(1+s)), s = 0.008.
``ve``         Song et al. 2021 (VE SDE): alpha = 1, sigma = sigma_min (sigma_max/sigma_min)^t,
               t in [0, 1], sigma_min = 0.01, sigma_max = 50 (so t = 0 is data up to sigma_min).
``edm``        Karras et al. 2022: alpha = 1, sigma(t) = t, t in [0, sigma_max = 80].
``linear_fm``  rectified flow / flow matching (Liu et al.; Lipman et al. 2023): alpha = 1 - t, sigma = t.

Convention (NVlabs/edm's and k-diffusion's): data at ``t = t_min`` (sigma = 0
or sigma_min), noise at ``t_max``. The continuous ``vp_linear`` differs from DDPM's discrete
``prod(1 - beta_i)`` at second order in beta (alpha^2 within 0.001 absolute at every one of the 1000 steps).

Model outputs and their conversions (all through the x0 prediction, the common currency):
``eps = (x_t - alpha x0) / sigma``; ``score = -eps / sigma``; ``v = alpha eps - sigma x0``
(Salimans & Ho 2022, for any path); ``velocity = alpha' x0 + sigma' eps`` (flow matching).
Path coefficients are computed in float64 and cast to the tensor's dtype at the multiply.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import validated
from gradhub_diffusion import GAUSSIAN_PATH, PREDICTIONS, kind_sigmas

__all__ = ["PREDICTIONS", "GaussianPath"]


def _broadcast(coefficient: Tensor, like: Tensor) -> Tensor:
    """A per-sample coefficient (shape () or (batch,)) shaped to broadcast against ``like``, in its dtype."""
    coefficient = coefficient.to(device=like.device, dtype=like.dtype)
    if coefficient.dim() == 1 and like.dim() > 1:
        coefficient = coefficient.reshape(-1, *([1] * (like.dim() - 1)))
    return coefficient


@validated(GAUSSIAN_PATH)
class GaussianPath:
    """A Gaussian path of one of five kinds; ``alpha``, ``sigma`` and their derivatives in float64.

    ``GaussianPath(kind="vp_cosine")``; ``t`` may be a number or a tensor (any shape).
    """

    method: str

    def __init__(
        self,
        *,
        kind: str,
        beta_min: float,
        beta_max: float,
        cosine_s: float,
        sigma_min: float | None,
        sigma_max: float | None,
    ) -> None:
        self.kind, self.beta_min, self.beta_max, self.cosine_s = kind, beta_min, beta_max, cosine_s
        self.sigma_min, self.sigma_max = kind_sigmas(kind, sigma_min, sigma_max)
        self.t_min = 0.0
        self.t_max = float(self.sigma_max) if kind == "edm" else 1.0

    def __repr__(self) -> str:
        return f"GaussianPath(kind={self.kind!r})"

    @staticmethod
    def _time(t: Any) -> Tensor:
        return torch.as_tensor(t, dtype=torch.float64)

    @property
    def _cosine_start(self) -> float:
        return 0.5 * math.pi * self.cosine_s / (1 + self.cosine_s)

    def _cosine_angle(self, t: Tensor) -> Tensor:
        return 0.5 * math.pi * (t + self.cosine_s) / (1 + self.cosine_s)

    def alpha(self, t: Any) -> Tensor:
        """Signal scale alpha(t), float64."""
        t = self._time(t)
        if self.kind == "vp_linear":
            return torch.exp(-0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min)
        if self.kind == "vp_cosine":
            return torch.cos(self._cosine_angle(t)).clamp_min(0) / math.cos(self._cosine_start)
        if self.kind == "linear_fm":
            return 1 - t
        return torch.ones_like(t)

    def sigma(self, t: Any) -> Tensor:
        """Noise scale sigma(t), float64."""
        t = self._time(t)
        # 1 - alpha^2 in forms without cancellation, so sigma is accurate near t = 0 and exactly 0 there
        if self.kind == "vp_linear":
            return torch.sqrt(-torch.expm1(-0.5 * t**2 * (self.beta_max - self.beta_min) - t * self.beta_min))
        if self.kind == "vp_cosine":  # cos^2 a0 - cos^2 a = sin(a - a0) sin(a + a0)
            start, angle = self._cosine_start, self._cosine_angle(t)
            return torch.sqrt((torch.sin(angle - start) * torch.sin(angle + start)).clamp_min(0)) / math.cos(start)
        if self.kind == "ve":
            return self.sigma_min * (self.sigma_max / self.sigma_min) ** t
        return t.clone()

    def d_alpha(self, t: Any) -> Tensor:
        """d alpha / dt, float64."""
        t = self._time(t)
        if self.kind == "vp_linear":
            return -0.5 * (self.beta_min + t * (self.beta_max - self.beta_min)) * self.alpha(t)
        if self.kind == "vp_cosine":
            scale = 0.5 * math.pi / (1 + self.cosine_s) / math.cos(self._cosine_start)
            return -torch.sin(self._cosine_angle(t)) * scale
        if self.kind == "linear_fm":
            return -torch.ones_like(t)
        return torch.zeros_like(t)

    def d_sigma(self, t: Any) -> Tensor:
        """d sigma / dt, float64 (VP: -alpha alpha' / sigma, infinite at t = 0 where sigma = 0)."""
        t = self._time(t)
        if self.kind in ("vp_linear", "vp_cosine"):
            return -self.alpha(t) * self.d_alpha(t) / self.sigma(t)
        if self.kind == "ve":
            return self.sigma(t) * math.log(self.sigma_max / self.sigma_min)
        return torch.ones_like(t)

    def lambda_(self, t: Any) -> Tensor:
        """Half log-SNR lambda(t) = log(alpha / sigma), float64 (DPM-Solver's time variable)."""
        return torch.log(self.alpha(t)) - torch.log(self.sigma(t))

    def sample(self, x0: Tensor, t: Any, eps: Tensor) -> Tensor:
        """``x_t = alpha(t) x0 + sigma(t) eps``; ``t`` of shape () or (batch,)."""
        t = self._time(t)
        return _broadcast(self.alpha(t), x0) * x0 + _broadcast(self.sigma(t), x0) * eps

    # --- conversions between model outputs (all via the x0 prediction) -----------------------

    def to_x0(self, prediction: Tensor, x_t: Tensor, t: Any, pred_type: str) -> Tensor:
        """The x0 prediction from a model output of type ``pred_type`` at ``(x_t, t)``."""
        t = self._time(t)
        alpha, sigma = self.alpha(t), self.sigma(t)
        if pred_type == "x0":
            return prediction
        if pred_type == "eps":  # x0 = (x_t - sigma eps) / alpha
            return (x_t - _broadcast(sigma, x_t) * prediction) / _broadcast(alpha, x_t)
        if pred_type == "score":  # eps = -sigma score
            return (x_t + _broadcast(sigma**2, x_t) * prediction) / _broadcast(alpha, x_t)
        if pred_type == "v":  # x_t = alpha x0 + sigma eps, v = alpha eps - sigma x0
            norm = alpha**2 + sigma**2
            return _broadcast(alpha / norm, x_t) * x_t - _broadcast(sigma / norm, x_t) * prediction
        if pred_type == "velocity":  # u = alpha' x0 + sigma' eps; solve with x_t
            d_alpha, d_sigma = self.d_alpha(t), self.d_sigma(t)
            determinant = d_sigma * alpha - sigma * d_alpha  # alpha^2 d(sigma/alpha)/dt > 0
            return _broadcast(d_sigma / determinant, x_t) * x_t - _broadcast(sigma / determinant, x_t) * prediction
        raise UnsupportedInputError(self.method, "pred_type", repr(pred_type), f"one of {PREDICTIONS}")

    def to_eps(self, prediction: Tensor, x_t: Tensor, t: Any, pred_type: str) -> Tensor:
        """The noise prediction ``(x_t - alpha x0) / sigma``."""
        if pred_type == "eps":
            return prediction
        t = self._time(t)
        x0 = self.to_x0(prediction, x_t, t, pred_type)
        return (x_t - _broadcast(self.alpha(t), x_t) * x0) / _broadcast(self.sigma(t), x_t)

    def to_score(self, prediction: Tensor, x_t: Tensor, t: Any, pred_type: str) -> Tensor:
        """The score ``grad log p_t(x_t) = -eps / sigma`` (Tweedie)."""
        if pred_type == "score":
            return prediction
        t = self._time(t)
        return -self.to_eps(prediction, x_t, t, pred_type) / _broadcast(self.sigma(t), x_t)

    def to_v(self, prediction: Tensor, x_t: Tensor, t: Any, pred_type: str) -> Tensor:
        """The v prediction ``alpha eps - sigma x0`` (Salimans & Ho 2022)."""
        if pred_type == "v":
            return prediction
        t = self._time(t)
        x0 = self.to_x0(prediction, x_t, t, pred_type)
        eps = self.to_eps(x0, x_t, t, "x0")
        return _broadcast(self.alpha(t), x_t) * eps - _broadcast(self.sigma(t), x_t) * x0

    def to_velocity(self, prediction: Tensor, x_t: Tensor, t: Any, pred_type: str) -> Tensor:
        """The flow-matching velocity ``alpha' x0 + sigma' eps`` (= eps - x0 on linear_fm)."""
        if pred_type == "velocity":
            return prediction
        t = self._time(t)
        x0 = self.to_x0(prediction, x_t, t, pred_type)
        eps = self.to_eps(x0, x_t, t, "x0")
        return _broadcast(self.d_alpha(t), x_t) * x0 + _broadcast(self.d_sigma(t), x_t) * eps
