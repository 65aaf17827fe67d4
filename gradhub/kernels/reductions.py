"""Norms and dot products of tensor lists, without a host sync.

Optimizers and probes need per-tensor norms (a trust ratio, a projection test) or one norm
over every gradient (normalised steps, clipping, a gradient-norm probe). Reading each
back with ``.item()`` costs a device sync per tensor; these stay on the device: one
``torch._foreach_*`` call per (device, dtype) group, then one ``stack``. Results are
0-d tensors, in float32 or wider (half-precision inputs are reduced in float32).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradhub.kernels.multitensor import group_tensors

__all__ = ["global_norm", "per_tensor_dots", "per_tensor_norms"]


def _wide(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def per_tensor_norms(tensors: list[Tensor], order: float = 2.0) -> list[Tensor]:
    """``||t||_order`` of each tensor, in the input order, as 0-d tensors on each tensor's device."""
    norms: list[Tensor | None] = [None] * len(tensors)
    positions = list(range(len(tensors)))
    for (_, dtype), (group, indices) in _grouped_with_positions(tensors, positions).items():
        wide = _wide(dtype)
        values = torch._foreach_norm(group, order, dtype=wide) if wide != dtype else torch._foreach_norm(group, order)
        for index, value in zip(indices, values):
            norms[index] = value
    return norms  # type: ignore[return-value]


def _grouped_with_positions(tensors: list[Tensor], positions: list[int]) -> dict[tuple, tuple[list[Tensor], list[int]]]:
    grouped: dict[tuple, tuple[list[Tensor], list[int]]] = {}
    for tensor, position in zip(tensors, positions):
        group = grouped.setdefault((tensor.device, tensor.dtype), ([], []))
        group[0].append(tensor)
        group[1].append(position)
    return grouped


def global_norm(tensors: list[Tensor], order: float = 2.0) -> Tensor:
    """``||concat(tensors)||_order`` as a 0-d tensor on the first tensor's device.

    float64 when any input is float64, else float32. For ``order`` = inf this is the
    largest absolute entry; for 1 and 2 the usual norms of the flattened concatenation.
    """
    if not tensors:
        raise ValueError("global_norm needs at least one tensor")
    device = tensors[0].device
    norms = []
    for (_, dtype), (group,) in group_tensors([tensors]).items():
        wide = _wide(dtype)
        norms.extend(
            torch._foreach_norm(group, order, dtype=wide) if wide != dtype else torch._foreach_norm(group, order)
        )
    dtype = torch.float64 if any(norm.dtype == torch.float64 for norm in norms) else torch.float32
    return torch.linalg.vector_norm(torch.stack([norm.to(device=device, dtype=dtype) for norm in norms]), order)


def per_tensor_dots(first: list[Tensor], second: list[Tensor]) -> list[Tensor]:
    """``<a_i, b_i>`` for each pair, as 0-d tensors (float32 or wider), without a host sync."""
    if len(first) != len(second):
        raise ValueError(f"per_tensor_dots: {len(first)} tensors against {len(second)}")
    return [
        torch.linalg.vecdot(a.reshape(-1).to(_wide(a.dtype)), b.reshape(-1).to(_wide(b.dtype)))
        for a, b in zip(first, second)
    ]
