"""Multiplicative denoising score matching (M-DSM) for the GBM forward process.

"Dale meets Langevin: A Multiplicative Denoising Diffusion Model", N. Shetty, M. Prasath, C. S. Seelamantula,
2025, arXiv:2510.02730 (no official code). For ``x_t = x_0 exp(m_t + s_t eps)`` the conditional score in the
positive domain is ``grad_x log p(x_t | x_0) = -(1 / x_t)(1 + eps / s_t)``; weighting the squared error
elementwise by ``x_t^2`` (Hyvarinen 2007's score matching for non-negative data) gives

    L = E_{t, x_0, eps} || x_t (s_theta(x_t, t) - grad_x log p(x_t | x_0)) ||^2
      = E || x_t s_theta(x_t, t) + 1 + eps / s_t ||^2,

which has no division by ``x_t`` and is minimised by the true score (any positive weight keeps the pointwise
minimiser, the conditional expectation of the target). ``x_t s + 1`` is the score of ``y = log x``
(``p_Y(y) = p_X(e^y) e^y``), the modulated ("Hyvarinen") score the sampler uses. Weightings:

``x2``         the loss above (the paper's multiplicative DSM, lambda(t) = 1);
``x2_sigma2``  lambda(t) = s_t^2: ``|| s_t (x_t s_theta + 1) + eps ||^2``, exactly the eps-prediction loss of the
               log-domain Gaussian path with ``eps_theta = -s_t (x_t s_theta + 1)``;
``none``       the unweighted DSM in x (Vincent 2011), ``|| s_theta + (1 + eps / s_t) / x_t ||^2``, for comparison.

``param="log_score"``: the model returns the log-domain score ``grad_y log p_t`` itself (``x_t s_theta + 1``
above is replaced by the output). The model is always called with ``x_t`` (positive) and ``t``.

Draws, in this order, from ``generator``: ``t ~ U(t_min, t_max]`` (float64, ``(batch,)``; skipped when ``t`` is
given) and ``eps ~ N(0, I)`` in x0's dtype. Returns the mean over non-batch dimensions per sample, reduced over
the batch (``"none"``: one value per sample).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from gradhub.errors import UnsupportedInputError
from gradhub.kinds.inputs import require_generator, require_matching_shapes, require_tensor, require_values
from gradhub.kinds.loss import loss, reduce
from gradhub_dale_langevin import MULTIPLICATIVE_DSM
from gradhub_dale_langevin.schedule import GBMSchedule, broadcast, require_positive

__all__ = [MULTIPLICATIVE_DSM.name]

METHOD = MULTIPLICATIVE_DSM.name


def _times(schedule: GBMSchedule, x0: Tensor, t: Any, generator: torch.Generator | None, check: bool) -> Tensor:
    """The per-sample times: drawn ``U(t_min, t_max]`` (never t_min), or the given ones as float64 ``(batch,)``."""
    if t is None:
        uniform = torch.rand(x0.shape[0], generator=generator, device=x0.device, dtype=torch.float64)
        return schedule.t_max - (schedule.t_max - schedule.t_min) * uniform
    require_tensor(METHOD, "t", t, dtype="real")
    if t.dim() > 1 or (t.dim() == 1 and t.shape[0] != x0.shape[0]):
        raise UnsupportedInputError(
            METHOD, "t shape", tuple(t.shape), f"t must be 0-D or (batch,) with batch = {x0.shape[0]}"
        )
    if t.device != x0.device:
        raise UnsupportedInputError(METHOD, "t device", t.device, f"t must be on x0's device ({x0.device})")
    t = t.to(torch.float64).expand(x0.shape[0])
    if check:
        outside = ~((t > schedule.t_min) & (t <= schedule.t_max))  # NaN lands here too
        require_values(METHOD, "t", outside, t, f"t must lie in ({schedule.t_min:g}, {schedule.t_max:g}]")
    return t


@loss(MULTIPLICATIVE_DSM)
def multiplicative_dsm(
    model: Any,
    x0: Tensor,
    generator: torch.Generator | None = None,
    t: Tensor | None = None,
    *,
    schedule: GBMSchedule,
    weighting: str,
    param: str,
    reduction: str,
    check_values: bool,
) -> Tensor:
    """Multiplicative DSM: ``E ||x_t (s_theta(x_t, t) - grad_x log p(x_t | x0))||^2`` under the GBM ``schedule``.

    ``model(x_t, t)`` gets the positive ``x_t = x0 exp(m_t + s_t eps)`` in x0's dtype and ``t`` a ``(batch,)``
    tensor of that dtype; it returns the score in x (``param="score"``) or in log x (``"log_score"``).
    ``x0`` must be positive (a check read with the loss frame's, unless ``check_values=False``); ``t``, if given,
    a 0-D or ``(batch,)`` tensor in ``(t_min, t_max]``.
    """
    if not callable(model):
        raise UnsupportedInputError(METHOD, "model", type(model).__name__, "pass a callable model(x_t, t)")
    require_tensor(METHOD, "x0", x0, min_dim=1, nonempty=True, what="(batch, ...) of positive data")
    require_generator(METHOD, generator, x0, "x0")
    if check_values:
        require_positive(METHOD, "x0", x0)
    t = _times(schedule, x0, t, generator, check_values)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    shift, std = broadcast(schedule._mean_shift(t), x0), broadcast(schedule._log_std(t), x0)
    x_t = torch.exp(torch.log(x0) + shift + std * noise)
    output = require_tensor(METHOD, "model output", model(x_t, t.to(x0.dtype)))
    require_matching_shapes(METHOD, **{"model output": output, "x_t": x_t})
    log_score = output if param == "log_score" else x_t * output + 1  # the score of y = log x
    if weighting == "x2_sigma2":
        values = (std * log_score + noise).square()
    elif weighting == "none":
        values = ((log_score + noise / std) / x_t).square()
    else:
        values = (log_score + noise / std).square()
    return reduce(values.reshape(values.shape[0], -1).mean(1), reduction, METHOD)
