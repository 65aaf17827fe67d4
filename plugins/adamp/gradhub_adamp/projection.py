"""The radial projection shared by AdamP and SGDP.

Paper: Heo, Chun, Oh, Han, Yun, Kim, Uh, Ha, "AdamP: Slowing Down the Slowdown for
Momentum Optimizers on Scale-invariant Weights", ICLR 2021, arXiv 2006.08217.
Official code: https://github.com/clovaai/AdamP (PyPI ``adamp`` 0.3.0).

For a weight ``w`` with gradient ``g`` and update ``u`` (§3, "projected updates"; the
projection step of Algorithms 1 and 2):

* a weight is taken as scale-invariant under a *view* when every row of the view has
  ``|cos(g_i, w_i)| < delta / sqrt(D)``, D the row length; the channel view (one row
  per output channel, ``w.view(w.size(0), -1)``) is tried first, then the layer view
  (``w.view(1, -1)``);
* for the first view that passes, the update loses its radial component,
  ``u_i <- u_i - <w^_i, u_i> w^_i`` with ``w^_i = w_i / (||w_i|| + eps)``, and the
  weight decay for that weight is multiplied by ``wd_ratio``;
* otherwise ``u`` is unchanged. One-dimensional tensors are never projected.

The cosine follows ``torch.nn.functional.cosine_similarity`` (which the official code
calls): ``<g, w> / (max(||g||, eps) * max(||w||, eps))``. ``g`` is the raw current
gradient, not the momentum. The official code decides with a Python ``if`` on a
device tensor, a host sync per weight; here both views are evaluated as tensors and
selected with ``torch.where``, so a step never waits on the device.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import torch
from torch import Tensor

from gradhub.kinds.optimizer import ElementwiseOptimizer

__all__ = [
    "ScaleInvariantOptimizer",
    "decision_statistics",
    "param_dot_update",
    "project_and_step",
    "project_radial",
    "projection_scales",
    "radial_projection_scales",
    "scale_invariance",
    "warn_if_zero_gradients",
    "weight_decay_factor",
]


def _reduction_dtype(dtype: torch.dtype) -> torch.dtype:
    # bf16/fp16 dot products are too coarse for thresholds like 0.1 / sqrt(D).
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def decision_statistics(grads: Tensor, params: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-row ``<g, w>``, ``||g||`` and ``||w||`` of ``(k, R, D)`` tensors, each ``(k, R)``.

    All the scale-invariance test needs. Rows are independent, so a large tensor may be
    processed in row blocks and its statistics assembled before deciding.
    """
    dtype = _reduction_dtype(params.dtype)
    g, p = (t if t.dtype == dtype else t.to(dtype) for t in (grads, params))
    return torch.linalg.vecdot(g, p), torch.linalg.vector_norm(g, dim=-1), torch.linalg.vector_norm(p, dim=-1)


def scale_invariance(
    statistics: tuple[Tensor, Tensor, Tensor], row_length: int, delta: float, eps: float
) -> tuple[Tensor, Tensor]:
    """Which view, if any, finds each weight scale-invariant: boolean ``(k,)`` ``channel``, ``layer``.

    Channel view first: every row has ``|cos(g_i, w_i)| < delta / sqrt(D)``; else the layer
    view, the whole weight as one row of ``R * D``. At most one of the two is true.
    """
    grad_dot_param, grad_norm, param_norm = statistics
    rows = grad_dot_param.shape[-1]
    channel_cosine = grad_dot_param.abs() / (grad_norm.clamp_min(eps) * param_norm.clamp_min(eps))
    channel = channel_cosine.amax(-1) < delta / math.sqrt(row_length)
    layer_grad_norm = grad_norm.square().sum(-1).sqrt()
    layer_param_norm = param_norm.square().sum(-1).sqrt()
    layer_cosine = grad_dot_param.sum(-1).abs() / (layer_grad_norm.clamp_min(eps) * layer_param_norm.clamp_min(eps))
    layer = ~channel & (layer_cosine < delta / math.sqrt(rows * row_length))
    return channel, layer


def projection_scales(
    param_dot_update: Tensor, param_norm: Tensor, channel: Tensor, layer: Tensor, eps: float
) -> Tensor:
    """Per-row ``s`` (``(k, R)``) with ``u - w * s`` the projected update; zero where no view fired.

    Channel view: ``s_i = <w_i, u_i> / (||w_i|| + eps)^2``; layer view: one ``s`` from the
    whole weight, ``<w, u> / (||w|| + eps)^2``, i.e. ``u <- u - <w^, u> w^`` for ``w^ = w / (||w|| + eps)``.
    """
    channel_scale = param_dot_update / (param_norm + eps).square()
    layer_norm = param_norm.square().sum(-1, keepdim=True).sqrt()
    layer_scale = param_dot_update.sum(-1, keepdim=True) / (layer_norm + eps).square()
    zero = channel_scale.new_zeros(())
    return torch.where(channel.unsqueeze(-1), channel_scale, torch.where(layer.unsqueeze(-1), layer_scale, zero))


