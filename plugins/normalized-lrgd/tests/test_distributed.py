"""``normalize="grad_norm"`` under DDP and FSDP2: the suite's distributed checks, run on a second example.

The conformance suite runs its DDP and FSDP2 checks on the spec's example, which uses the
paper's ``normalize="loss"`` (the loss is all-reduced by ``reduce_loss``). The gradient-norm
variant reads ``||grad f||`` instead: under DDP the gradients are already averaged, under FSDP2
they are DTensor shards whose squared sums DTensor reduces across the mesh. These run the same
checks (2 gloo processes against one process on the global batch, 1e-10 in float64) on it.
"""

from __future__ import annotations

import pytest
from gradhub_normalized_lrgd import NORMALIZED_LRGD

import gradhub
from gradhub.testing.distributed import check_ddp_matches_single_process, check_fsdp2_matches_single_process


@pytest.mark.parametrize("check", [check_ddp_matches_single_process, check_fsdp2_matches_single_process])
def test_grad_norm_variant_matches_one_process(check) -> None:
    spec = gradhub.spec(NORMALIZED_LRGD.name).model_copy(
        update={"example": "gradhub_normalized_lrgd.examples:grad_norm_example"}
    )
    assert spec.capabilities.ddp.status == spec.capabilities.fsdp2.status == "tested"
    check(spec, None, None)
