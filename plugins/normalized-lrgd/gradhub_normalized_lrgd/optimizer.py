"""Normalized LR+GD: gradient descent with the step size ``lr / f(w)``.

Paper: Alexander Tyurin, "From Logistic Regression to the Perceptron Algorithm: Exploring
Gradient Descent with Large Step Sizes", AAAI 2025, arXiv 2412.08424 (Normalized LR+GD,
the method proposed in its third part). No official code was published.

The update, for a closure that returns the full-batch loss ``f(w)`` (the mean logistic
loss in the paper) with gradients populated, is

    w <- w - lr * grad f(w) / (f(w) + eps)          (normalize="loss", the paper's method)
    w <- w - lr * grad f(w) / (||grad f(w)|| + eps)  (normalize="grad_norm", for comparison)

Reading chosen: the paper's abstract names the method only; we read its step as
``gamma grad f / f``, i.e. LR+GD with the adaptive step ``gamma / f(w_t)``.
For the logistic loss, ``grad f / f`` is a softmax-like weighted mean of ``-y_i x_i`` that
concentrates on the worst-classified points once margins are large, so its length stays
below ``max_i ||x_i||``: a "soft" batch perceptron step whose effective step grows as the
loss falls. ``||grad f(w)||`` is the norm over every parameter of the optimizer (all param
groups): the gradient of one function ``f``.

What differs from a plain formula: the normaliser is clamped below by the smallest
positive normal number of the parameter dtype, so an underflowed ``f = 0`` (float32, huge
margins) gives a zero step (its gradient has underflowed too) instead of NaN. The loss
must be positive (a logistic or exponential-type loss); only its finiteness is checked (below).

Under DistributedDataParallel the closure's loss is the rank's shard loss; with
``reduce_loss`` (on by default when ``torch.distributed`` is initialized) it is averaged
over the process group (one all-reduce of a scalar per step), so every rank divides by
the global loss. ``normalize="grad_norm"`` needs no reduction under DDP (the gradients are
already averaged); under FSDP2 the gradients are DTensor shards, and the squared sums of
DTensors are reduced across the mesh by DTensor itself, so the norm is the full gradient's
(both checked against one process, ``tests/test_distributed.py``).

The step needs only one scalar from the closure (the loss, or the squared gradient norm
summed over tensors) and is otherwise elementwise. A non-finite loss or gradient raises
:class:`~gradhub.errors.UnsupportedInputError` before any parameter changes (checked in both
``normalize`` modes; one host read per step, the loss and the count of non-finite gradient
entries together). It raises rather than skipping the step: the closure is the deterministic
full-batch loss, so a skipped step leaves ``w`` and therefore the next loss unchanged, and a
skipping optimizer would skip forever. Under DDP (``reduce_loss``) and FSDP2 the checked values
are the global ones, so every rank raises together. The optimizer keeps no state.
``foreach=True`` runs the multi-tensor path (``torch._foreach_*`` over tensors grouped by
device and dtype), one pass over the gradients.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from gradhub.errors import UnsupportedInputError
from gradhub.kernels import group_tensors
from gradhub.kinds.optimizer import Optimizer, nonfinite_count
from gradhub_normalized_lrgd import NORMALIZED_LRGD, NormalizedLRGDHyperparameters

__all__ = ["NormalizedLRGD"]


class NormalizedLRGD(Optimizer):
    """Normalized LR+GD (Tyurin, AAAI 2025): ``w <- w - lr * grad f(w) / f(w)``.

    ``normalize="loss"`` divides by ``f(w)`` (the paper); ``"grad_norm"`` by ``||grad f(w)||``.
    ``reduce_loss`` makes every rank divide by the global loss under DDP, as it steps with the
    globally averaged gradient. ``step(closure)`` needs a closure that zeroes the gradients,
    evaluates the full-batch loss ``f(w)``, calls ``backward()`` and returns the loss.
    """

    spec = NORMALIZED_LRGD

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One step; returns the closure's loss."""
        if closure is None:
            raise UnsupportedInputError(
                self.method,
                "closure",
                None,
                "step(closure) needs a closure that computes the full-batch loss f(w), calls backward() and "
                "returns f(w): the step is divided by f(w)",
            )
        loss = self.evaluate_closure(closure)
        groups = self.parameters_with_gradients()
        options = [self.options(group) for group in self.param_groups]  # validated before anything changes
        grads = [param.grad for params in groups for param in params]
        grad_squared_norm = None
        if grads and any(group_options.normalize == "grad_norm" for group_options in options):
            grad_squared_norm = _total_squared_norm(grads)
        loss_value = torch.as_tensor(loss).detach()
        if _reduces_loss(options):
            # Under data parallelism each rank's closure sees its shard: the global mean loss is the
            # average of the shards' means (equal shards), just as DDP averages the gradients.
            loss_value = loss_value.clone()
            torch.distributed.all_reduce(loss_value)
            loss_value = loss_value / torch.distributed.get_world_size()
        self._require_finite(loss_value, grads)  # before any parameter changes
        for group, params, group_options in zip(self.param_groups, groups, options):
            if not params:
                continue
            normaliser = loss_value if group_options.normalize == "loss" else grad_squared_norm.sqrt()
            implementation = (
                _multi_tensor_normalized_step if self.use_foreach(group, params) else _single_tensor_normalized_step
            )
            implementation(params, [param.grad for param in params], normaliser, group_options)
        return loss

    def _require_finite(self, loss_value: Tensor, grads: list[Tensor]) -> None:
        """A finite loss and finite gradients, or an error before the step changes anything (one host read).

        Under DDP (``reduce_loss``) the loss is the global one and the gradients are averaged, and under
        FSDP2 the count of non-finite gradient entries is summed over the mesh, so every rank raises
        together.
        """
        device = grads[0].device if grads else loss_value.device
        nonfinite = nonfinite_count(grads) if grads else torch.zeros((), dtype=torch.int64, device=device)
        losses = loss_value.reshape(-1).to(device=device, dtype=torch.float64)
        bad_gradients, *values = torch.cat([nonfinite.reshape(1).to(torch.float64), losses]).tolist()
        if not all(math.isfinite(value) for value in values):
            shown = values[0] if len(values) == 1 else values
            raise UnsupportedInputError(
                self.method,
                "loss",
                f"{shown!r} (the closure's f(w){', averaged over the process group' if self._reduced() else ''})",
                "the closure must return a finite loss: the step divides by f(w) (normalize='loss') or "
                "follows its gradient; the step was not taken and the parameters are unchanged",
            )
        if bad_gradients:
            total = sum(grad.numel() for grad in grads)
            raise UnsupportedInputError(
                self.method,
                "gradient values",
                f"{int(bad_gradients)} of {total} entries non-finite",
                "the gradients of f(w) must be finite; the step was not taken and the parameters are unchanged",
            )

    def _reduced(self) -> bool:
        return _reduces_loss([self.options(group) for group in self.param_groups])