def param_dot_update(params: Tensor, updates: Tensor) -> Tensor:
    """Per-row ``<w, u>`` of ``(k, R, D)`` tensors (in float32 for half-precision weights)."""
    dtype = _reduction_dtype(params.dtype)
    p, u = (t if t.dtype == dtype else t.to(dtype) for t in (params, updates))
    return torch.linalg.vecdot(p, u)


def radial_projection_scales(
    grads: Tensor, params: Tensor, updates: Tensor, delta: float, eps: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-row scales ``s`` such that ``updates - params * s[..., None]`` is the projected update.

    ``grads``, ``params`` and ``updates`` are ``(k, R, D)``: k weights of the same
    shape, each seen as R rows (output channels) of D elements. Returns ``s`` ``(k, R)``
    and the boolean ``(k,)`` ``channel`` and ``layer`` of :func:`scale_invariance`.
    """
    statistics = decision_statistics(grads, params)
    channel, layer = scale_invariance(statistics, params.shape[-1], delta, eps)
    return projection_scales(param_dot_update(params, updates), statistics[2], channel, layer, eps), channel, layer


def project_radial(
    param: Tensor,
    grad: Tensor,
    update: Tensor,
    delta: float = 0.1,
    wd_ratio: float = 0.1,
    eps: float = 1e-8,
) -> tuple[Tensor, float, Literal["channel", "layer"] | None]:
    """Project one weight's update as AdamP/SGDP would; for inspection and tests.

    Returns ``(projected_update, weight_decay_factor, mode)`` where ``mode`` is
    ``"channel"``, ``"layer"`` or ``None`` (not projected; also for 1-D tensors) and the
    factor is ``wd_ratio`` when projected, else 1. Unlike the optimizers this reads the
    decision back to the host, so it synchronises with the device.
    """
    if param.dim() <= 1:
        return update.clone(), 1.0, None
    shape = (1, param.shape[0], -1)
    scale, channel, layer = radial_projection_scales(
        grad.reshape(shape), param.reshape(shape), update.reshape(shape), delta, eps
    )
    scale = scale.view(param.shape[0], *([1] * (param.dim() - 1)))  # float32 for half-precision weights
    projected = (update - param * scale).to(update.dtype)
    if bool(channel):
        return projected, wd_ratio, "channel"
    if bool(layer):
        return projected, wd_ratio, "layer"
    return projected, 1.0, None


def weight_decay_factor(channel: Tensor, layer: Tensor, wd_ratio: float, dtype: torch.dtype) -> Tensor:
    """``wd_ratio`` where either view fired, else 1 (computed in ``dtype``, without a sync)."""
    return 1 - (1 - wd_ratio) * (channel | layer).to(dtype)


def project_and_step(
    param: Tensor,
    grad: Tensor,
    update: Tensor,
    *,
    step_size: float,
    decay: float,
    delta: float,
    wd_ratio: float,
    eps: float,
) -> None:
    """The end of Algorithms 1 and 2 for one tensor: project ``update`` (in place), decay, step.

    ``w <- w * (1 - decay * f) - step_size * project(u)``, ``f = wd_ratio`` where a view fired.
    """
    if param.dim() > 1:
        rows = (1, param.shape[0], -1)
        scale, channel, layer = radial_projection_scales(
            grad.reshape(rows), param.reshape(rows), update.reshape(rows), delta, eps
        )
        update.sub_(param * scale.view(param.shape[0], *([1] * (param.dim() - 1))))
        if decay:
            param.mul_(1 - decay * weight_decay_factor(channel, layer, wd_ratio, scale.dtype))
    elif decay:
        param.mul_(1 - decay)
    param.add_(update, alpha=-step_size)


def warn_if_zero_gradients(method: str, params: list[Tensor], grads: list[Tensor]) -> None:
    """Warn once when weights start with an all-zero gradient: they will get ``wd_ratio`` decay.

    A zero gradient has cosine 0 with its weight, so the official code treats the weight as
    scale-invariant and multiplies its weight decay by ``wd_ratio`` (typically frozen weights
    whose gradients were zeroed rather than set to None). Called when state is created,
    so it costs one read-back per new set of parameters, never one per step.
    """
    matrices = [grad for param, grad in zip(params, grads) if param.dim() > 1]
    if not matrices:
        return
    zero = int((torch.stack(torch._foreach_norm(matrices, float("inf"))) == 0).sum())
    if zero:
        warnings.warn(
            f"{method}: {zero} weight(s) have an all-zero gradient at their first step; as in the official code "
            "they count as scale-invariant and their weight decay is multiplied by wd_ratio. Leave frozen "
            "weights out of the optimizer, or set their .grad to None, to keep them unchanged.",
            stacklevel=5,  # step -> torch.no_grad wrapper -> torch step hook -> the caller
        )


class ScaleInvariantOptimizer(ElementwiseOptimizer):
    """What AdamP and SGDP share beyond the step: the warning for weights starting at a zero gradient."""

    def on_new_state(self, group: dict[str, Any], params: list[Tensor]) -> None:
        if group["weight_decay"] > 0:
            warn_if_zero_gradients(self.method, params, [param.grad for param in params])
