"""Device-aware building blocks shared by plugins' hot paths.

Multi-tensor helpers (grouping tensors by device and dtype, batching same-shape tensors
into one ``(k, rows, row_length)`` tensor) live in :mod:`gradhub.kernels.multitensor`.
"""

from gradhub.kernels.multitensor import (
    CACHE_BLOCK_BYTES,
    as_rows,
    cache_blocks,
    foreach_copy_,
    group_tensors,
    row_blocks,
    row_shape,
    same_shape_batches,
    write_back,
)

__all__ = [
    "CACHE_BLOCK_BYTES",
    "as_rows",
    "cache_blocks",
    "foreach_copy_",
    "group_tensors",
    "row_blocks",
    "row_shape",
    "same_shape_batches",
    "write_back",
]
