"""Device-aware building blocks shared by plugins' hot paths.

* :mod:`gradhub.kernels.multitensor`: grouping tensors by device and dtype, batching
  same-shape tensors into one ``(k, rows, row_length)`` tensor, cache-sized blocks.
* :mod:`gradhub.kernels.reductions`: one norm over a whole tensor list, without a host sync; a
  tensor's extremes and finiteness in one pass (``extremes``, ``all_finite``).
* :mod:`gradhub.kernels.moments`: Adam's moment update and bias corrections over lists.
* :mod:`gradhub.kernels.functions`: calling a custom autograd Function without ``Function.apply``'s
  per-call signature binding (``direct_apply``).
* :mod:`gradhub.kernels.native`: hand-written C++ kernels compiled at first use (the fused
  paths), with ``csrc/gradhub_kernels.h`` for their sources.

The names below are imported on first use, so ``gradhub.kernels.native.toolchain`` can be
asked without importing torch.
"""

from gradhub.exports import lazy_exports

_EXPORTS = {
    **dict.fromkeys(
        (
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
        ),
        "gradhub.kernels.multitensor",
    ),
    **dict.fromkeys(("all_finite", "extremes", "global_norm"), "gradhub.kernels.reductions"),
    "direct_apply": "gradhub.kernels.functions",
    **dict.fromkeys(("adam_moments_", "adam_step_scalars", "addcdiv_"), "gradhub.kernels.moments"),
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
