"""The GPOMDP surrogate loss: a scalar whose gradient is the GPOMDP policy-gradient estimate.

Paper: Fatkhullin, Barakat, Kireeva, He, ICML 2023, arXiv 2302.01734 (Eq. (3), the GPOMDP
estimator of Baxter and Bartlett, 2001). No official code.

For ONE trajectory of horizon H (the paper's estimator uses one trajectory per query),

    L_sur = -sum_h log pi(a_h | s_h) * sum_{h' >= h} gamma^{h'} (r_{h'} - b_{h'}),
    logp  = sum_h log pi(a_h | s_h),

so grad L_sur = -g(tau, theta) (the optimizers minimise) and ``logp`` is what (N-)HARPG
needs for the score-function part of its Hessian estimate. Rewards and the optional
baseline are treated as constants (detached). Truncation at H is the caller's choice.

Not registered as a gradhub ``loss``: it returns a pair ``(L_sur, logp)`` and its value is
not the objective, which the loss kind's checks (a scalar loss, gradcheck) do not describe.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradhub.errors import HyperparameterError, UnsupportedInputError

__all__ = ["discounted_rewards_to_go", "gpomdp_surrogate"]

METHOD = "gpomdp_surrogate"


def discounted_rewards_to_go(rewards: Tensor, gamma: float) -> Tensor:
    """sum_{h' >= h} gamma^{h'} r_{h'} along the last dimension (a reversed cumulative sum)."""
    horizon = rewards.shape[-1]
    discounts = gamma ** torch.arange(horizon, device=rewards.device, dtype=rewards.dtype)
    return (rewards * discounts).flip(-1).cumsum(-1).flip(-1)


def gpomdp_surrogate(
    log_probs: Tensor, rewards: Tensor, gamma: float, baseline: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """``(L_sur, logp)`` for one trajectory: ``log_probs[H]``, ``rewards[H]``.

    One trajectory only: averaging ``logp`` over a batch would make (N-)HARPG's Hessian
    estimate (mean g)(mean grad logp)^T instead of mean(g grad logp^T), which is biased.

    ``baseline`` (broadcastable to ``rewards``) is subtracted from the rewards before
    discounting; a state-dependent baseline keeps the gradient unbiased.
    """
    if not isinstance(gamma, int | float) or isinstance(gamma, bool) or not 0.0 <= gamma <= 1.0:
        raise HyperparameterError(METHOD, "gamma", gamma, "a finite number >= 0 and <= 1")
    if not isinstance(log_probs, Tensor) or not isinstance(rewards, Tensor):
        raise UnsupportedInputError(METHOD, "inputs", "non-tensor", "log_probs and rewards must be tensors")
    if log_probs.dim() != 1 or log_probs.shape != rewards.shape:
        raise UnsupportedInputError(
            METHOD,
            "shapes",
            f"log_probs {tuple(log_probs.shape)}, rewards {tuple(rewards.shape)}",
            "log_probs and rewards must both have shape [H] (one trajectory)",
        )
    if not log_probs.is_floating_point() or not rewards.is_floating_point():
        raise UnsupportedInputError(
            METHOD, "dtypes", f"log_probs {log_probs.dtype}, rewards {rewards.dtype}", "both must be floating point"
        )
    if log_probs.device != rewards.device:
        raise UnsupportedInputError(
            METHOD, "devices", f"log_probs on {log_probs.device}, rewards on {rewards.device}", "put both on one device"
        )
    returns = rewards.detach()
    if baseline is not None:
        returns = returns - baseline.detach()
    to_go = discounted_rewards_to_go(returns, float(gamma)).to(log_probs.dtype)
    surrogate = -(log_probs * to_go).sum()
    logp = log_probs.sum()
    return surrogate, logp
