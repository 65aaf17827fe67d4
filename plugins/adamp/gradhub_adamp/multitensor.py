"""The multi-tensor tails of AdamP and SGDP steps: projection, weight decay, update.

Two strategies, chosen by device, over tensors that share a device and dtype, and a third
for DTensor shards (FSDP2) on any device:

* :func:`foreach_projected_step` (CUDA and other accelerators): the optimizer updates its
  state with ``torch._foreach_*`` ops over whole lists; this applies the projection.
* :func:`blocked_projected_step` (CPU): small same-shape tensors are stacked into one
  ``(k, rows, row_length)`` batch (one op per batch instead of one per tensor), and large
  tensors are walked in row blocks of a few MiB so that intermediates stay in cache. It
  decides first (state update and the scale-invariance test for every weight), reads the
  decisions back once per step (free on CPU), then applies the step, computing
  ``<w, u>`` and the projection only for weights where a view fired.
* :func:`sharded_projected_step` (DTensor shards of dim 0): each process steps the rows
  it holds; per weight, the five sums of :func:`~gradhub_adamp.projection.shard_sums`
  (channel-test failures, ``<g, w>``, ``||g||^2``, ``||w||^2``, ``<w, u>``) are summed
  over the mesh in one all-reduce per step, and the decision stays a tensor.

Both apply, per weight, ``w <- w * (1 - decay * f) - step_size * (u - w * s)`` where ``s``
is the per-row projection scale (zero where no view fires) and ``f`` is ``wd_ratio`` for
projected weights, 1 otherwise; folded into one per-row rescaling of ``w`` and one
``add``, unless the update must itself be projected in place (SGDP without Nesterov, whose
update is its momentum buffer) or the weights are bfloat16/float16 (see ``_folds``).
The CUDA strategy never synchronises with the device; the CPU one reads back one small
tensor per step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from gradhub.kernels import all_reduce_over, as_rows, local_shard, row_blocks, row_shape, same_shape_batches, write_back
from gradhub_adamp import ADAMP
from gradhub_adamp.projection import (
    decision_statistics,
    param_dot_update,
    projection_scales,
    radial_projection_scales,
    scale_invariance,
    shard_groups,
    shard_sums,
    sharded_projection_scales,
    weight_decay_factor,
)

__all__ = [
    "BLOCK_BYTES",
    "STACK_NUMEL",
    "ProjectedStep",
    "blocked_projected_step",
    "foreach_projected_step",
    "sharded_projected_step",
]

BLOCK_BYTES = 4 << 20
"""Bytes per tensor in a CPU block: measured best on a 2-core EPYC (1 MiB L2/core, 32 MiB L3)."""
STACK_NUMEL = 1 << 16
"""On DTensor shards, weights of at most this many local elements are stacked; larger ones step alone."""

StateUpdate = Callable[[Tensor, list[Tensor]], None]
Direction = Callable[[Tensor, list[Tensor]], Tensor]


@dataclass(frozen=True)
class ProjectedStep:
    """The scalars of one projected step."""

    step_size: float
    decay: float
    """``lr * weight_decay`` (times ``1 / (1 - momentum)`` for SGDP)."""
    delta: float
    wd_ratio: float
    eps: float
    project_in_place: bool
    """Project the update tensor itself (it is SGDP's momentum buffer without Nesterov)."""
    method: str = ADAMP.name
    """The optimizer's name, for errors (a DTensor placement the projection cannot take)."""


def _decay_factor(channel: Tensor, layer: Tensor, step: ProjectedStep, dtype: torch.dtype) -> Tensor | None:
    """``1 - decay * f`` per weight, ``(k, 1)``; None without weight decay."""
    if not step.decay:
        return None
    return (1 - step.decay * weight_decay_factor(channel, layer, step.wd_ratio, dtype)).unsqueeze(-1)


def _folds(step: ProjectedStep, dtype: torch.dtype) -> bool:
    """Whether the projection can ride on the weight's rescaling.

    Folding computes ``w * (1 + step_size * s)``; in bfloat16 or float16 ``step_size * s`` is
    below the weight's resolution and the rescaling rounds back to ``w`` while the radial
    part of ``u`` is still added. For those the update is projected explicitly, where the
    radial part cancels at the update's own scale.
    """
    return not step.project_in_place and dtype not in (torch.float16, torch.bfloat16)


def _apply_projected(
    weights: Tensor, update: Tensor, scale: Tensor, decay_factor: Tensor | None, step: ProjectedStep
) -> None:
    """``w <- w * decay_factor - step_size * (u - w * scale)`` on ``(k, r, D)`` weights."""
    if not _folds(step, weights.dtype):
        update.addcmul_(weights, scale.unsqueeze(-1), value=-1)
        if decay_factor is not None:
            weights.mul_(decay_factor.unsqueeze(-1))
    else:
        factor = step.step_size * scale + (1 if decay_factor is None else decay_factor)
        weights.mul_(factor.unsqueeze(-1))
    weights.add_(update, alpha=-step.step_size)


def _scales_for(
    modes: list[int], products: Tensor, param_norm: Tensor, channel: Tensor, layer: Tensor, eps: float
) -> Tensor:
    """:func:`projection_scales` when the modes are known on the host: skip the view that did not fire."""
    if all(mode == 1 for mode in modes):
        return products / (param_norm + eps).square()
    return projection_scales(products, param_norm, channel, layer, eps)


def _apply_plain(weights: Tensor, update: Tensor, step: ProjectedStep) -> None:
    if step.decay:
        weights.mul_(1 - step.decay)
    weights.add_(update, alpha=-step.step_size)


@dataclass
class _Batch:
    """Same-shape weights as one ``(k, R, D)`` batch, state already updated, awaiting the step."""

    params: list[Tensor]
    states: list[list[Tensor]]
    weights: Tensor
    weights_copied: bool
    grads: Tensor
    state_rows: list[tuple[Tensor, bool]]
    statistics: tuple[Tensor, Tensor, Tensor] | None = None
    channel: Tensor | None = None
    layer: Tensor | None = None

    def finish(self, modes: list[int], direction: Direction, step: ProjectedStep) -> None:
        update = direction(self.grads, [rows for rows, _ in self.state_rows])
        if any(modes):
            assert self.statistics is not None and self.channel is not None and self.layer is not None
            scale = _scales_for(
                modes, param_dot_update(self.weights, update), self.statistics[2], self.channel, self.layer, step.eps
            )
            _apply_projected(
                self.weights, update, scale, _decay_factor(self.channel, self.layer, step, scale.dtype), step
            )
        else:
            _apply_plain(self.weights, update, step)
        for state, (rows, copied) in zip(self.states, self.state_rows):
            if copied:
                write_back(state, rows)
        if self.weights_copied:
            write_back(self.params, self.weights)


@dataclass
class _LargeWeight:
    """One large weight as ``(1, R, D)`` views walked in row blocks; state already updated."""

    weights: Tensor
    grads: Tensor
    state_rows: list[Tensor]
    blocks: list[slice]
    statistics: tuple[Tensor, Tensor, Tensor]
    channel: Tensor
    layer: Tensor

    def _update(self, block: slice, direction: Direction) -> Tensor:
        return direction(self.grads[:, block], [rows[:, block] for rows in self.state_rows])

    def finish(self, modes: list[int], direction: Direction, step: ProjectedStep) -> None:
        (mode,) = modes
        param_norm = self.statistics[2]
        if mode == 0:
            for block in self.blocks:
                _apply_plain(self.weights[:, block], self._update(block, direction), step)
            return
        decay_factor = _decay_factor(self.channel, self.layer, step, param_norm.dtype)
        if mode == 1:  # channel view: each row's scale is known from its own block
            for block in self.blocks:
                update = self._update(block, direction)
                products = param_dot_update(self.weights[:, block], update)
                scale = products / (param_norm[:, block] + step.eps).square()
                _apply_projected(self.weights[:, block], update, scale, decay_factor, step)
            return
        products = torch.empty_like(param_norm)  # layer view: one scale from every row first
        for block in self.blocks:
            products[:, block] = param_dot_update(self.weights[:, block], self._update(block, direction))
        scale = projection_scales(products, param_norm, self.channel, self.layer, step.eps)
        for block in self.blocks:
            _apply_projected(
                self.weights[:, block], self._update(block, direction), scale[:, block], decay_factor, step
            )


def _large_weight(
    param: Tensor,
    grad: Tensor,
    state: list[Tensor],
    update_state: StateUpdate,
    direction: Direction,
    step: ProjectedStep,
    block_numel: int,
) -> _LargeWeight | None:
    rows, row_length = row_shape(param)
    weights = param.view(1, rows, row_length)
    grads = grad.reshape(1, rows, row_length)
    state_rows = [tensor.view(1, rows, row_length) for tensor in state]
    blocks = row_blocks(rows, row_length, block_numel)
    if param.dim() <= 1:
        for block in blocks:
            block_state = [tensor[:, block] for tensor in state_rows]
            update_state(grads[:, block], block_state)
            _apply_plain(weights[:, block], direction(grads[:, block], block_state), step)
        return None
    statistics: tuple[Tensor, ...] = ()
    for block in blocks:
        update_state(grads[:, block], [tensor[:, block] for tensor in state_rows])
        values = decision_statistics(grads[:, block], weights[:, block])
        if not statistics:
            statistics = tuple(value.new_empty((1, rows)) for value in values)
        for buffer, value in zip(statistics, values):
            buffer[:, block] = value
    channel, layer = scale_invariance(statistics, row_length, step.delta, step.eps)  # type: ignore[arg-type]
    return _LargeWeight(weights, grads, state_rows, blocks, statistics, channel, layer)  # type: ignore[arg-type]


def _batch(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[list[Tensor]],
    update_state: StateUpdate,
    direction: Direction,
    step: ProjectedStep,
) -> _Batch | None:
    weights, weights_copied = as_rows(params)
    batch = _Batch(params, states, weights, weights_copied, as_rows(grads)[0], [as_rows(state) for state in states])
    update_state(batch.grads, [rows for rows, _ in batch.state_rows])
    if params[0].dim() <= 1:
        batch.finish([0], direction, step)
        return None
    batch.statistics = decision_statistics(batch.grads, weights)
    batch.channel, batch.layer = scale_invariance(batch.statistics, weights.shape[-1], step.delta, step.eps)
    return batch


def blocked_projected_step(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[list[Tensor]],
    update_state: StateUpdate,
    direction: Direction,
    step: ProjectedStep,
    block_bytes: int | None = None,
) -> None:
    """A whole projected step on CPU, state update included.

    ``update_state(grads, state)`` updates the state tensors in place and
    ``direction(grads, state)`` returns the unprojected update; both receive
    ``(k, rows, row_length)`` tensors (stacked batches or views of row blocks).
    ``direction`` may be called more than once on a block, so it must be a pure
    function of the updated state.
    """
    block_numel = max(1, (block_bytes or BLOCK_BYTES) // params[0].element_size())
    pending: list[_Batch | _LargeWeight] = []
    for batch in same_shape_batches(params, block_numel):
        members = [params[index] for index in batch]
        member_states = [[state[index] for index in batch] for state in states]
        member_grads = [grads[index] for index in batch]
        views_possible = members[0].is_contiguous() and all(state[0].is_contiguous() for state in member_states)
        if len(batch) == 1 and members[0].numel() > block_numel and views_possible:
            work = _large_weight(
                members[0],
                member_grads[0],
                [state[0] for state in member_states],
                update_state,
                direction,
                step,
                block_numel,
            )
        else:
            work = _batch(members, member_grads, member_states, update_state, direction, step)
        if work is not None:
            pending.append(work)
    if not pending:
        return
    # The step's one read-back: 0 = not projected, 1 = channel view, 2 = layer view.
    modes = torch.cat([work.channel.to(torch.int8) + 2 * work.layer.to(torch.int8) for work in pending]).tolist()
    start = 0
    for work in pending:
        count = work.channel.numel()
        work.finish(modes[start : start + count], direction, step)
        start += count


def foreach_projected_step(
    params: list[Tensor],
    grads: list[Tensor],
    updates: list[Tensor],
    step: ProjectedStep,
    max_batch_numel: int = 1 << 16,
) -> None:
    """The projected step over lists whose state the caller updated with foreach ops.

    Branch-free: every weight's scale is computed (zero where no view fires) and the
    weights are updated in place with ``torch._foreach_*`` ops; no host sync.
    """
    matrices = [index for index, param in enumerate(params) if param.dim() > 1]
    scaled: list[Tensor] = []
    factors: list[Tensor] = []
    projected: list[Tensor] = []
    projected_params: list[Tensor] = []
    negated_scales: list[Tensor] = []
    for batch in same_shape_batches([params[index] for index in matrices], max_batch_numel):
        members = [matrices[position] for position in batch]
        weights = [params[index] for index in members]
        weight_rows, _ = as_rows(weights)
        scale, channel, layer = radial_projection_scales(
            as_rows([grads[index] for index in members])[0],
            weight_rows,
            as_rows([updates[index] for index in members])[0],
            step.delta,
            step.eps,
        )
        decay_factor = _decay_factor(channel, layer, step, scale.dtype)
        rows_shape = (len(members), weights[0].shape[0]) + (1,) * (weights[0].dim() - 1)
        if not _folds(step, weights[0].dtype):
            projected += [updates[index] for index in members]
            projected_params += weights
            negated_scales += scale.neg().view(rows_shape).unbind(0)
            if decay_factor is not None:
                scaled += weights
                factors += decay_factor.expand_as(scale).reshape(rows_shape).unbind(0)
        else:
            scaled += weights
            factor = step.step_size * scale + (1 if decay_factor is None else decay_factor)
            factors += factor.view(rows_shape).unbind(0)
    if projected:
        torch._foreach_addcmul_(projected, projected_params, negated_scales)
    if scaled:
        torch._foreach_mul_(scaled, factors)
    vectors = [param for param in params if param.dim() <= 1]
    if step.decay and vectors:
        torch._foreach_mul_(vectors, 1 - step.decay)
    torch._foreach_add_(params, updates, alpha=-step.step_size)


@dataclass
class _ShardedBatch:
    """Same-shape weights' local rows, state updated and update computed, awaiting the summed decision."""

    params: list[Tensor]
    states: list[list[Tensor]]
    weights: Tensor
    weights_copied: bool
    state_rows: list[tuple[Tensor, bool]]
    update: Tensor
    statistics: tuple[Tensor, Tensor, Tensor]
    products: Tensor
    rows: int
    row_length: int
    sums: Tensor

    def finish(self, step: ProjectedStep) -> None:
        scale, channel, layer = sharded_projection_scales(
            self.sums, self.products, self.statistics[2], self.rows, self.row_length, step.delta, step.eps
        )
        _apply_projected(self.weights, self.update, scale, _decay_factor(channel, layer, step, scale.dtype), step)
        _write_back(self.params, self.states, self.weights, self.weights_copied, self.state_rows)


def _write_back(
    params: list[Tensor],
    states: list[list[Tensor]],
    weights: Tensor,
    weights_copied: bool,
    state_rows: list[tuple[Tensor, bool]],
) -> None:
    for state, (rows, copied) in zip(states, state_rows):
        if copied:
            write_back(state, rows)
    if weights_copied:
        write_back(params, weights)


def sharded_projected_step(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[list[Tensor]],
    update_state: StateUpdate,
    direction: Direction,
    step: ProjectedStep,
    block_bytes: int | None = None,
) -> None:
    """A whole projected step over DTensor shards (FSDP2), state update included, on any device.

    The arguments are those of :func:`blocked_projected_step`; tensors may be DTensors sharded
    along dim 0 (or replicated) or plain tensors (replicated: every process holds all of them).
    Each process updates the rows it holds, on its local tensors (which share the DTensors'
    storage), with the arithmetic of the other strategies. Rows are whole under ``Shard(0)``,
    so the channel view's cosines are local; what crosses processes is, per weight, the five
    sums of :func:`~gradhub_adamp.projection.shard_sums`, in one all-reduce per step (per set
    of process groups), after which every process takes the same decision. Nothing is read
    back to the host. Same-shape weights of at most :data:`STACK_NUMEL` local elements are
    stacked (grouped by their whole shape, so they share their thresholds) into batches of
    ``block_bytes`` (:data:`BLOCK_BYTES`); a larger weight is stepped alone, on views (stacking
    would copy it and every state tensor, and write them back).
    """
    block_numel = max(1, (block_bytes or BLOCK_BYTES) // params[0].element_size())
    # Stacked together: tensors reduced over the same groups, of the same whole and local shapes. For
    # the weights that are reduced, the whole shape and placement fix the local one, so every process
    # walks the same batches in the same order (that of the parameters) and sums them in one tensor.
    by_key: dict[tuple[object, ...], list[int]] = {}
    for index, param in enumerate(params):
        groups = shard_groups(step.method, param) if param.dim() > 1 else ()
        by_key.setdefault((groups, param.shape, local_shard(param).shape), []).append(index)
    pending: dict[tuple[object, ...], list[_ShardedBatch]] = {}
    for (groups, _, _), indices in by_key.items():
        members_local = [local_shard(params[index]) for index in indices]  # all of one local shape
        if members_local[0].numel() <= STACK_NUMEL:
            batches = same_shape_batches(members_local, block_numel)
        else:
            batches = [[position] for position in range(len(indices))]
        for batch in batches:
            members = [indices[position] for position in batch]
            member_params = [local_shard(params[index]) for index in members]
            member_states = [[local_shard(state[index]) for index in members] for state in states]
            weights, weights_copied = as_rows(member_params)
            grad_rows = as_rows([local_shard(grads[index]) for index in members])[0]
            state_rows = [as_rows(state) for state in member_states]
            update_state(grad_rows, [rows for rows, _ in state_rows])
            update = direction(grad_rows, [rows for rows, _ in state_rows])
            if params[members[0]].dim() <= 1:
                _apply_plain(weights, update, step)
                _write_back(member_params, member_states, weights, weights_copied, state_rows)
                continue
            rows, row_length = row_shape(params[members[0]])  # the whole weight's
            statistics = decision_statistics(grad_rows, weights)
            products = param_dot_update(weights, update)
            sums = shard_sums(statistics, products, row_length, step.delta, step.eps)
            work = _ShardedBatch(
                member_params,
                member_states,
                weights,
                weights_copied,
                state_rows,
                update,
                statistics,
                products,
                rows,
                row_length,
                sums,
            )
            pending.setdefault(groups, []).append(work)
    for groups, works in pending.items():
        if groups:
            summed = torch.cat([work.sums for work in works])
            all_reduce_over(summed, groups)
            for work, sums in zip(works, summed.split([work.sums.shape[0] for work in works])):
                work.sums = sums
        for work in works:
            work.finish(step)
