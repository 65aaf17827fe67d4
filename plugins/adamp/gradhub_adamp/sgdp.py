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
nothing there.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from gradhub.kernels import group_tensors
from gradhub_adamp import SGDPHyperparameters
from gradhub_adamp.fused import fused_sgdp
from gradhub_adamp.multitensor import ProjectedStep, blocked_projected_step, foreach_projected_step
from gradhub_adamp.projection import ScaleInvariantOptimizer, project_and_step

__all__ = ["SGDP"]


def _single_tensor_sgdp(
    params: list[Tensor],
    grads: list[Tensor],
    buffers: list[Tensor],
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    eps: float,
    delta: float,
    wd_ratio: float,
    maximize: bool,
) -> None:
    """The reference path: Algorithm 1, one tensor at a time."""
    decay = lr * weight_decay / (1 - momentum)
    for param, grad, buffer in zip(params, grads, buffers):
        if maximize:
            grad = -grad
        buffer.mul_(momentum).add_(grad, alpha=1 - dampening)
        # Without Nesterov the update is the buffer itself, projected in place below.
        update = grad + momentum * buffer if nesterov else buffer
        project_and_step(param, grad, update, step_size=lr, decay=decay, delta=delta, wd_ratio=wd_ratio, eps=eps)


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
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    eps: float,
    delta: float,
    wd_ratio: float,
    maximize: bool,
) -> None:
    """The same step over lists grouped by device and dtype (see multitensor)."""
    projected = ProjectedStep(
        step_size=lr,
        decay=lr * weight_decay / (1 - momentum),
        delta=delta,
        wd_ratio=wd_ratio,
        eps=eps,
        project_in_place=not nesterov,
    )
    for (device, _), (group_params, group_grads, group_buffers) in group_tensors([params, grads, buffers]).items():
        if maximize:
            group_grads = torch._foreach_neg(group_grads)
        if device.type == "cpu":
            update_state, direction = _momentum_rule(momentum, dampening, nesterov)
            blocked_projected_step(group_params, group_grads, [group_buffers], update_state, direction, projected)
            continue
        torch._foreach_mul_(group_buffers, momentum)
        torch._foreach_add_(group_buffers, group_grads, alpha=1 - dampening)
        if nesterov:
            updates = torch._foreach_add(group_grads, group_buffers, alpha=momentum)
        else:
            updates = group_buffers
        foreach_projected_step(group_params, group_grads, updates, projected)


class SGDP(ScaleInvariantOptimizer):
    """SGDP (Heo et al., ICLR 2021), a drop-in replacement for SGD with momentum.

    Args:
        params: parameters or param groups to optimise.
        lr: learning rate (required, as in the official code).
        momentum: momentum factor, in [0, 1).
        dampening: dampening for momentum.
        weight_decay: decoupled weight decay, scaled by ``1 / (1 - momentum)``.
        nesterov: use Nesterov momentum.
        eps: added to norms in the projection.
        delta: scale-invariance threshold (projection when ``max |cos| < delta / sqrt(D)``).
        wd_ratio: weight-decay multiplier for weights detected as scale-invariant.
        foreach: use the multi-tensor path (``None``: on CPU and CUDA).
        maximize: maximise the objective instead.
        fused: use the fused CPU kernel (float32/float64; compiled at first use, see
            :mod:`gradhub_adamp.fused`); other tensors take the multi-tensor path.
    """

    method = "sgdp"
    hyperparameters = SGDPHyperparameters

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        eps: float = 1e-8,
        delta: float = 0.1,
        wd_ratio: float = 0.1,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            eps=eps,
            delta=delta,
            wd_ratio=wd_ratio,
            foreach=foreach,
            maximize=maximize,
            fused=fused,
        )
        super().__init__(params, defaults)

    state_names = ("momentum",)
    counts_steps = False
    single_tensor = staticmethod(_single_tensor_sgdp)
    multi_tensor = staticmethod(_multi_tensor_sgdp)
    fused_kernel = staticmethod(fused_sgdp)

    def _options(self, group: dict[str, Any]) -> dict[str, Any]:
        return dict(
            lr=group["lr"],
            momentum=group["momentum"],
            dampening=group["dampening"],
            weight_decay=group["weight_decay"],
            nesterov=group["nesterov"],
            eps=group["eps"],
            delta=group["delta"],
            wd_ratio=group["wd_ratio"],
            maximize=group["maximize"],
        )
