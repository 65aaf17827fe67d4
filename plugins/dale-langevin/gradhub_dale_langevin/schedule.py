"""The geometric-Brownian-motion forward process of a multiplicative diffusion model.

"Dale meets Langevin: A Multiplicative Denoising Diffusion Model", N. Shetty, M. Prasath, C. S. Seelamantula,
2025, arXiv:2510.02730. No official code; written from the paper's construction (the plugin's README lists
every choice the paper leaves open).

Forward SDE, elementwise: ``dx = mu x dt + sigma(t) x dW`` for positive data. With ``y = log x`` Ito's lemma
gives ``dy = (mu - sigma(t)^2 / 2) dt + sigma(t) dW``, so the marginal given the data is log-normal:

    log x_t | x_0 ~ N(log x_0 + m_t, s_t^2),   x_t = x_0 exp(m_t + s_t eps),   eps ~ N(0, I),

with ``s_t^2 = s_0^2 + int_0^t sigma^2`` and ``m_t = mu t - s_t^2 / 2``, so ``m_t - m_u = int_u^t (mu - sigma^2/2)``
(the ``-s_t^2/2`` is the Ito correction: with ``mu = 0`` the process is a martingale, ``E[x_t | x_0] = x_0``).

The schedule is given by the log-std ``s(t)``, t in [0, 1], from ``sigma_min`` (data end) to ``sigma_max``
(noise end), as the VE SDE of Song et al. (2021) gives its noise scale: ``geometric`` ``s = s0 (s1/s0)^t``,
``linear`` ``s = s0 + t (s1 - s0)``; the volatility is ``sigma(t) = sqrt(d s^2 / dt)``. At t = 0 the marginal
is the data under a log-normal perturbation of log-std ``sigma_min`` (mean-preserving in x), as VE's t = 0 is
the data up to ``sigma_min``; between any two times the transition is exactly the GBM above.

As a gradhub noise schedule (``form="noise"``) the process is the Gaussian path of the centred log,
``log x_t - m_t = log x_0 + s_t eps``: ``alpha(t) = 1``, ``sigma(t) = s_t``. Coefficients are computed in
float64 and cast to the data's dtype at the multiply; a tensor time (``(batch,)`` or ``()``) on its own device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import validated
from gradhub.kinds.inputs import require_generator, require_matching_shapes, require_tensor, require_values
from gradhub_dale_langevin import GBM_SCHEDULE

__all__ = ["GBMSchedule", "LogPoint", "broadcast", "log_range", "require_positive"]

POSITIVE_DATA = (
    "the GBM process multiplies the data, so every entry must be > 0 (map images to [delta, 1 + delta], e.g. "
    "delta = 1/255; the value shown is the smallest)"
)


def require_positive(method: str, name: str, value: Tensor, why: str = POSITIVE_DATA) -> None:
    """Every entry of ``value`` finite and > 0, or an error naming ``method``, the count and the smallest value.

    Two :func:`~gradhub.kinds.inputs.require_values` checks: inside a loss frame they join its one host read;
    elsewhere they read one flag each. The non-positive check shows the smallest entry (the value it reports is
    the minimum over the non-positive entries, broadcast), with how many entries are <= 0.
    """
    require_values(method, name, ~torch.isfinite(value), value, f"{name} must be finite")
    nonpositive = value <= 0
    smallest = torch.where(nonpositive, value, torch.full_like(value, math.inf)).amin().expand(value.shape)
    require_values(method, name, nonpositive, smallest, why)


def broadcast(coefficient: Tensor | float, like: Tensor) -> Tensor | float:
    """A per-sample coefficient (shape () or (batch,)) shaped to broadcast against ``like``, in its dtype;
    a Python float as it is."""
    if isinstance(coefficient, float):
        return coefficient
    coefficient = coefficient.to(device=like.device, dtype=like.dtype)
    if coefficient.dim() == 1 and like.dim() > 1:
        coefficient = coefficient.reshape(-1, *([1] * (like.dim() - 1)))
    return coefficient


def log_range(dtype: torch.dtype) -> tuple[float, float]:
    """Bounds on ``y = log x`` inside which ``exp(y)`` is a positive, finite, normal number of ``dtype``.

    The samplers clamp their log state to it: in exact arithmetic ``exp(y) > 0`` always, in floating point
    ``exp(-104)`` is 0 in float32. 0.01 inside the exact bounds, so rounding cannot reach 0 or infinity.
    """
    info = torch.finfo(dtype)
    return math.log(info.tiny) + 0.01, math.log(info.max) - 0.01


@dataclass(frozen=True)
class LogPoint:
    """The schedule at one host time ``t``, as Python floats (float64): the log-mean shift ``m`` and the
    log-variance ``v = s_t^2``. Made by :meth:`GBMSchedule.points`."""

    t: float
    m: float
    v: float


@validated(GBM_SCHEDULE)
class GBMSchedule:
    """The GBM forward process ``dx = mu x dt + sigma(t) x dW`` on [0, 1]; closed-form log-normal marginals.

    ``GBMSchedule(sigma_min=0.01, sigma_max=1.0, kind="geometric", mu=0.0)``; ``t`` may be a number or a tensor.
    """

    method: str
    t_min = 0.0
    t_max = 1.0

    def __init__(self, *, sigma_min: float, sigma_max: float, kind: str, mu: float) -> None:
        self.sigma_min, self.sigma_max, self.kind, self.mu = sigma_min, sigma_max, kind, mu

    def __repr__(self) -> str:
        return (
            f"GBMSchedule(sigma_min={self.sigma_min!r}, sigma_max={self.sigma_max!r}, kind={self.kind!r}, "
            f"mu={self.mu!r})"
        )

    @staticmethod
    def _time(t: Any) -> Tensor:
        """``t`` in float64: a tensor on its own device, a number (or list of numbers) on the host."""
        if isinstance(t, Tensor):
            return t.to(torch.float64)
        return torch.as_tensor(t, dtype=torch.float64, device="cpu")

    # --- the formulas, once, on float64 tensors ------------------------------------------------

    def _log_std(self, t: Tensor) -> Tensor:
        if self.kind == "linear":
            return self.sigma_min + t * (self.sigma_max - self.sigma_min)
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def _log_var(self, t: Tensor) -> Tensor:
        return self._log_std(t) ** 2

    def _mean_shift(self, t: Tensor) -> Tensor:
        """``m_t = mu t - s_t^2 / 2``: the drift integrated from t = 0, the Ito term from where s = 0."""
        return self.mu * t - 0.5 * self._log_var(t)

    def _volatility(self, t: Tensor) -> Tensor:
        """``sigma(t) = sqrt(d s^2 / dt)``: geometric ``s sqrt(2 ln(s1/s0))``, linear ``sqrt(2 s (s1 - s0))``."""
        if self.kind == "linear":
            return torch.sqrt(2 * self._log_std(t) * (self.sigma_max - self.sigma_min))
        return self._log_std(t) * math.sqrt(2 * math.log(self.sigma_max / self.sigma_min))

    # --- public values (float64) -----------------------------------------------------------------

    def log_std(self, t: Any) -> Tensor:
        """``s_t``: the standard deviation of ``log x_t`` given ``x_0``."""
        return self._log_std(self._time(t))

    def log_var(self, t: Any) -> Tensor:
        """``s_t^2 = s_0^2 + int_0^t sigma(u)^2 du``."""
        return self._log_var(self._time(t))

    def mean_shift(self, t: Any) -> Tensor:
        """``m_t = E[log x_t - log x_0] = mu t - s_t^2 / 2``."""
        return self._mean_shift(self._time(t))

    def volatility(self, t: Any) -> Tensor:
        """The volatility ``sigma(t)`` of ``dx = mu x dt + sigma(t) x dW``."""
        return self._volatility(self._time(t))

    def drift(self, t: Any) -> Tensor:
        """The drift rate ``mu`` (constant), shaped like ``t``."""
        return torch.full_like(self._time(t), self.mu)

    def alpha(self, t: Any) -> Tensor:
        """1: the signal scale of the centred log, ``log x_t - m_t = log x_0 + s_t eps`` (NoiseSchedule)."""
        return torch.ones_like(self._time(t))

    def sigma(self, t: Any) -> Tensor:
        """``s_t``: the noise scale of the centred log (NoiseSchedule); the same as :meth:`log_std`."""
        return self.log_std(t)

    def points(self, times: Sequence[float]) -> list[LogPoint]:
        """``(t, m_t, s_t^2)`` at each host time, as Python floats (one host tensor, read back once per grid)."""
        t = torch.tensor([float(time) for time in times], dtype=torch.float64, device="cpu")
        columns = torch.stack([t, self._mean_shift(t), self._log_var(t)]).tolist()
        return [LogPoint(*values) for values in zip(*columns)]

    # --- the process on data -------------------------------------------------------------------

    def log_marginal(self, x0: Tensor, t: Any) -> tuple[Tensor, Tensor]:
        """Mean and standard deviation of ``log x_t`` given ``x0``: ``log x0 + m_t`` and ``s_t`` (x0's dtype)."""
        self._check_data(x0, "x0")
        t = self._time_on(t, x0)
        return torch.log(x0) + broadcast(self._mean_shift(t), x0), broadcast(self._log_std(t), x0)

    def sample(self, x0: Tensor, t: Any, eps: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """``x_t = x0 exp(m_t + s_t eps)`` (computed as ``exp(log x0 + m_t + s_t eps)``); ``eps`` drawn from
        ``generator`` when not given. ``t``: a number, or a tensor of shape () or (batch,)."""
        self._check_data(x0, "x0")
        require_generator(self.method, generator, x0, "x0")
        if eps is None:
            eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        require_matching_shapes(self.method, x0=x0, eps=eps)
        t = self._time_on(t, x0)
        y = torch.log(x0) + broadcast(self._mean_shift(t), x0) + broadcast(self._log_std(t), x0) * eps
        return torch.exp(y)

    def conditional_score(self, x_t: Tensor, x0: Tensor, t: Any) -> Tensor:
        """``grad_x log p(x_t | x0) = -(1 / x_t) (1 + (log x_t - log x0 - m_t) / s_t^2)``, the log-normal's score."""
        self._check_data(x0, "x0")
        self._check_data(x_t, "x_t")
        t = self._time_on(t, x0)
        residual = (torch.log(x_t) - torch.log(x0) - broadcast(self._mean_shift(t), x0)) / broadcast(
            self._log_var(t), x0
        )
        return -(1 + residual) / x_t

    def prior(
        self,
        shape: Sequence[int],
        *,
        log_mean: Tensor | float = 0.0,
        log_std: Tensor | float = 0.0,
        generator: torch.Generator | None = None,
        device: Any = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """``x_T`` for the sampler: log-normal with ``log x_T ~ N(log_mean + m_1, s_1^2 + log_std^2)``.

        The exact marginal at t = 1 when the data's log is Gaussian with that mean and std (per entry, any
        broadcastable tensor, on ``device``); with the defaults, ``N(m_1, s_1^2)`` (``s_1`` dominating the data).
        Drawn in float32 at least; the log is clamped to :func:`log_range` of ``dtype``, so every entry is a
        positive normal number even where a wide schedule reaches past the dtype's range (float16: |log| < 9.7).
        """
        end = self.points([self.t_max])[0]
        where = torch.device(device) if device is not None else generator.device if generator is not None else None
        if generator is not None and where is not None and generator.device.type != where.type:
            raise UnsupportedInputError(
                self.method, "generator device", generator.device, f"the generator must be on device {where}"
            )
        wide = torch.promote_types(dtype, torch.float32)  # the log in float32 at least, as the sampler keeps it
        noise = torch.randn(tuple(shape), generator=generator, device=where, dtype=wide)
        mean = torch.as_tensor(log_mean, dtype=wide, device=noise.device) + end.m
        std = torch.sqrt(end.v + torch.as_tensor(log_std, dtype=wide, device=noise.device) ** 2)
        return torch.exp((mean + std * noise).clamp(*log_range(dtype))).to(dtype)

    def times(self, n_steps: int, device: Any = None) -> Tensor:
        """The sampler's grid: ``n_steps + 1`` times from t_max = 1 down to t_min = 0, uniform (float64).

        Uniform in t is uniform in log s_t for ``geometric``."""
        if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
            raise UnsupportedInputError(self.method, "n_steps", repr(n_steps), "n_steps must be an integer >= 1")
        return torch.linspace(self.t_max, self.t_min, n_steps + 1, dtype=torch.float64, device=device)

    # --- checks --------------------------------------------------------------------------------

    def _check_data(self, value: Any, name: str) -> None:
        require_tensor(self.method, name, value, nonempty=True)
        require_positive(self.method, name, value)

    def _time_on(self, t: Any, like: Tensor) -> Tensor:
        """``t`` as float64 on ``like``'s device, of shape () or (batch,) and inside [t_min, t_max]."""
        if isinstance(t, Tensor):
            if t.dim() > 1 or (t.dim() == 1 and like.dim() >= 1 and t.shape[0] not in (1, like.shape[0])):
                raise UnsupportedInputError(
                    self.method,
                    "t shape",
                    tuple(t.shape),
                    f"t must be a number, a 0-D tensor or a (batch,) tensor with batch = {like.shape[0]}",
                )
            t = t.to(device=like.device, dtype=torch.float64)
        else:
            if isinstance(t, bool) or not isinstance(t, (int, float)):
                raise UnsupportedInputError(self.method, "t", type(t).__name__, "t must be a number or a tensor")
            t = torch.tensor(float(t), dtype=torch.float64, device=like.device)
        outside = ~((t >= self.t_min) & (t <= self.t_max))  # NaN lands here too
        require_values(self.method, "t", outside, t, f"t must lie in [{self.t_min:g}, {self.t_max:g}]")
        return t
