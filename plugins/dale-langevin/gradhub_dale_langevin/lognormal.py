"""Log-normal mixtures: positive data whose GBM-perturbed score is known exactly.

If ``log x_0 ~ sum_k w_k N(c_k, tau^2 I)``, the GBM marginal (:mod:`gradhub_dale_langevin.schedule`) is
``log x_t ~ sum_k w_k N(c_k + m_t, (tau^2 + s_t^2) I)``: a Gaussian mixture in ``y = log x``. Its log-domain score
is ``grad_y log p_t(y) = sum_k r_k(y) (c_k + m_t - y) / (tau^2 + s_t^2)`` (r_k the responsibilities) and the score
in x is ``(grad_y log p_t - 1) / x``. The tests and claim checks use these as exact score models; one component
is a log-normal target, whose sampler output has closed-form log-moments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from gradhub.kinds.inputs import require_generator
from gradhub_dale_langevin.schedule import GBMSchedule

__all__ = ["LogNormalMixture", "claim_mixture"]

Model = Callable[[Tensor, Tensor], Tensor]


class LogNormalMixture:
    """``log x ~ sum_k w_k N(means[k], std^2 I)`` in ``D`` dimensions; ``means`` is ``(K, D)``."""

    def __init__(
        self, means: Any, std: float, weights: Any = None, dtype: torch.dtype = torch.float64, device: Any = None
    ) -> None:
        self.means = torch.as_tensor(means, dtype=dtype, device=device)
        if self.means.dim() == 1:
            self.means = self.means[:, None]  # K components in one dimension
        count = self.means.shape[0]
        where = self.means.device
        if weights is None:
            self.weights = torch.full((count,), 1.0 / count, dtype=dtype, device=where)
        else:
            self.weights = torch.as_tensor(weights, dtype=dtype, device=where)
        self.std = float(std)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample_log(self, count: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``(log x, component)`` for ``count`` draws."""
        require_generator("LogNormalMixture", generator, self.means, "the mixture")
        component = torch.multinomial(self.weights, count, replacement=True, generator=generator)
        noise = torch.randn(count, self.dim, generator=generator, device=self.means.device, dtype=self.means.dtype)
        return self.means[component] + self.std * noise, component

    def sample(self, count: int, generator: torch.Generator | None = None) -> Tensor:
        """``count`` positive draws ``x = exp(log x)``."""
        return torch.exp(self.sample_log(count, generator)[0])

    def log_score(self, x: Tensor, t: Tensor | float, schedule: GBMSchedule) -> Tensor:
        """``grad_y log p_t(y)`` at ``y = log x``, ``x`` of shape ``(N, D)`` (x's dtype; ``t`` a number or ``(N,)``)."""
        t64 = torch.as_tensor(t, dtype=torch.float64, device=x.device).reshape(-1, 1)
        shift = schedule.mean_shift(t64).to(x.dtype)  # (N or 1, 1)
        var = (schedule.log_var(t64) + self.std**2).to(x.dtype)  # (N or 1, 1)
        centres = self.means.to(x.dtype)[None] + shift[:, :, None]  # (N or 1, K, D): c_k + m_t
        difference = torch.log(x)[:, None, :] - centres  # (N, K, D)
        logits = -0.5 * difference.square().sum(-1) / var + self.weights.to(x.dtype).log()
        responsibilities = torch.softmax(logits, dim=1)  # (N, K)
        return -(responsibilities[..., None] * difference).sum(1) / var

    def score(self, x: Tensor, t: Tensor | float, schedule: GBMSchedule) -> Tensor:
        """``grad_x log p_t(x) = (grad_y log p_t - 1) / x``."""
        return (self.log_score(x, t, schedule) - 1) / x

    def score_model(self, schedule: GBMSchedule, param: str = "score") -> Model:
        """``model(x, t)`` returning the exact score in x (``"score"``) or in log x (``"log_score"``)."""
        if param == "log_score":
            return lambda x, t: self.log_score(x, t, schedule)
        return lambda x, t: self.score(x, t, schedule)

    def nearest(self, log_x: Tensor) -> Tensor:
        """The index of the nearest mean (in log space) of each row of ``log_x``."""
        return torch.cdist(log_x.to(self.means.dtype), self.means).argmin(1)


def claim_mixture(dtype: torch.dtype = torch.float64, device: Any = None) -> LogNormalMixture:
    """The claim's 2-D mixture: ``log x ~ 0.5 N((-1, 0.5), 0.15^2 I) + 0.5 N((0.5, -0.5), 0.15^2 I)``."""
    return LogNormalMixture([[-1.0, 0.5], [0.5, -0.5]], 0.15, dtype=dtype, device=device)
