"""diffGrad: Adam with a per-element friction coefficient from the change of the gradient.

Paper: Dubey, Chakraborty, Roy, Mukherjee, Singh, Chaudhuri, "diffGrad: An Optimization
Method for Convolutional Neural Networks", IEEE TNNLS 31(11), 2020, arXiv 1909.11015
(Section III; the equation numbers of the published version were not checked here,
so the lines below name the steps instead). Official code: https://github.com/shivram1987/diffGrad
(``diffGrad_v2.py``, the fixed version).

For each parameter tensor, elementwise (state ``step``, ``exp_avg`` = m, ``exp_avg_sq`` = v,
``previous_grad`` = g_prev, all zero at first):

* ``g = grad + weight_decay * param`` (coupled L2, as in the official code);
* ``m = beta1 m + (1 - beta1) g``, ``v = beta2 v + (1 - beta2) g^2`` (Adam's moments);
* friction ``xi = sigmoid(|g_prev - g|)`` in [0.5, 1) (the "diffGrad friction
  coefficient", DFC); at the first step ``g_prev = 0``, so ``xi = sigmoid(|g|)``;
* ``g_prev <- g`` (a copy: the decayed gradient, as in the official code);
* ``param -= lr * sqrt(1 - beta2^t) / (1 - beta1^t) * xi * m / (sqrt(v) + eps)`` (the update).

Readings settled from the official code (and what differs from it):

* ``eps`` is added to ``sqrt(v)`` before the bias correction of v is folded into the step
  size (official code, torch.optim.Adam's form). The paper writes
  ``m_hat / (sqrt(v_hat) + eps)``, i.e. eps scaled by ``1 / sqrt(1 - beta2^t)``; only eps's
  effective size differs. One form only is offered.
* ``g_prev`` is a copy of the gradient. The original ``diffGrad.py`` stored the gradient
  tensor itself, which autograd then overwrote in place, so ``|g_prev - g| = 0`` and
  ``xi = 0.5`` always: Adam with half the learning rate. ``diffGrad_v2.py`` fixes it
  with ``grad.clone()``; here the copy goes into the state tensor in place.
* The official code (and torch-optimizer) add the weight decay to ``p.grad`` in place; here
  ``p.grad`` is left as autograd made it (the decayed gradient is a temporary).
* No AMSGrad variant: the official docstring mentions one, the code has none.

Matches ``torch_optimizer.DiffGrad`` 0.3.0 to float64 round-off (same state keys, int
``step`` per parameter). Additions: ``foreach`` (the multi-tensor path; ``None`` picks it on
CPU and CUDA) and ``fused`` (a hand-written CPU kernel, off by default). No path
synchronises with the device. State is kept in the parameter's dtype, as in the
official code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gradhub.kernels import (
    CACHE_BLOCK_BYTES,
    adam_moments_,
    adam_step_scalars,
    addcdiv_,
    cache_blocks,
    foreach_add_scalar_,
    foreach_copy_,
    group_tensors,
    host_formulation,
    native,
)
from gradhub.kinds.optimizer import ElementwiseOptimizer
from gradhub_diffgrad import DIFFGRAD, DiffGradHyperparameters

__all__ = ["DiffGrad"]


def _step_size(lr: float, beta1: float, beta2: float, step: Any) -> Any:
    """``lr * sqrt(1 - beta2^t) / (1 - beta1^t)``: both bias corrections folded into one scalar."""
    return adam_step_scalars(lr, beta1, beta2, step, 0.0)[0]


def _single_tensor_diffgrad(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    previous_grads: list[Tensor],
    steps: list[Any],
    options: DiffGradHyperparameters,
) -> None:
    """The reference path, one tensor at a time (under ``torch.compile``: with 0-d tensor step counts)."""
    lr, (beta1, beta2), eps, weight_decay = options.lr, options.betas, options.eps, options.weight_decay
    for param, grad, exp_avg, exp_avg_sq, previous_grad, step in zip(
        params, grads, exp_avgs, exp_avg_sqs, previous_grads, steps
    ):
        if weight_decay != 0:
            grad = grad.add(param, alpha=weight_decay)
        exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        friction = torch.sub(previous_grad, grad).abs_().sigmoid_()  # the friction coefficient (DFC)
        previous_grad.copy_(grad)  # a copy, never an alias of p.grad (the v1 bug)
        denom = exp_avg_sq.sqrt().add_(eps)
        addcdiv_(param, friction.mul_(exp_avg), denom, -_step_size(lr, beta1, beta2, step))


def _multi_tensor_diffgrad(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    previous_grads: list[Tensor],
    steps: list[int],
    options: DiffGradHyperparameters,
) -> None:
    """The same step over lists grouped by device, dtype and step count (torch._foreach_* ops).

    On a CPU the lists are walked in cache-sized blocks (:func:`gradhub.kernels.cache_blocks`):
    the dozen foreach ops of a step then reread each block from cache instead of memory. The
    previous-gradient buffer doubles as scratch for the friction, so the only temporary is
    the denominator of one block.
    """
    lr, (beta1, beta2), eps, weight_decay = options.lr, options.betas, options.eps, options.weight_decay
    grouped = group_tensors([params, grads, exp_avgs, exp_avg_sqs, previous_grads], extra_keys=steps)
    for (device, dtype, step), lists in grouped.items():
        step_size = -_step_size(lr, beta1, beta2, step)
        if host_formulation(device):
            blocks = cache_blocks(lists, CACHE_BLOCK_BYTES // dtype.itemsize)
        else:
            blocks = iter([lists])
        for block_params, block_grads, block_exp_avgs, block_exp_avg_sqs, block_previous in blocks:
            if weight_decay != 0:
                block_grads = torch._foreach_add(block_grads, block_params, alpha=weight_decay)
            adam_moments_(block_exp_avgs, block_exp_avg_sqs, block_grads, beta1, beta2)
            # previous <- sigmoid(|previous - g|) * m: the friction coefficient (DFC) times m, in place.
            torch._foreach_sub_(block_previous, block_grads)
            torch._foreach_abs_(block_previous)
            torch._foreach_sigmoid_(block_previous)
            torch._foreach_mul_(block_previous, block_exp_avgs)
            denoms = torch._foreach_sqrt(block_exp_avg_sqs)
            foreach_add_scalar_(denoms, eps)
            torch._foreach_addcdiv_(block_params, block_previous, denoms, value=step_size)
            foreach_copy_(block_previous, block_grads)  # a copy, never an alias of p.grad (the v1 bug)


SOURCE = Path(__file__).with_name("csrc") / "diffgrad.cpp"


def fused_diffgrad(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    previous_grads: list[Tensor],
    steps: list[int],
    options: DiffGradHyperparameters,
) -> bool:
    """The step as one pass over memory (``csrc/diffgrad.cpp``): read w, g, m, v, g_prev, write w, m, v, g_prev.

    Contiguous float32/float64 CPU lists only (the optimizer sends the rest to the
    multi-tensor path). The kernel is compiled at first use by
    :func:`gradhub.kernels.native.load`; returns False (after one warning) where it cannot
    be, and the optimizer then runs the multi-tensor path. float32's sigmoid uses the
    kernel header's vectorised ``exp`` (within 2 ulp), so float32 results differ from the
    other paths by round-off; float64 uses ``std::exp``.
    """
    kernels = native.load(DIFFGRAD.name, [SOURCE], method=DIFFGRAD.name)
    if kernels is None:
        return False
    lr, (beta1, beta2), eps, weight_decay = options.lr, options.betas, options.eps, options.weight_decay
    grouped = group_tensors([params, grads, exp_avgs, exp_avg_sqs, previous_grads], extra_keys=steps)
    for (_, _, step), lists in grouped.items():
        kernels.diffgrad_(*lists, beta1, beta2, eps, weight_decay, _step_size(lr, beta1, beta2, step))
    return True


class DiffGrad(ElementwiseOptimizer):
    """diffGrad (Dubey et al., IEEE TNNLS 2020, Section III), a drop-in replacement for Adam.

    ``DiffGrad(params, lr, betas, eps, weight_decay, *, foreach, fused)``: the official
    ``diffGrad_v2.py`` signature; its defaults and bounds are written once, in
    :class:`~gradhub_diffgrad.DiffGradHyperparameters` (listed below). ``weight_decay`` is the coupled L2
    coefficient (added to the gradient before everything else); ``fused=True`` runs the
    hand-written CPU kernel (float32/float64; compiled at first use, see :func:`fused_diffgrad`),
    other tensors take the multi-tensor path.
    """

    spec = DIFFGRAD
    state_names = ("exp_avg", "exp_avg_sq", "previous_grad")
    single_tensor = staticmethod(_single_tensor_diffgrad)
    multi_tensor = staticmethod(_multi_tensor_diffgrad)
    fused_kernel = staticmethod(fused_diffgrad)
