"""The Dale-Langevin sampler: the reverse-time GBM SDE discretised in the log domain.

"Dale meets Langevin: A Multiplicative Denoising Diffusion Model", N. Shetty, M. Prasath, C. S. Seelamantula,
2025, arXiv:2510.02730 (no official code). For the forward GBM ``dx = mu x dt + sigma(t) x dW``, ``y = log x``
follows ``dy = (mu - sigma^2/2) dt + sigma dW`` (state-independent coefficients), whose reverse-time SDE is
(Anderson 1982; Song et al. 2021)

    dy = [(mu - sigma^2 / 2) - sigma^2 grad_y log p_t(y)] dt + sigma dW_bar,
    grad_y log p_t(y) = x grad_x log p_t(x) + 1        (the change of variables x = e^y).

One step from grid time t down to s < t, with the exact increments ``m_t - m_s`` of the log-mean and
``dv = s_t^2 - s_s^2`` of the log-variance in place of ``(mu - sigma^2/2) dt`` and ``sigma^2 dt`` (identical for a
constant volatility; the integrated form is the exponential-integrator reading of Euler-Maruyama, as
gradhub-diffusion's ``euler_maruyama_sde`` uses ``sigma_i^2 - sigma_{i+1}^2``):

    y_s = y_t - (m_t - m_s) + dv grad_y log p_t(y_t) + sqrt(dv) z,        x_s = x_t exp(y_s - y_t),

a multiplicative, exponentiated-gradient update: x is multiplied by a positive factor, so no sample ever
changes sign or reaches 0, for any step size. With ``final_denoise`` (default) the last step is Tweedie's
formula in log space instead, ``log x_0 = y - m_t + s_t^2 grad_y log p_t(y)`` (no noise). The log state is
clamped to the range where ``exp`` is a normal number of x_T's dtype
(:func:`~gradhub_dale_langevin.schedule.log_range`), so the floating-point samples are strictly positive and
finite too.

Called ``gbm_sampler(model, x_T, ts, *, generator=None, schedule=..., param="score", final_denoise=True)``
under the core's frame (grid checks, counted model calls, trajectory, progress, ``SampleResult``, no_grad):
``ts`` strictly decreases inside [0, 1] (``GBMSchedule.times(n)``), ``x_T`` is positive (``GBMSchedule.prior``),
``model(x, t)`` returns the score in x (``param="score"``) or in log x (``"log_score"``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from gradhub.kinds.sampler import SamplerCall, sampler
from gradhub_dale_langevin import GBM_SAMPLER
from gradhub_dale_langevin.schedule import GBMSchedule, log_range, require_positive

__all__ = [GBM_SAMPLER.name]


def _schedule_range(values: dict[str, Any]) -> tuple[float, float]:
    return values["schedule"].t_min, values["schedule"].t_max


@sampler(GBM_SAMPLER, grid="ts", bounds=_schedule_range)
def gbm_sampler(
    call: SamplerCall, x: Tensor, t: float, s: float, *, schedule: GBMSchedule, param: str, final_denoise: bool
) -> Tensor:
    """One Dale-Langevin step from t to s: ``x <- x exp(-(m_t - m_s) + dv (x score + 1) + sqrt(dv) z)``.

    The first step checks that ``x_T`` is finite and > 0 (two host reads per call) and evaluates the schedule on
    the whole grid as host floats; the log state is kept between steps, so ``log`` is taken once per call. One
    model call per step.
    """
    memory = call.memory
    if call.index == 0:
        require_positive(
            call.method, "x_T", x, "x_T must be > 0: draw it with GBMSchedule.prior (the value shown is the smallest)"
        )
        memory["points"], memory["range"] = schedule.points(call.grid), log_range(call.dtype)
    now, then = memory["points"][call.index], memory["points"][call.index + 1]
    y = memory["y"] if memory.get("x") is x else torch.log(x)
    output = call.model(x, t)
    log_score = output if param == "log_score" else x * output + 1
    if final_denoise and call.index == call.steps - 1:
        y = y - now.m + now.v * log_score
    else:
        dv = now.v - then.v
        y = y - (now.m - then.m) + dv * log_score + math.sqrt(dv) * call.noise(y)
    y = y.clamp(*memory["range"])
    x = torch.exp(y)
    memory["x"], memory["y"] = x, y
    return x
