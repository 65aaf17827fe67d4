"""The simulator against hand-computed cases, its vectorised path against the round-by-round rule, and the probe."""

from __future__ import annotations

import pytest
import torch
from gradhub_sgc.codes import GradientCode
from gradhub_sgc.examples import squared_error, tiny_regression_jobs
from gradhub_sgc.schemes import MultiplexedSGC, SelectiveRepeatSGC
from gradhub_sgc.simulator import _wait_out, bursty_stragglers, simulate, synthetic_delays
from gradhub_sgc.stragglers import bursty_pattern


def test_gradient_coding_by_hand() -> None:
    """n = 3, s = 1, mu = 1: the master waits 2 x the fastest delay unless more than s workers are slower.

    round 0: delays (1, 1.5, 1.2): nobody slower than 2 -> 2.0
    round 1: delays (1, 3.0, 2.5): workers 1 and 2 slower, 2 > s -> wait for everyone: 3.0
    round 2: delays (1, 4.0, 1.1): worker 1 slower, 1 <= s -> 2.0      total 7.0, one wait
    """
    delays = torch.tensor([[1.0, 1.0, 1.0], [1.5, 3.0, 4.0], [1.2, 2.5, 1.1]], dtype=torch.float64)
    result = simulate(GradientCode(3, 1), delays, mu=1.0)
    assert result["total_time"] == pytest.approx(7.0)
    assert result["per_round"].tolist() == [2.0, 3.0, 2.0]
    assert result["n_waits"] == 1 and result["waited"].tolist() == [False, True, False]
    assert result["stragglers"].int().tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 0]]
    assert result["deadline_met"] and result["jobs"] == 3 and result["rounds"] == 3


def test_selective_repeat_by_hand() -> None:
    """n = 3, (B, W, lambda) = (1, 2, 1) (s = 1, T = 1), mu = 1, 2 jobs over 3 rounds:

    round 0: (5, 1, 1): worker 0 straggles (model kept) -> 2.0
    round 1: (5, 1, 1.5): worker 0 again, right after its burst: temporal rule broken -> wait for all: 5.0
    round 2: (1, 1, 9): worker 2 straggles, window [1, 2] had no straggler -> 2.0      total 9.0
    """
    delays = torch.tensor([[5.0, 5.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.5, 9.0]], dtype=torch.float64)
    result = simulate(SelectiveRepeatSGC(3, 1, 2, 1), delays, mu=1.0)
    assert result["per_round"].tolist() == [2.0, 5.0, 2.0] and result["total_time"] == pytest.approx(9.0)
    assert result["stragglers"].int().tolist() == [[1, 0, 0], [0, 0, 0], [0, 0, 1]]
    assert result["n_waits"] == 1 and result["decoded"].tolist() == [True, True]
    # mu = 0: the master waits only for the fastest; 1.5 > 1 makes worker 2 a straggler in round 1 as well
    strict = simulate(SelectiveRepeatSGC(3, 1, 2, 1), delays, mu=0.0)
    assert strict["per_round"].tolist() == [1.0, 5.0, 1.0]


def test_the_fast_path_equals_the_round_by_round_rule() -> None:
    """When every round keeps the model the vectorised result is the master's rule replayed round by round."""
    for scheme in (GradientCode(8, 2), SelectiveRepeatSGC(8, 1, 3, 2), MultiplexedSGC(8, 1, 3, 2)):
        pattern = bursty_pattern(8, 50, 1, 3, 2, 0.2, seed=1)
        delays = synthetic_delays(pattern, scheme.load, generator=torch.Generator().manual_seed(1))
        result = simulate(scheme, delays, jobs=50 - scheme.delay)
        slow = delays[:, : result["rounds"]] > 2 * delays[:, : result["rounds"]].min(0).values
        replayed, waited = _wait_out(scheme, slow)
        assert torch.equal(result["stragglers"], replayed) and not waited.any() and result["n_waits"] == 0
        assert torch.equal(result["stragglers"], pattern[:, : result["rounds"]])  # x 5 is always caught
        assert result["deadline_met"]


def test_unmodelled_stragglers_are_waited_out_and_the_jobs_still_decode() -> None:
    """Delays that leave the model (every worker slow at random): rounds are waited out, nothing is late."""
    generator = torch.Generator().manual_seed(0)
    delays = 1 + 3 * (torch.rand(6, 60, generator=generator, dtype=torch.float64) < 0.3).double()
    for scheme in (GradientCode(6, 1), SelectiveRepeatSGC(6, 1, 3, 2), MultiplexedSGC(6, 1, 3, 2)):
        result = simulate(scheme, delays, mu=0.5)
        assert result["n_waits"] > 0 and result["deadline_met"]
        assert not scheme.violations(result["stragglers"])
        full = delays[:, : result["rounds"]]
        assert torch.equal(result["per_round"][result["waited"]], full.max(0).values[result["waited"]])


def test_simulate_jobs_and_shapes() -> None:
    scheme = MultiplexedSGC(4, 1, 3, 2)
    delays = torch.ones(4, 10, dtype=torch.float64)
    assert simulate(scheme, delays)["jobs"] == 8 and simulate(scheme, delays, jobs=3)["rounds"] == 5
    with pytest.raises(ValueError, match=r"m_sgc.*delays shape.*J >= 1"):
        simulate(scheme, delays, jobs=9)
    with pytest.raises(ValueError, match=r"m_sgc.*delays shape"):
        simulate(scheme, torch.ones(5, 10, dtype=torch.float64))
    with pytest.raises(ValueError, match="mu"):
        simulate(scheme, delays, mu=-1.0)
    with pytest.raises(ValueError, match="delays values"):
        simulate(scheme, torch.full((4, 10), float("nan"), dtype=torch.float64))


@pytest.mark.parametrize("name", ["gc", "sr_sgc", "m_sgc"])
def test_the_probe_measures_time_and_exactness_on_a_model(name: str) -> None:
    example = tiny_regression_jobs(dtype=torch.float64)
    hparams = {**example.hparams, "scheme": name, "p": 0.4}
    report = bursty_stragglers(example.model, *example.args, generator=torch.Generator().manual_seed(0), **hparams)
    assert report.decoded.all() and int(report.stragglers.sum()) > 0
    assert float(report.relative_error) < 1e-12
    model, inputs, targets = example.model, example.args[1], example.args[2]
    for job in range(inputs.shape[0]):  # the uncoded gradient of the job's summed loss
        grads = torch.autograd.grad(squared_error(model(inputs[job]), targets[job]), list(model.parameters()))
        torch.testing.assert_close(report.gradients[job], torch.cat([g.reshape(-1) for g in grads]))
    assert float(report.total_time) == pytest.approx(float(report.per_round.sum()))
    assert report.load == {"gc": 3 / 4, "sr_sgc": 2 / 4, "m_sgc": 9 / 28}[name]
