"""The M-FAC optimizer: SGD preconditioned by a sliding-window inverse empirical Fisher.

Paper: Elias Frantar, Eldar Kurtic, Dan Alistarh, "M-FAC: Efficient Matrix-Free
Approximations of Second-Order Information", NeurIPS 2021, arXiv 2107.03356 (§4, the
dynamic algorithm; §5.2 optimization). Official code: https://github.com/IST-DASLab/M-FAC
(``optim.py``: ``MFAC``, ``HInvFastUpMulti``).

One step (official ``MFAC.step``)::

    g   = grad + weight_decay * p                     (coupled L2 decay, all parameters)
    G[oldest] = g                                      (ring buffer of ngrads rows, zeros at start)
    u   = F^{-1} g,  F = damp*I + G^T G / ngrads      (Woodbury, see gradhub_mfac.ihvp)
    v   = momentum * v + (1 - momentum) * u;  u = v   (only if momentum > 0)
    p  -= lr * u

Per step: two products over the window (``G g`` and ``G^T z``, O(d m)) and a Cholesky
factorisation of one m x m float64 matrix (O(m^3)), with no loop over the m gradients.

What differs from the official code:

* State lives where gradhub needs it: each parameter's slice of the window
  (``gradient_window``, ngrads x numel) and ``momentum_buffer`` in ``self.state[p]``; the
  m x m Gram matrix ``G G^T`` (float64) and the ring position in
  ``self.state["mfac group <i>"]``, so ``state_dict`` round-trips exactly (the official
  optimizer keeps all of it outside ``state`` and cannot resume).
* Each param group has its own window (a block-diagonal Fisher across groups), so groups
  behave like separate optimizers; with one group (the usual case) this is the official
  algorithm. ``ngrads``, ``damp``, ``momentum``, ``weight_decay`` may differ per group.
* ``moddev``/``optdev``/``gpus`` (placing the window on other devices, sharding it across
  GPUs) are not offered: state lives on each parameter's device.
* A parameter whose ``.grad`` is None is not updated; its slice of the newest window row
  is zero (as if its gradient were zero), so ``G G^T`` stays consistent.
* ``sparse=True`` masks gradients with the weights that are nonzero at construction
  (state key ``mask``); the update is then zero off the mask, as in the official code, but
  the window keeps all coordinates (the official code compresses them: less memory).
* ``step(closure)`` evaluates the closure first (the official code raises).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from gradhub.kernels import group_tensors
from gradhub.kinds.optimizer import Optimizer
from gradhub_mfac import MFAC as MFAC_SPEC
from gradhub_mfac import MFACHyperparameters
from gradhub_mfac.ihvp import woodbury_solve

__all__ = ["MFAC", "mfac_multi_tensor", "mfac_single_tensor"]


def _solve(gram: Tensor, products: Tensor, slot: int, ngrads: int, damp: float) -> Tensor:
    gram[slot, :] = products
    gram[:, slot] = products
    return woodbury_solve(gram, products, ngrads, damp)


def mfac_single_tensor(
    params: list[Tensor],
    grads: list[Tensor],
    windows: list[Tensor],
    momentum_buffers: list[Tensor | None],
    masks: list[Tensor | None],
    gram: Tensor,
    slot: int,
    options: MFACHyperparameters,
) -> None:
    """One M-FAC step, tensor by tensor; ``gram`` (float64, ngrads x ngrads) is updated in place."""
    lr, momentum, weight_decay, damp = options.lr, options.momentum, options.weight_decay, options.damp
    directions = []
    products = torch.zeros(options.ngrads, dtype=torch.float64, device=gram.device)
    for param, grad, window, mask in zip(params, grads, windows, masks):
        direction = grad + weight_decay * param if weight_decay != 0 else grad.clone()
        if mask is not None:
            direction = direction * mask
        window[slot] = direction.reshape(-1)
        products += (window @ direction.reshape(-1)).to(gram.device, torch.float64)
        directions.append(direction)
    coefficients = _solve(gram, products, slot, options.ngrads, damp)
    for param, direction, window, buffer in zip(params, directions, windows, momentum_buffers):
        update = (direction - (coefficients.to(window) @ window).view_as(param)) / damp
        if buffer is not None:
            buffer.mul_(momentum).add_(update, alpha=1 - momentum)
            update = buffer
        param.add_(update, alpha=-lr)


def mfac_multi_tensor(
    params: list[Tensor],
    grads: list[Tensor],
    windows: list[Tensor],
    momentum_buffers: list[Tensor | None],
    masks: list[Tensor | None],
    gram: Tensor,
    slot: int,
    options: MFACHyperparameters,
) -> None:
    """One M-FAC step with the elementwise work done by ``torch._foreach_*`` per device and dtype.

    The window products stay one matrix-vector product per tensor (torch has no foreach
    matmul); the same arithmetic as :func:`mfac_single_tensor`, so the two agree exactly.
    """
    momentum, weight_decay, damp = options.momentum, options.weight_decay, options.damp
    grouped = group_tensors([params, grads, windows, momentum_buffers, masks])
    products = torch.zeros(options.ngrads, dtype=torch.float64, device=gram.device)
    per_group = []
    for group_params, group_grads, group_windows, group_buffers, group_masks in grouped.values():
        if weight_decay != 0:
            directions = torch._foreach_add(group_grads, group_params, alpha=weight_decay)
        else:
            directions = [grad.clone() for grad in group_grads]
        masked = [index for index, mask in enumerate(group_masks) if mask is not None]
        if masked:
            torch._foreach_mul_([directions[i] for i in masked], [group_masks[i] for i in masked])
        for window, direction in zip(group_windows, directions):
            window[slot] = direction.reshape(-1)
            products += (window @ direction.reshape(-1)).to(gram.device, torch.float64)
        per_group.append((group_params, group_windows, group_buffers, directions))
    coefficients = _solve(gram, products, slot, options.ngrads, damp)
    for group_params, group_windows, group_buffers, directions in per_group:
        corrections = [
            (coefficients.to(window) @ window).view_as(param) for param, window in zip(group_params, group_windows)
        ]
        updates = torch._foreach_sub(directions, corrections)
        torch._foreach_div_(updates, damp)
        if momentum > 0:
            buffers = [buffer for buffer in group_buffers if buffer is not None]
            torch._foreach_mul_(buffers, momentum)
            torch._foreach_add_(buffers, updates, alpha=1 - momentum)
            updates = buffers
        torch._foreach_add_(group_params, updates, alpha=-options.lr)


class MFAC(Optimizer):
    """M-FAC (Frantar, Kurtic, Alistarh, NeurIPS 2021, §4 and §5.2): inverse-Fisher preconditioned SGD.

    The official ``optim.MFAC`` signature and defaults (without ``moddev``/``optdev``/``gpus``),
    written once in :class:`~gradhub_mfac.MFACHyperparameters`. Each param group has its own
    gradient window; ``weight_decay`` is coupled L2 decay added to the gradient before
    preconditioning; ``momentum`` has dampening ``1 - momentum``; ``sparse=True`` masks updates
    with the weights that are nonzero at construction.
    """

    spec = MFAC_SPEC

    def __init__(self, params: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(params, *args, **kwargs)
        for group in self.param_groups:
            if self.options(group).sparse:
                for param in group["params"]:
                    self.state[param]["mask"] = (param.detach() != 0).to(param.dtype)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = self.evaluate_closure(closure)
        with_gradients = self.parameters_with_gradients()
        options = [self.options(group) for group in self.param_groups]  # validated before anything changes
        for index, (group, params, group_options) in enumerate(zip(self.param_groups, with_gradients, options)):
            if not params:
                continue
            ngrads = group_options.ngrads
            group_state = self.state[f"mfac group {index}"]
            if "gram" not in group_state:
                group_state["gram"] = torch.zeros(ngrads, ngrads, dtype=torch.float64, device=params[0].device)
                group_state["step"] = 0
            slot = group_state["step"] % ngrads
            for param in group["params"]:
                if param.grad is None and "gradient_window" in self.state.get(param, {}):
                    self.state[param]["gradient_window"][slot] = 0
            windows, buffers, masks = [], [], []
            for param in params:
                state = self.state[param]
                if "gradient_window" not in state:
                    state["gradient_window"] = torch.zeros(
                        ngrads, param.numel(), dtype=param.dtype, device=param.device
                    )
                    if group_options.momentum > 0:
                        state["momentum_buffer"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                windows.append(state["gradient_window"])
                buffers.append(state.get("momentum_buffer"))
                masks.append(state.get("mask"))
            step = mfac_multi_tensor if self.use_foreach(group, params) else mfac_single_tensor
            step(
                params,
                [param.grad for param in params],
                windows,
                buffers,
                masks,
                group_state["gram"],
                slot,
                group_options,
            )
            group_state["step"] += 1
        return loss
