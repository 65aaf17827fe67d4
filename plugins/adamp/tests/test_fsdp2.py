"""AdamP and SGDP under FSDP2 (2 gloo processes) equal one process on the global batch, projection included.

The conformance suite's FSDP2 check runs the spec's example, whose ``delta=0.1`` never fires
the projection on the check's MLP. Here: the same check with ``delta=2`` (both views fire)
fails for a fixture that sums the layer view over its local shard only, and one pair of
processes (spawned once, see ``adamp_fsdp2.py``) runs AdamP and SGDP on every path that can
meet DTensor shards; each must equal one process to 1e-10 in float64.
"""

from __future__ import annotations

import pytest
from adamp_fsdp2 import SCENARIOS, TOLERANCE, distributed_runs, single_process
from gradhub_adamp import ADAMP

from gradhub.errors import ConformanceError
from gradhub.testing.distributed import check_fsdp2_matches_single_process

FIXTURE = ADAMP.model_copy(
    update={
        "name": "adamp-local-layer-view",
        "target": "adamp_fsdp2:LocalLayerViewAdamP",
        "example": "adamp_fsdp2:projection_example",
    }
)


def test_the_fsdp2_check_fails_for_a_layer_view_over_the_local_shard() -> None:
    """The layer view's sums taken over each process's rows only: the check sees the parameters drift."""
    with pytest.raises(ConformanceError, match="differs from a one-process run over the same global batch"):
        check_fsdp2_matches_single_process(FIXTURE, None, None)


def _zero_gradient_warnings(messages: list[str]) -> list[str]:
    return [message for message in messages if "all-zero gradient" in message]


def _assert_matches_one_process(name: str) -> set[str]:
    """The scenario's parameters (and zero-gradient warnings) on both processes equal one process's.

    Returns the views that fired in the one process.
    """
    ranks = distributed_runs()
    for rank in ranks:
        assert "params" in rank[name], rank[name]
    expected, fired, warned = single_process(name)
    for rank in ranks:
        assert _zero_gradient_warnings(rank[name]["warnings"]) == _zero_gradient_warnings(warned)
        for index, (ours, theirs) in enumerate(zip(rank[name]["params"], expected, strict=True)):
            difference = float((ours - theirs).abs().max())
            assert difference <= TOLERANCE, f"{name}: parameter {index} differs by {difference:.3g} from one process"
    return fired


def test_adamp_passes_where_the_fixture_fails() -> None:
    """The fixture's problem and hyperparameters (the check's MLP, delta=2): both views fire, AdamP matches."""
    assert _assert_matches_one_process("adamp") >= {"channel", "layer"}


@pytest.mark.parametrize("name", [name for name in SCENARIOS if name not in ("adamp", "adamp-rows-split")])
def test_fsdp2_equals_one_process(name: str) -> None:
    fired = _assert_matches_one_process(name)
    assert "layer" in fired, f"the layer view never fired in {name}: the scenario checks less than it claims"
    if SCENARIOS[name][2].get("fused"):
        warned = [message for rank in distributed_runs() for message in rank[name]["warnings"]]
        assert any("FusedFallbackWarning" in message and "DTensor" in message for message in warned), warned


def test_a_zero_gradient_is_counted_over_processes() -> None:
    """One weight's whole gradient is zero: every process warns once for one weight, as one process does."""
    messages = _zero_gradient_warnings(single_process("adamp-a-zero-gradient")[2])
    assert len(messages) == 1 and "1 weight(s)" in messages[0], messages
    for rank in distributed_runs():
        assert _zero_gradient_warnings(rank["adamp-a-zero-gradient"]["warnings"]) == messages


def test_rows_split_across_processes_are_refused_by_name() -> None:
    """Sharded along dim 1 a process holds no whole row: the channel view cannot be decided locally."""
    for rank in distributed_runs():
        error = rank["adamp-rows-split"].get("error", "")
        assert error.startswith("UnsupportedInputError: adamp: unsupported DTensor placement"), error
        assert "Shard(dim=1)" in error and "Shard(0)" in error, error
