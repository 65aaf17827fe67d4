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

Under FSDP2 (parameters, gradients and state are DTensor shards of dim 0) each process
holds whole rows, so the channel view's per-row cosines are local; the decision ("every
row passes") and the layer view's whole-tensor sums are not. :func:`shard_sums` gathers
what crosses processes into five numbers per weight, summed over the mesh by
:func:`all_reduce_over_shards` (one collective for all weights of a step), and
:func:`sharded_projection_scales` finishes the decision and scales from them.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import torch
from torch import Tensor

from gradhub.kernels import all_reduce_over, is_plain, local_shard, row_shape
from gradhub.kernels import shard_groups as sharded_over
from gradhub.kinds.optimizer import ElementwiseOptimizer
from gradhub_adamp import ADAMP

__all__ = [
    "ScaleInvariantOptimizer",
    "decision_statistics",
    "param_dot_update",
    "project_and_step",
    "project_radial",
    "projection_scales",
    "radial_projection_scales",
    "scale_invariance",
    "shard_groups",
    "shard_sums",
    "sharded_projection_scales",
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


ROWS_WHOLE = (
    "Shard(0) (FSDP2's default) or Replicate on every mesh dimension: the projection's per-row cosines need "
    "whole rows on each process"
)


def shard_groups(method: str, tensor: Tensor) -> tuple[Any, ...]:
    """The process groups over which sums over ``tensor``'s rows are all-reduced (rows must be whole)."""
    return sharded_over(method, tensor, dims=(0,), allowed=ROWS_WHOLE)


def shard_sums(
    statistics: tuple[Tensor, Tensor, Tensor], products: Tensor, row_length: int, delta: float, eps: float
) -> Tensor:
    """What the decision and the layer view need from a shard's rows, as sums over them: ``(k, 5)``.

    ``statistics`` (:func:`decision_statistics`) and ``products`` (:func:`param_dot_update`) are
    ``(k, r)`` over the rows a process holds (r may be 0). Per weight: the number of rows that fail
    the channel test (``|cos(g_i, w_i)| < delta / sqrt(D)`` is false), ``<g, w>``, ``||g||^2``,
    ``||w||^2`` and ``<w, u>``. Summed over the processes holding the other rows, they decide as
    :func:`scale_invariance` does on the whole weight (see :func:`sharded_projection_scales`).
    """
    grad_dot_param, grad_norm, param_norm = statistics
    channel_cosine = grad_dot_param.abs() / (grad_norm.clamp_min(eps) * param_norm.clamp_min(eps))
    failing = (~(channel_cosine < delta / math.sqrt(row_length))).sum(-1).to(grad_norm.dtype)  # NaN fails
    return torch.stack(
        [
            failing,
            grad_dot_param.sum(-1),
            grad_norm.square().sum(-1),
            param_norm.square().sum(-1),
            products.sum(-1),
        ],
        dim=-1,
    )


def sharded_projection_scales(
    sums: Tensor, products: Tensor, param_norm: Tensor, rows: int, row_length: int, delta: float, eps: float
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`radial_projection_scales` for a process's rows, from :func:`shard_sums` summed over all rows.

    ``sums`` is ``(k, 5)``, already summed over every process; ``products`` and ``param_norm``
    are this process's ``(k, r)``; ``rows`` is the whole weight's number of rows. Returns this
    process's per-row scales and the boolean ``(k,)`` ``channel`` and ``layer``, the same on
    every process.
    """
    failing, grad_dot_param, grad_square, param_square, param_dot_update = sums.unbind(-1)
    channel = failing == 0
    layer_param_norm = param_square.sqrt()
    layer_cosine = grad_dot_param.abs() / (grad_square.sqrt().clamp_min(eps) * layer_param_norm.clamp_min(eps))
    layer = ~channel & (layer_cosine < delta / math.sqrt(rows * row_length))
    channel_scale = products / (param_norm + eps).square()
    layer_scale = (param_dot_update / (layer_param_norm + eps).square()).unsqueeze(-1)
    zero = channel_scale.new_zeros(())
    scale = torch.where(channel.unsqueeze(-1), channel_scale, torch.where(layer.unsqueeze(-1), layer_scale, zero))
    return scale, channel, layer


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
    step_size: float | Tensor,
    decay: float,
    delta: float,
    wd_ratio: float,
    eps: float,
    method: str = ADAMP.name,
) -> None:
    """The end of Algorithms 1 and 2 for one tensor: project ``update`` (in place), decay, step.

    ``w <- w * (1 - decay * f) - step_size * project(u)``, ``f = wd_ratio`` where a view fired.
    A DTensor shard (FSDP2) is stepped on its local rows with its decision's sums all-reduced
    (one collective per weight); ``method`` names the optimizer in the error for a placement
    that splits rows.
    """
    if param.dim() > 1 and not is_plain(param):
        groups = shard_groups(method, param)
        whole_rows, row_length = row_shape(param)
        param, grad, update = local_shard(param), local_shard(grad), local_shard(update)
        shape = (1, param.shape[0], row_length)
        local_param = param.reshape(shape)
        statistics = decision_statistics(grad.reshape(shape), local_param)
        products = param_dot_update(local_param, update.reshape(shape))
        sums = shard_sums(statistics, products, row_length, delta, eps)
        all_reduce_over(sums, groups)
        scale, channel, layer = sharded_projection_scales(
            sums, products, statistics[2], whole_rows, row_length, delta, eps
        )
        update.sub_(param * scale.view(param.shape[0], *([1] * (param.dim() - 1))))
        if decay:
            param.mul_(1 - decay * weight_decay_factor(channel, layer, wd_ratio, scale.dtype))
    elif param.dim() > 1:
        rows = (1, param.shape[0], -1)
        scale, channel, layer = radial_projection_scales(
            grad.reshape(rows), param.reshape(rows), update.reshape(rows), delta, eps
        )
        update.sub_(param * scale.view(param.shape[0], *([1] * (param.dim() - 1))))
        if decay:
            param.mul_(1 - decay * weight_decay_factor(channel, layer, wd_ratio, scale.dtype))
    elif decay:
        param.mul_(1 - decay)
    if isinstance(step_size, Tensor) or torch.compiler.is_compiling():
        # A tensor step size (tensor step counts) takes no alpha=; and torch 2.13's Inductor miscompiles
        # mul_ by an expression of a dynamic lr followed by add_(alpha=that lr): keep clear of it.
        param.sub_(update * step_size)
    else:
        param.add_(update, alpha=-step_size)


def warn_if_zero_gradients(method: str, params: list[Tensor], grads: list[Tensor]) -> None:
    """Warn once when weights start with an all-zero gradient: they will get ``wd_ratio`` decay.

    A zero gradient has cosine 0 with its weight, so the official code treats the weight as
    scale-invariant and multiplies its weight decay by ``wd_ratio`` (typically frozen weights
    whose gradients were zeroed rather than set to None). Called when state is created,
    so it costs one read-back per new set of parameters, never one per step.
    """
    pairs = [(param, grad) for param, grad in zip(params, grads) if param.dim() > 1]
    if not pairs:
        return
    if all(is_plain(grad) for _, grad in pairs):
        zero = int((torch.stack(torch._foreach_norm([grad for _, grad in pairs], float("inf"))) == 0).sum())
    else:  # DTensor shards (FSDP2): a gradient is zero when every process's rows are (a process may hold none)
        nonzero = torch.stack([local_shard(grad).count_nonzero() for _, grad in pairs])
        by_groups: dict[tuple[Any, ...], list[int]] = {}
        for index, (param, _) in enumerate(pairs):
            by_groups.setdefault(shard_groups(method, param), []).append(index)
        for groups, indices in by_groups.items():
            if groups:
                counts = nonzero[indices]
                all_reduce_over(counts, groups)
                nonzero[indices] = counts
        zero = int((nonzero == 0).sum())
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
        # A step at lr 0 changes nothing (torch.distributed.checkpoint creates a fresh optimizer's
        # state that way, with zero gradients): no frozen weight to warn about.
        if group["weight_decay"] > 0 and float(group["lr"]) > 0:
            warn_if_zero_gradients(self.method, params, [param.grad for param in params])
