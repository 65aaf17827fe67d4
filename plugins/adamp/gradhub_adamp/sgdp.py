"""SGDP: SGD with momentum without the radial component of updates to scale-invariant weights.

Paper: Heo, Chun, Oh, Han, Yun, Kim, Uh, Ha, "AdamP: Slowing Down the Slowdown for
Momentum Optimizers on Scale-invariant Weights", ICLR 2021, arXiv 2006.08217
(Algorithm 1). Official code: https://github.com/clovaai/AdamP (PyPI ``adamp`` 0.3.0).

Matches the official code (signature with a required ``lr``, defaults, state key
``momentum``) to float64 round-off, including three details peers differ on:

* the momentum buffer starts at zero and always takes ``(1 - dampening) * grad``, also on
  the first step (``torch.optim.SGD`` sets it to ``grad`` on the first step; the two agree
  when ``dampening == 0``);
* without Nesterov the update is the momentum buffer itself, and the official code
  projects it *in place*, so the buffer keeps the projected direction (pytorch_optimizer
  projects a copy and diverges from the official code whenever the projection fires);
* decoupled weight decay is scaled by ``1 / (1 - momentum)``, which mimics the
  steady-state amplification that coupled L2 decay gets from momentum.

Additions, both off by default: ``foreach`` (the multi-tensor path; ``None`` picks it on
CPU and CUDA) and ``maximize``. On CUDA a step never synchronises with the device; the
CPU multi-tensor path reads one small tensor of decisions back per step, which costs
nothing there. Under FSDP2 (DTensor shards of dim 0) each process steps its rows and the
decision's sums are all-reduced, as for AdamP.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from gradhub.kernels import group_tensors, host_formulation, is_plain, local_shard
from gradhub_adamp import SGDP as SGDP_SPEC
from gradhub_adamp import SGDPHyperparameters
from gradhub_adamp.fused import fused_sgdp
from gradhub_adamp.multitensor import (
    ProjectedStep,
    blocked_projected_step,
    foreach_projected_step,
    sharded_projected_step,
)
from gradhub_adamp.projection import ScaleInvariantOptimizer, project_and_step

__all__ = ["SGDP"]


def _single_tensor_sgdp(
    params: list[Tensor],
    grads: list[Tensor],
    buffers: list[Tensor],
    options: SGDPHyperparameters,
) -> None:
    """The reference path: Algorithm 1, one tensor at a time."""
    lr, momentum, dampening, nesterov = options.lr, options.momentum, options.dampening, options.nesterov
    eps, delta, wd_ratio, maximize = options.eps, options.delta, options.wd_ratio, options.maximize
    decay = lr * options.weight_decay / (1 - momentum)
    for param, grad, buffer in zip(params, grads, buffers):
        if maximize:
            grad = -grad
        buffer.mul_(momentum).add_(grad, alpha=1 - dampening)
        # Without Nesterov the update is the buffer itself, projected in place below.
        update = grad + momentum * buffer if nesterov else buffer
        project_and_step(
            param,
            grad,
            update,
            step_size=lr,
            decay=decay,
            delta=delta,
            wd_ratio=wd_ratio,
            eps=eps,
            method=SGDP_SPEC.name,
        )


def _momentum_rule(momentum: float, dampening: float, nesterov: bool) -> tuple[Any, Any]:
    """SGD momentum's buffer update and direction, on tensors."""

    def update_state(grad: Tensor, state: list[Tensor]) -> None:
        state[0].mul_(momentum).add_(grad, alpha=1 - dampening)

    def direction(grad: Tensor, state: list[Tensor]) -> Tensor:
        return torch.add(grad, state[0], alpha=momentum) if nesterov else state[0]

    return update_state, direction


def _multi_tensor_sgdp(
    params: list[Tensor],
    grads: list[Tensor],
    buffers: list[Tensor],
    options: SGDPHyperparameters,
) -> None:
    """The same step over lists grouped by device and dtype (see multitensor)."""
    momentum, dampening, nesterov = options.momentum, options.dampening, options.nesterov
    projected = ProjectedStep(
        step_size=options.lr,
        decay=options.lr * options.weight_decay / (1 - momentum),
        delta=options.delta,
        wd_ratio=options.wd_ratio,
        eps=options.eps,
        project_in_place=not nesterov,
        method=SGDP_SPEC.name,
    )
    for (device, _), (group_params, group_grads, group_buffers) in group_tensors([params, grads, buffers]).items():
        sharded = not all(is_plain(param) for param in group_params)  # FSDP2: DTensor shards
        if sharded:
            group_grads = [local_shard(grad) for grad in group_grads]
        if options.maximize:
            group_grads = torch._foreach_neg(group_grads)
        if sharded or host_formulation(device):
            update_state, direction = _momentum_rule(momentum, dampening, nesterov)
            strategy = sharded_projected_step if sharded else blocked_projected_step
            strategy(group_params, group_grads, [group_buffers], update_state, direction, projected)
            continue
        torch._foreach_mul_(group_buffers, momentum)
        torch._foreach_add_(group_buffers, group_grads, alpha=1 - dampening)
        if nesterov:
            updates = torch._foreach_add(group_grads, group_buffers, alpha=momentum)
        else:
            updates = group_buffers
        foreach_projected_step(group_params, group_grads, updates, projected)


class SGDP(ScaleInvariantOptimizer):
    """SGDP (Heo et al., ICLR 2021, Algorithm 1), a drop-in replacement for SGD with momentum.

    ``SGDP(params, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False, eps=1e-8,
    delta=0.1, wd_ratio=0.1, *, foreach=None, maximize=False, fused=None)``: the official
    signature (``lr`` required) and defaults, written once in
    :class:`~gradhub_adamp.SGDPHyperparameters`. Weight decay is decoupled and scaled by
    ``1 / (1 - momentum)``, as in the official code.
    """

    spec = SGDP_SPEC
    state_names = ("momentum",)
    counts_steps = False
    single_tensor = staticmethod(_single_tensor_sgdp)
    multi_tensor = staticmethod(_multi_tensor_sgdp)
    fused_kernel = staticmethod(fused_sgdp)
