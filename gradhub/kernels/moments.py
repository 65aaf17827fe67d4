"""Adam's moment estimates over tensor lists: the part every Adam-family optimizer shares.

``m <- m + (1 - beta1)(g - m)`` and ``v <- beta2 v + (1 - beta2) g^2`` (Kingma & Ba, 2015,
Algorithm 1), as three ``torch._foreach_*`` calls, and the scalars that fold both bias
corrections into one step size: ``m_hat / (sqrt(v_hat) + eps)`` equals
``c * m / (sqrt(v) + c * eps) * (1 / (1 - beta1^t)) / c`` with ``c = sqrt(1 - beta2^t)``,
so a step is ``-step_size * m / (sqrt(v) + scaled_eps)`` and no tensor is bias-corrected.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from gradhub.kernels.multitensor import foreach_scalar

__all__ = ["adam_moments_", "adam_step_scalars", "addcdiv_"]


def adam_moments_(
    exp_avgs: list[Tensor], exp_avg_sqs: list[Tensor], grads: list[Tensor], beta1: float, beta2: float
) -> None:
    """Update first and second moments in place (lists on one device and dtype)."""
    if not exp_avg_sqs:
        return
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, foreach_scalar(beta2, exp_avg_sqs[0]))
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)


def adam_step_scalars(lr: float, beta1: float, beta2: float, step: Any, eps: float) -> tuple[Any, Any]:
    """``(step_size, scaled_eps)``: ``lr sqrt(1 - beta2^t) / (1 - beta1^t)`` and ``eps sqrt(1 - beta2^t)``.

    With these, Adam's update ``lr * m_hat / (sqrt(v_hat) + eps)`` is
    ``step_size * m / (sqrt(v) + scaled_eps)`` (eps added after the bias correction of v,
    as torch.optim.Adam does). ``step`` is a Python int (floats out), or under ``torch.compile``
    a 0-d tensor (0-d tensors out, no read-back).
    """
    if isinstance(step, Tensor):
        bias_correction2_sqrt_t = (1 - torch.pow(beta2, step)).sqrt()
        return lr / (1 - torch.pow(beta1, step)) * bias_correction2_sqrt_t, eps * bias_correction2_sqrt_t
    bias_correction2_sqrt = math.sqrt(1 - beta2**step)
    return lr / (1 - beta1**step) * bias_correction2_sqrt, eps * bias_correction2_sqrt


def addcdiv_(target: Tensor, numerator: Tensor, denominator: Tensor, value: Any) -> Tensor:
    """``target += value * numerator / denominator`` in place, ``value`` a number or a 0-d tensor.

    A number goes to ``Tensor.addcdiv_`` (the eager paths, bit for bit as before); a tensor (a
    step size computed from tensor step counts under ``torch.compile``) is multiplied in.
    """
    if isinstance(value, Tensor):
        return target.add_(numerator.div(denominator).mul_(value))
    return target.addcdiv_(numerator, denominator, value=value)