def _initialized() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _reduces_loss(options: list[NormalizedLRGDHyperparameters]) -> bool:
    """Whether the step averages the loss over the process group.

    A ``loss``-mode group with ``reduce_loss`` (None: when torch.distributed is initialized) needs the
    global loss to divide by; a ``grad_norm`` group does not use it, but when torch.distributed is
    initialized its finiteness check reads the global loss too, so that every rank raises together.
    """
    return any(
        _reduces(group_options.reduce_loss) and (group_options.normalize == "loss" or _initialized())
        for group_options in options
    )


def _reduces(reduce_loss: bool | None) -> bool:
    return _initialized() if reduce_loss is None else bool(reduce_loss)


def _total_squared_norm(grads: list[Tensor]) -> Tensor:
    """``sum_t ||g_t||^2`` over every tensor, in float64, on the first tensor's device."""
    device = grads[0].device
    return torch.stack([grad.double().square().sum().to(device) for grad in grads]).sum()


def _step_scale(normaliser: Tensor, lr: float, eps: float, like: Tensor) -> Tensor:
    """``lr / max(normaliser + eps, tiny)`` as a 0-d tensor in ``like``'s dtype and device (no sync)."""
    denominator = normaliser.to(device=like.device, dtype=torch.float64) + eps
    denominator = denominator.clamp_min(torch.finfo(like.dtype).tiny)
    return (lr / denominator).to(like.dtype)


def _single_tensor_normalized_step(
    params: list[Tensor], grads: list[Tensor], normaliser: Tensor, options: NormalizedLRGDHyperparameters
) -> None:
    """The reference path: ``w <- w - (lr / normaliser) * g``, one tensor at a time."""
    for param, grad in zip(params, grads):
        param.sub_(grad * _step_scale(normaliser, options.lr, options.eps, param))


def _multi_tensor_normalized_step(
    params: list[Tensor], grads: list[Tensor], normaliser: Tensor, options: NormalizedLRGDHyperparameters
) -> None:
    """The same step over lists grouped by device and dtype (``torch._foreach_*``)."""
    for (_device, _dtype), (group_params, group_grads) in group_tensors([params, grads]).items():
        scale = _step_scale(normaliser, options.lr, options.eps, group_params[0])
        torch._foreach_sub_(group_params, torch._foreach_mul(group_grads, scale))
