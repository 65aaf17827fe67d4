"""M-FAC under FSDP2 (2 gloo processes) equals one process on the global batch.

The suite's FSDP2 check fails for a fixture that solves with its own shard's window products
only; one pair of processes (spawned once, see ``mfac_fsdp2.py``) runs M-FAC on both paths and
through what meets DTensor shards (a wrapping window, the sparse mask, a gradient left None,
a NaN in one process's shard, a state_dict round trip, a plain tensor in the group, rows split
across processes); each must equal one process to 1e-10 in float64.
"""

from __future__ import annotations

import pytest
from gradhub_mfac import MFAC
from mfac_fsdp2 import SCENARIOS, TOLERANCE, distributed_runs, single_process

from gradhub.errors import ConformanceError
from gradhub.testing.distributed import check_fsdp2_matches_single_process

FIXTURE = MFAC.model_copy(update={"name": "mfac-local-products", "target": "mfac_fsdp2:LocalProductsMFAC"})


def test_the_fsdp2_check_fails_for_window_products_over_the_local_shard() -> None:
    """G g summed over each process's shard only: the check sees the parameters drift."""
    with pytest.raises(ConformanceError, match="differs from a one-process run over the same global batch"):
        check_fsdp2_matches_single_process(FIXTURE, None, None)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_fsdp2_equals_one_process(name: str) -> None:
    ranks = distributed_runs()
    expected = single_process(name)
    for rank in ranks:
        assert "params" in rank[name], rank[name]
        assert rank[name]["skipped"] == expected["skipped"]
        for index, (ours, theirs) in enumerate(zip(rank[name]["params"], expected["params"], strict=True)):
            difference = float((ours - theirs).abs().max())
            assert difference <= TOLERANCE, f"{name}: parameter {index} differs by {difference:.3g} from one process"


def test_a_non_finite_gradient_on_one_process_skips_the_step_on_both() -> None:
    """Process 0 alone sees the NaN; both skip the step and name the parameter, as one process does."""
    name = "mfac-non-finite-on-one-process"
    expected = [message for message in single_process(name)["warnings"] if "skipped" in message]
    assert len(expected) == 1 and "parameter 0 of param group 0" in expected[0], expected
    for rank in distributed_runs():
        assert rank[name]["skipped"] == [1]
        assert [message for message in rank[name]["warnings"] if "skipped" in message] == expected
