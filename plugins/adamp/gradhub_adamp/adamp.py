"""AdamP: Adam without the radial component of updates to scale-invariant weights.

Paper: Heo, Chun, Oh, Han, Yun, Kim, Uh, Ha, "AdamP: Slowing Down the Slowdown for
Momentum Optimizers on Scale-invariant Weights", ICLR 2021, arXiv 2006.08217
(Algorithm 2). Official code: https://github.com/clovaai/AdamP (PyPI ``adamp`` 0.3.0).

Matches the official code (same signature, defaults, state keys ``step``,
``exp_avg``, ``exp_avg_sq``, per-parameter step counts) to float64 round-off. Choices
where the official code is silent or differs from peers:

* ``eps`` is added after bias-correcting the second moment, as in the official code and
  ``torch.optim.Adam`` (pytorch_optimizer adds it before).
* Nesterov divides both momentum terms by the denominator, as the official code does
  (pytorch_optimizer divides only the gradient term).
* Weight decay is decoupled (``w *= 1 - lr * weight_decay * f``, ``f = wd_ratio`` for
  projected weights), applied before the step with the undecayed weight's projection.
* A weight whose gradient is exactly zero passes the scale-invariance test (its cosine
  is 0), so it gets ``wd_ratio`` decay, as in the official code; a warning says so when a
  weight starts with an all-zero gradient (checked once, when its state is created).

Additions: ``foreach`` (the multi-tensor path; ``None`` picks it on CPU and CUDA),
``fused`` (a hand-written CPU kernel, off by default) and ``maximize`` (off). On CUDA a
step never synchronises with the device; the CPU multi-tensor path reads one small
tensor of decisions back per step, which costs nothing there. Under FSDP2 (DTensor
shards of dim 0) the multi-tensor path steps each process's rows and all-reduces five
sums per weight in one collective per step (:func:`~gradhub_adamp.multitensor.sharded_projected_step`);
the per-tensor path does the same with one collective per weight; the fused kernel takes
no DTensor shards (they take the multi-tensor path).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from gradhub.kernels import adam_moments_, adam_step_scalars, group_tensors, host_formulation, is_plain, local_shard
from gradhub_adamp import ADAMP, AdamPHyperparameters
from gradhub_adamp.fused import fused_adamp
from gradhub_adamp.multitensor import (
    ProjectedStep,
    blocked_projected_step,
    foreach_projected_step,
    sharded_projected_step,
)
from gradhub_adamp.projection import ScaleInvariantOptimizer, project_and_step

__all__ = ["AdamP"]


def _single_tensor_adamp(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[Any],
    options: AdamPHyperparameters,
) -> None:
    """The reference path: Algorithm 2, one tensor at a time (under torch.compile: 0-d tensor step counts)."""
    lr, (beta1, beta2), eps, weight_decay = options.lr, options.betas, options.eps, options.weight_decay
    delta, wd_ratio, nesterov, maximize = options.delta, options.wd_ratio, options.nesterov, options.maximize
    for param, grad, exp_avg, exp_avg_sq, step in zip(params, grads, exp_avgs, exp_avg_sqs, steps):
        if maximize:
            grad = -grad
        exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction1 = 1 - beta1**step  # a 0-d tensor under torch.compile (tensor step counts)
        bias_correction2 = 1 - beta2**step
        root = bias_correction2.sqrt() if isinstance(bias_correction2, Tensor) else math.sqrt(bias_correction2)
        denom = (exp_avg_sq.sqrt() / root).add_(eps)
        if nesterov:
            update = (beta1 * exp_avg + (1 - beta1) * grad) / denom
        else:
            update = exp_avg / denom
        project_and_step(
            param,
            grad,
            update,
            step_size=lr / bias_correction1,
            decay=lr * weight_decay,
            delta=delta,
            wd_ratio=wd_ratio,
            eps=eps,
            method=ADAMP.name,
        )


def _adam_rule(beta1: float, beta2: float, scaled_eps: float, nesterov: bool) -> tuple[Any, Any]:
    """Adam's state update and (bias-corrected up to a constant) direction, on tensors."""

    def update_state(grad: Tensor, state: list[Tensor]) -> None:
        exp_avg, exp_avg_sq = state
        adam_moments_([exp_avg], [exp_avg_sq], [grad], beta1, beta2)

    def direction(grad: Tensor, state: list[Tensor]) -> Tensor:
        exp_avg, exp_avg_sq = state
        denom = exp_avg_sq.sqrt().add_(scaled_eps)
        numerator = torch.lerp(grad, exp_avg, beta1) if nesterov else exp_avg
        return torch.div(numerator, denom, out=denom)

    return update_state, direction


def _multi_tensor_adamp(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[int],
    options: AdamPHyperparameters,
) -> None:
    """The same step over lists grouped by device, dtype and step count (see multitensor)."""
    lr, (beta1, beta2), eps, nesterov = options.lr, options.betas, options.eps, options.nesterov
    grouped = group_tensors([params, grads, exp_avgs, exp_avg_sqs], extra_keys=steps)
    for (device, _, step), (group_params, group_grads, group_exp_avgs, group_exp_avg_sqs) in grouped.items():
        sharded = not all(is_plain(param) for param in group_params)  # FSDP2: DTensor shards
        if sharded:
            group_grads = [local_shard(grad) for grad in group_grads]
        if options.maximize:
            group_grads = torch._foreach_neg(group_grads)
        step_size, scaled_eps = adam_step_scalars(lr, beta1, beta2, step, eps)
        projected = ProjectedStep(
            step_size=step_size,
            decay=lr * options.weight_decay,
            delta=options.delta,
            wd_ratio=options.wd_ratio,
            eps=eps,
            project_in_place=False,
            method=ADAMP.name,
        )
        if sharded or host_formulation(device):
            update_state, direction = _adam_rule(beta1, beta2, scaled_eps, nesterov)
            strategy = sharded_projected_step if sharded else blocked_projected_step
            strategy(group_params, group_grads, [group_exp_avgs, group_exp_avg_sqs], update_state, direction, projected)
            continue
        adam_moments_(group_exp_avgs, group_exp_avg_sqs, group_grads, beta1, beta2)
        denoms = torch._foreach_sqrt(group_exp_avg_sqs)
        torch._foreach_add_(denoms, scaled_eps)
        if nesterov:
            updates = torch._foreach_lerp(group_grads, group_exp_avgs, beta1)
            torch._foreach_div_(updates, denoms)
        else:
            updates = torch._foreach_div(group_exp_avgs, denoms)
        del denoms
        foreach_projected_step(group_params, group_grads, updates, projected)


class AdamP(ScaleInvariantOptimizer):
    """AdamP (Heo et al., ICLR 2021, Algorithm 2), a drop-in replacement for Adam/AdamW.

    ``AdamP(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, delta=0.1,
    wd_ratio=0.1, nesterov=False, *, foreach=None, maximize=False, fused=None)``: the official
    signature and defaults, written once in :class:`~gradhub_adamp.AdamPHyperparameters`.
    ``fused=True`` runs the hand-written CPU kernel (float32/float64; compiled at first use, see
    :mod:`gradhub_adamp.fused`); other tensors take the multi-tensor path.
    """

    spec = ADAMP
    state_names = ("exp_avg", "exp_avg_sq")
    single_tensor = staticmethod(_single_tensor_adamp)
    multi_tensor = staticmethod(_multi_tensor_adamp)
    fused_kernel = staticmethod(fused_adamp)
