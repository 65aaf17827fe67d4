"""AdamP's and SGDP's fused CPU step: the hand-written kernel in ``csrc/projected.cpp``.

One call per (dtype, step count) group runs the whole step over every tensor of the list
on torch's threads: the scale-invariance statistics of each weight, the decision, then a
row at a time the state update, the row's projection and the weight update (two passes
over a weight's memory; three where the layer view fires). It computes what the
multi-tensor path computes, in the same order of operations per element (row sums are
accumulated in float64), and agrees with the per-tensor path to round-off.

The kernel is compiled at first use by :func:`gradhub.kernels.native.load` (a C++ compiler
and ninja; cached per machine). Without them these functions return False after one
warning, and the optimizer runs its multi-tensor path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from gradhub.kernels import adam_step_scalars, group_tensors, native
from gradhub_adamp import ADAMP, SGDP, AdamPHyperparameters, SGDPHyperparameters

__all__ = ["FUSED_BATCH_BYTES", "FUSED_GRAIN", "fused_adamp", "fused_sgdp"]

FUSED_GRAIN = 1 << 15
"""Elements per parallel task; weights up to this size are done whole by one thread (in cache)."""

FUSED_BATCH_BYTES = 8 << 20
"""Weights and gradients of large matrices per batch (statistics pass, then update pass): what a
last-level cache keeps between the two passes."""

SOURCE = Path(__file__).with_name("csrc") / "projected.cpp"


def _kernels(method: str) -> Any | None:
    return native.load("adamp_projected", [SOURCE], method=method)


def fused_adamp(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[int],
    options: AdamPHyperparameters,
) -> bool:
    """Algorithm 2 over contiguous float32/float64 CPU lists; False if the kernel is unavailable."""
    kernels = _kernels(ADAMP.name)
    if kernels is None:
        return False
    grouped = group_tensors([params, grads, exp_avgs, exp_avg_sqs], extra_keys=steps)
    for (_, _, step), (group_params, group_grads, group_exp_avgs, group_exp_avg_sqs) in grouped.items():
        lr, (beta1, beta2), eps = options.lr, options.betas, options.eps
        step_size, scaled_eps = adam_step_scalars(lr, beta1, beta2, step, eps)
        kernels.adamp_(
            group_params,
            group_grads,
            group_exp_avgs,
            group_exp_avg_sqs,
            beta1,
            beta2,
            scaled_eps,
            step_size,
            lr * options.weight_decay,
            options.delta,
            options.wd_ratio,
            eps,
            options.nesterov,
            options.maximize,
            FUSED_GRAIN,
            FUSED_BATCH_BYTES,
        )
    return True


def fused_sgdp(
    params: list[Tensor],
    grads: list[Tensor],
    buffers: list[Tensor],
    options: SGDPHyperparameters,
) -> bool:
    """Algorithm 1 over contiguous float32/float64 CPU lists; False if the kernel is unavailable."""
    kernels = _kernels(SGDP.name)
    lr, momentum = options.lr, options.momentum
    if kernels is None:
        return False
    for _, (group_params, group_grads, group_buffers) in group_tensors([params, grads, buffers]).items():
        kernels.sgdp_(
            group_params,
            group_grads,
            group_buffers,
            momentum,
            options.dampening,
            lr,
            lr * options.weight_decay / (1 - momentum),
            options.delta,
            options.wd_ratio,
            options.eps,
            options.nesterov,
            options.maximize,
            FUSED_GRAIN,
            FUSED_BATCH_BYTES,
        )
    return True
