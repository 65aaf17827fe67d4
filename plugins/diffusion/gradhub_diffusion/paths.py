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

Times on the host (Python numbers, or the :class:`PathPoint` of :meth:`GaussianPath.points`) give the
conversions Python-float coefficients: a kernel takes them as arguments, so no tensor is made for them
and nothing is copied to the device. A sampler evaluates its whole grid once per call with ``points``
(one read of a host tensor, none for the polynomial kinds ``edm`` and ``linear_fm``); a tensor time
(``(batch,)``, on the data's device, as in the losses) is computed on its own device.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import validated
from gradhub_diffusion import GAUSSIAN_PATH, PREDICTIONS, kind_sigmas

__all__ = ["PREDICTIONS", "GaussianPath", "PathPoint"]

POLYNOMIAL_KINDS = ("edm", "linear_fm")
"""Kinds whose coefficients are polynomials in t: evaluated on Python floats exactly as on tensors."""


def _broadcast(coefficient: Tensor, like: Tensor) -> Tensor:
    """A per-sample coefficient (shape () or (batch,)) shaped to broadcast against ``like``, in its dtype."""
    coefficient = coefficient.to(device=like.device, dtype=like.dtype)
    if coefficient.dim() == 1 and like.dim() > 1:
        coefficient = coefficient.reshape(-1, *([1] * (like.dim() - 1)))
    return coefficient


def _shaped(coefficient: Tensor | float, like: Tensor) -> Tensor | float:
    """A tensor coefficient broadcast against ``like`` (:func:`_broadcast`); a Python float as it is (a kernel
    argument, rounded to ``like``'s dtype in the kernel as ``.to(dtype)`` would)."""
    return coefficient if isinstance(coefficient, float) else _broadcast(coefficient, like)


def _one(t: Tensor | float) -> Tensor | float:
    return 1.0 if isinstance(t, float) else torch.ones_like(t)


def _zero(t: Tensor | float) -> Tensor | float:
    return 0.0 if isinstance(t, float) else torch.zeros_like(t)


@dataclass(frozen=True)
class PathPoint:
    """A path's coefficients at one host time ``t``, as Python floats (float64): made by
    :meth:`GaussianPath.points`, taken by every conversion in place of ``t``."""

    t: float
    alpha: float
    sigma: float
    d_alpha: float
    d_sigma: float


class _TensorPoint:
    """The coefficients at a tensor time, computed (in float64, on ``t``'s device) when first asked for."""

    def __init__(self, path: GaussianPath, t: Tensor) -> None:
        self.path, self.t = path, t

    @functools.cached_property
    def alpha(self) -> Tensor:
        return self.path._alpha(self.t)

    @functools.cached_property
    def sigma(self) -> Tensor:
        return self.path._sigma(self.t)

    @functools.cached_property
    def d_alpha(self) -> Tensor:
        return self.path._d_alpha(self.t)

    @functools.cached_property
    def d_sigma(self) -> Tensor:
        return self.path._d_sigma(self.t)


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

    # The formulas, once: on float64 tensors, and on Python floats for the polynomial kinds.

    def _alpha(self, t: Tensor | float) -> Tensor | float:
        if self.kind == "vp_linear":
            return torch.exp(-0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min)
        if self.kind == "vp_cosine":
            return torch.cos(self._cosine_angle(t)).clamp_min(0) / math.cos(self._cosine_start)
        if self.kind == "linear_fm":
            return 1 - t
        return _one(t)

    def _sigma(self, t: Tensor | float) -> Tensor | float:
        # 1 - alpha^2 in forms without cancellation, so sigma is accurate near t = 0 and exactly 0 there
        if self.kind == "vp_linear":
            return torch.sqrt(-torch.expm1(-0.5 * t**2 * (self.beta_max - self.beta_min) - t * self.beta_min))
        if self.kind == "vp_cosine":  # cos^2 a0 - cos^2 a = sin(a - a0) sin(a + a0)
            start, angle = self._cosine_start, self._cosine_angle(t)
            return torch.sqrt((torch.sin(angle - start) * torch.sin(angle + start)).clamp_min(0)) / math.cos(start)
        if self.kind == "ve":
            return self.sigma_min * (self.sigma_max / self.sigma_min) ** t
        return t if isinstance(t, float) else t.clone()

    def _d_alpha(self, t: Tensor | float) -> Tensor | float:
        if self.kind == "vp_linear":
            return -0.5 * (self.beta_min + t * (self.beta_max - self.beta_min)) * self._alpha(t)
        if self.kind == "vp_cosine":
            scale = 0.5 * math.pi / (1 + self.cosine_s) / math.cos(self._cosine_start)
            return -torch.sin(self._cosine_angle(t)) * scale
        if self.kind == "linear_fm":
            return -_one(t)
        return _zero(t)

    def _d_sigma(self, t: Tensor | float) -> Tensor | float:
        if self.kind in ("vp_linear", "vp_cosine"):
            return -self._alpha(t) * self._d_alpha(t) / self._sigma(t)
        if self.kind == "ve":
            return self._sigma(t) * math.log(self.sigma_max / self.sigma_min)
        return _one(t)

    def alpha(self, t: Any) -> Tensor:
        """Signal scale alpha(t), float64."""
        return self._alpha(self._time(t))

    def sigma(self, t: Any) -> Tensor:
        """Noise scale sigma(t), float64."""
        return self._sigma(self._time(t))

    def d_alpha(self, t: Any) -> Tensor:
        """d alpha / dt, float64."""
        return self._d_alpha(self._time(t))

    def d_sigma(self, t: Any) -> Tensor:
        """d sigma / dt, float64 (VP: -alpha alpha' / sigma, infinite at t = 0 where sigma = 0)."""
        return self._d_sigma(self._time(t))

    def lambda_(self, t: Any) -> Tensor:
        """Half log-SNR lambda(t) = log(alpha / sigma), float64 (DPM-Solver's time variable)."""
        return torch.log(self.alpha(t)) - torch.log(self.sigma(t))

    def points(self, times: Sequence[float]) -> list[PathPoint]:
        """The coefficients at each host time of ``times`` (a sampler's grid), as Python floats.

        The values are those of :meth:`alpha`, :meth:`sigma`, ... (the same float64 arithmetic): for
        ``edm`` and ``linear_fm`` computed on the floats themselves, for the other kinds on one host
        tensor of all the times, read back once. Call it once per grid, not once per step.
        """
        times = [float(t) for t in times]
        if self.kind in POLYNOMIAL_KINDS:
            columns = [[f(t) for t in times] for f in (self._alpha, self._sigma, self._d_alpha, self._d_sigma)]
        else:
            t = torch.tensor(times, dtype=torch.float64, device="cpu")  # host times, host arithmetic
            columns = torch.stack([self._alpha(t), self._sigma(t), self._d_alpha(t), self._d_sigma(t)]).tolist()
        return [PathPoint(*values) for values in zip(times, *columns)]

    def point(self, t: float) -> PathPoint:
        """The coefficients at one host time: ``points([t])[0]`` (no tensor for ``edm`` and ``linear_fm``)."""
        return self.points([t])[0]

    def _at(self, t: Any) -> PathPoint | _TensorPoint:
        """Coefficients at ``t``: Python floats for a PathPoint or a number, float64 tensors for a tensor."""
        if isinstance(t, (PathPoint, _TensorPoint)):
            return t
        if isinstance(t, (int, float)) and not isinstance(t, bool):
            return self.point(t)
        return _TensorPoint(self, self._time(t))

    def sample(self, x0: Tensor, t: Any, eps: Tensor) -> Tensor:
        """``x_t = alpha(t) x0 + sigma(t) eps``; ``t`` a number, a PathPoint, or a tensor of shape () or (batch,)."""
        at = self._at(t)
        return _shaped(at.alpha, x0) * x0 + _shaped(at.sigma, x0) * eps

    # --- conversions between model outputs (all via the x0 prediction) -----------------------
    # ``t`` in each: a number or a PathPoint (Python-float coefficients), or a tensor of shape () or (batch,).

    def to_x0(self, prediction: Tensor, x_t: Tensor, t: Any, pred_type: str) -> Tensor:
        """The x0 prediction from a model output of type ``pred_type`` at ``(x_t, t)``."""
        at = self._at(t)
        if pred_type == "x0":
            return prediction
        if pred_type == "eps":  # x0 = (x_t - sigma eps) / alpha
            return (x_t - _shaped(at.sigma, x_t) * prediction) / _shaped(at.alpha, x_t)
        if pred_type == "score":  # eps = -sigma score
            return (x_t + _shaped(at.sigma * at.sigma, x_t) * prediction) / _shaped(at.alpha, x_t)
        if pred_type == "v":  # x_t = alpha x0 + sigma eps, v = alpha eps - sigma x0
            alpha, sigma = at.alpha, at.sigma
            norm = alpha * alpha + sigma * sigma
            return _shaped(alpha / norm, x_t) * x_t - _shaped(sigma / norm, x_t) * prediction
        if pred_type == "velocity":  # u = alpha' x0 + sigma' eps; solve with x_t
            alpha, sigma, d_alpha, d_sigma = at.alpha, at.sigma, at.d_alpha, at.d_sigma
            determinant = d_sigma * alpha - sigma * d_alpha  # alpha^2 d(sigma/alpha)/dt > 0
            return _shaped(d_sigma / determinant, x_t) * x_t - _shaped(sigma / determinant, x_t) * prediction
        raise UnsupportedInputError(self.method, "pred_type", repr(pred_type), f"one of {PREDICTIONS}")

    def to_eps(self, prediction: Tensor, x_t: Tensor, t: Any, pred_type: str) -> Tensor:
        """The noise prediction ``(x_t - alpha x0) / sigma``."""
        if pred_type == "eps":
            return prediction
        at = self._at(t)
        x0 = self.to_x0(prediction, x_t, at, pred_type)
        return (x_t - _shaped(at.alpha, x_t) * x0) / _shaped(at.sigma, x_t)

    def to_score(self, prediction: Tensor, x_t: Tensor, t: Any, pred_type: str) -> Tensor:
        """The score ``grad log p_t(x_t) = -eps / sigma`` (Tweedie)."""
        if pred_type == "score":
            return prediction
        at = self._at(t)
        return -self.to_eps(prediction, x_t, at, pred_type) / _shaped(at.sigma, x_t)

    def to_v(self, prediction: Tensor, x_t: Tensor, t: Any, pred_type: str) -> Tensor:
        """The v prediction ``alpha eps - sigma x0`` (Salimans & Ho 2022)."""
        if pred_type == "v":
            return prediction
        at = self._at(t)
        x0 = self.to_x0(prediction, x_t, at, pred_type)
        eps = self.to_eps(x0, x_t, at, "x0")
        return _shaped(at.alpha, x_t) * eps - _shaped(at.sigma, x_t) * x0

    def to_velocity(self, prediction: Tensor, x_t: Tensor, t: Any, pred_type: str) -> Tensor:
        """The flow-matching velocity ``alpha' x0 + sigma' eps`` (= eps - x0 on linear_fm)."""
        if pred_type == "velocity":
            return prediction
        at = self._at(t)
        x0 = self.to_x0(prediction, x_t, at, pred_type)
        eps = self.to_eps(x0, x_t, at, "x0")
        return _shaped(at.d_alpha, x_t) * x0 + _shaped(at.d_sigma, x_t) * eps
