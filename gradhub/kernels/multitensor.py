"""Multi-tensor helpers: group parallel tensor lists, batch same-shape tensors.

``torch._foreach_*`` ops need lists whose tensors share a device and dtype; row-wise
reductions over many small tensors are cheapest as one batched op over a stacked
``(k, rows, row_length)`` tensor. Nothing here synchronises with the device.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Hashable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.nn import Parameter

__all__ = [
    "CACHE_BLOCK_BYTES",
    "accelerator_formulation",
    "all_reduce_over",
    "as_rows",
    "cache_blocks",
    "foreach_add_scalar_",
    "foreach_copy_",
    "foreach_scalar",
    "group_tensors",
    "host_formulation",
    "is_plain",
    "local_shard",
    "row_blocks",
    "row_shape",
    "same_shape_batches",
    "shard_groups",
    "write_back",
]


_ACCELERATOR_STAND_IN: contextvars.ContextVar[bool] = contextvars.ContextVar("gradhub_accelerator", default=False)


def host_formulation(device: torch.device) -> bool:
    """Whether a path may use its CPU formulation for tensors on ``device``.

    The CPU formulations read decisions back to the host or walk cache-sized blocks: right on a
    CPU, wrong on an accelerator (a sync per read) and under ``torch.compile`` (a graph break per
    read). So: True on a CPU, False on any other device, while compiling, and inside
    :func:`accelerator_formulation` (how tests run the accelerator formulation on CPU tensors).
    """
    return device.type == "cpu" and not torch.compiler.is_compiling() and not _ACCELERATOR_STAND_IN.get()


@contextlib.contextmanager
def accelerator_formulation() -> Iterator[None]:
    """Within the block, :func:`host_formulation` is False: CPU tensors take the paths written for GPUs.

    For tests on a machine without one: every optimizer's CUDA formulation runs on CPU and can be
    compared with its CPU formulation in float64 (the conformance check
    ``accelerator_formulation_matches`` does).
    """
    token = _ACCELERATOR_STAND_IN.set(True)
    try:
        yield
    finally:
        _ACCELERATOR_STAND_IN.reset(token)


def group_tensors(
    tensor_lists: Sequence[Sequence[Tensor]], extra_keys: Sequence[Hashable] | None = None
) -> dict[tuple[Hashable, ...], list[list[Tensor]]]:
    """Split parallel lists by the (device, dtype) of the first list's tensors.

    ``extra_keys`` (one per tensor) splits further, e.g. by per-parameter step count so
    that a group shares its bias corrections. Order within a group is preserved.
    """
    first = tensor_lists[0]
    keys: list[tuple[Hashable, ...]] = [(tensor.device, tensor.dtype) for tensor in first]
    if extra_keys is not None:
        keys = [key + (extra,) for key, extra in zip(keys, extra_keys)]
    if keys and keys.count(keys[0]) == len(keys):  # the common case: one group, no per-tensor appends
        return {keys[0]: [list(tensors) for tensors in tensor_lists]}
    groups: dict[tuple[Hashable, ...], list[list[Tensor]]] = {}
    for index, key in enumerate(keys):
        lists = groups.get(key)
        if lists is None:
            lists = groups[key] = [[] for _ in tensor_lists]
        for target, source in zip(lists, tensor_lists):
            target.append(source[index])
    return groups


def same_shape_batches(tensors: Sequence[Tensor], max_batch_numel: int) -> list[list[int]]:
    """Indices of ``tensors`` grouped by shape into batches of at most ``max_batch_numel`` elements.

    A tensor larger than that stands alone (process it in blocks, see :func:`row_blocks`);
    stacking would copy it, and one op per large tensor costs nothing next to its memory
    traffic. Small same-shape tensors share batches, which :func:`as_rows` stacks.
    """
    alone: list[list[int]] = []
    by_shape: dict[torch.Size, list[list[int]]] = {}
    for index, tensor in enumerate(tensors):
        numel = tensor.numel()
        if numel > max_batch_numel:
            alone.append([index])
            continue
        batches = by_shape.setdefault(tensor.shape, [[]])
        if (len(batches[-1]) + 1) * numel > max_batch_numel:
            batches.append([])
        batches[-1].append(index)
    return alone + [batch for batches in by_shape.values() for batch in batches]


def row_shape(tensor: Tensor) -> tuple[int, int]:
    """``(rows, row_length)`` of a tensor seen as its first dimension by the rest (0-d: 1 x 1)."""
    rows = tensor.shape[0] if tensor.dim() > 0 else 1
    return rows, (tensor.numel() // rows if rows else 0)


def as_rows(tensors: Sequence[Tensor]) -> tuple[Tensor, bool]:
    """Same-shape tensors as one ``(k, rows, row_length)`` tensor, and whether it is a copy.

    One contiguous tensor is viewed; several, or a non-contiguous one (channels-last
    weights, say), are copied, and results must then be written back, e.g. with
    :func:`write_back`.
    """
    rows, row_length = row_shape(tensors[0])
    if len(tensors) == 1 and tensors[0].is_contiguous():
        return tensors[0].view(1, rows, row_length), False
    return torch.stack([tensor.reshape(rows, row_length) for tensor in tensors]), True


_EXACT_TENSOR_SCALARS = (torch.float32, torch.float64)


def foreach_scalar(value: float, like: Tensor) -> float | Tensor:
    """``value`` as the cheapest scalar argument of a ``torch._foreach_*`` op over tensors like ``like``.

    On a CPU the ops loop over the tensors, and a Python number is wrapped in a new tensor for
    each one (about 1.3 us: 1,000 small tensors pay 1.8 ms per op, 0.5 ms with a 0-d tensor).
    For float32/float64 lists the 0-d tensor has their dtype, so the result is bit for bit the
    same. Elsewhere (CUDA has fused foreach kernels) and in half precision (a 0-d half tensor
    would round the scalar before the op, unlike a number) the number itself is returned.
    ``_foreach_add_`` reads a 0-d tensor as a number unless ``alpha`` is given: use
    :func:`foreach_add_scalar_`.
    """
    if like.device.type == "cpu" and like.dtype in _EXACT_TENSOR_SCALARS:
        return torch.tensor(value, dtype=like.dtype)
    return value


def foreach_add_scalar_(tensors: list[Tensor], value: float) -> None:
    """``tensors[i] += value`` for all i, with the cheapest scalar argument (:func:`foreach_scalar`).

    ``alpha`` selects the tensor-scalar overload; without it torch takes the number overload.
    """
    scalar = foreach_scalar(value, tensors[0])
    if isinstance(scalar, Tensor):
        torch._foreach_add_(tensors, scalar, alpha=1)
    else:
        torch._foreach_add_(tensors, scalar)


def is_plain(tensor: Tensor) -> bool:
    """Whether ``tensor`` is a plain tensor or parameter, not a tensor subclass (FSDP2's DTensor shards).

    ``nn.Parameter`` counts as plain: it wraps a plain tensor (a parameter made from a DTensor
    is that DTensor). Foreach ops and flat views are safe on plain tensors only.
    """
    return type(tensor) is Tensor or type(tensor) is Parameter


def foreach_copy_(targets: Sequence[Tensor], sources: Sequence[Tensor]) -> None:
    """``targets[i].copy_(sources[i])`` for all i: one ``torch._foreach_copy_`` for plain tensors.

    Tensor subclasses (FSDP2's DTensor shards) have no sharding strategy for the foreach copy
    in torch 2.13; they are copied one by one, each copy local to its shard.
    """
    if all(is_plain(target) for target in targets):
        torch._foreach_copy_(list(targets), list(sources))
    else:
        for target, source in zip(targets, sources):
            target.copy_(source)


CACHE_BLOCK_BYTES = 4 << 20
"""The working set per block of a CPU multi-tensor step: a few of these fit in L2/L3 together."""


def cache_blocks(tensor_lists: Sequence[Sequence[Tensor]], max_block_numel: int) -> Iterator[list[list[Tensor]]]:
    """Walk aligned lists of same-shaped tensors in blocks of at most ``max_block_numel`` elements.

    On a CPU, each ``torch._foreach_*`` op over whole lists is a full pass over memory; an
    optimizer step of ten such ops over 47 MB of state reads it ten times from DRAM. Applied
    block by block, the ops after the first find the block in cache. Small tensors are
    batched whole; a large contiguous tensor is cut into flat slices (views: in-place ops
    write through). Yields aligned lists (one per input list) of tensors or views.
    """
    count = len(tensor_lists[0])
    start, size = 0, 0
    for index, numel in enumerate([tensor.numel() for tensor in tensor_lists[0]]):
        if numel > max_block_numel and all(
            is_plain(tensors[index]) and tensors[index].is_contiguous() for tensors in tensor_lists
        ):
            if index > start:
                yield [list(tensors[start:index]) for tensors in tensor_lists]
            flats = [tensors[index].view(-1) for tensors in tensor_lists]
            for offset in range(0, numel, max_block_numel):
                yield [[flat[offset : offset + max_block_numel]] for flat in flats]
            start, size = index + 1, 0
            continue
        if size and size + numel > max_block_numel:
            yield [list(tensors[start:index]) for tensors in tensor_lists]
            start, size = index, 0
        size += numel
    if start < count:
        yield [list(tensors[start:count]) for tensors in tensor_lists]


def write_back(originals: Sequence[Tensor], rows: Tensor) -> None:
    """Copy a batch made by :func:`as_rows` back into the tensors it was made from."""
    foreach_copy_(originals, [row.view_as(original) for row, original in zip(rows.unbind(0), originals)])


def row_blocks(rows: int, row_length: int, max_block_numel: int) -> list[slice]:
    """Slices of whole rows with at most ``max_block_numel`` elements each (one row at least).

    Walking a large tensor block by block keeps a step's intermediates in cache; the
    loop is over blocks (a few per megabyte), never over rows or elements.
    """
    per_block = max(1, max_block_numel // max(row_length, 1))
    return [slice(start, min(start + per_block, rows)) for start in range(0, rows, per_block)]


def local_shard(tensor: Tensor) -> Tensor:
    """The part of ``tensor`` this process holds: a DTensor's local tensor (sharing its storage, so
    in-place updates reach the DTensor), a plain tensor itself."""
    return tensor if is_plain(tensor) else tensor.to_local()


def shard_groups(
    method: str, tensor: Tensor, dims: tuple[int, ...] | None = None, allowed: str = ""
) -> tuple[Any, ...]:
    """The process groups over which a sum over ``tensor``'s entries (or rows) is all-reduced.

    Those of the mesh dimensions that shard it (FSDP2's ``Shard(0)``: one group); a replicated mesh
    dimension needs none, a plain tensor none at all. ``dims`` limits which tensor dimensions may be
    sharded (``(0,)`` for a method that needs whole rows on each process); any other placement raises
    :class:`~gradhub.errors.UnsupportedInputError` naming ``method`` and saying ``allowed``.
    """
    if is_plain(tensor):
        return ()
    from torch.distributed.tensor import Replicate, Shard

    from gradhub.errors import UnsupportedInputError

    groups = []
    for mesh_dim, placement in enumerate(tensor.placements):
        if isinstance(placement, Shard) and (dims is None or placement.dim in dims):
            groups.append(tensor.device_mesh.get_group(mesh_dim))
        elif not isinstance(placement, Replicate):
            raise UnsupportedInputError(
                method,
                "DTensor placement",
                f"{tuple(tensor.placements)} for a parameter of shape {tuple(tensor.shape)}",
                allowed or "Shard or Replicate on every mesh dimension",
            )
    return tuple(groups)


def all_reduce_over(tensor: Tensor, groups: tuple[Any, ...]) -> None:
    """Sum ``tensor`` in place over the processes of each group (those of :func:`shard_groups`)."""
    for group in groups:
        torch.distributed.all_reduce(tensor, group=group)
