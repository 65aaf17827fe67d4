"""Reductions over tensor lists, without a host sync.

One norm over every gradient (normalised steps, clipping, a gradient-norm probe) is one
``torch._foreach_norm`` per (device, dtype) group, then one ``stack`` and one norm; the
result stays on the device, a 0-d tensor in float32 or wider (half-precision inputs are
reduced in float32).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradhub.kernels.multitensor import group_tensors

__all__ = ["global_norm"]


def _wide(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


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
