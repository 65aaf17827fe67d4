"""SR-SGC and M-SGC: the formulas of Sec. 3, hand-checked schedules, deadlines, exact runs, and wrong variants."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from gradhub_sgc.codes import GradientCode
from gradhub_sgc.runs import gradient_coding, m_sgc, run_scheme, sr_sgc
from gradhub_sgc.schemes import MultiplexedSGC, SelectiveRepeatSGC, _MultiplexedSchedule, _SelectiveRepeatSchedule
from gradhub_sgc.stragglers import bursty_pattern
from gradhub_sgc.tasks import Task

from gradhub.errors import HyperparameterError

# (n, B, W, lambda) with (W - 1) % B == 0
PARAMETERS = [(20, 1, 3, 4), (10, 2, 5, 3), (16, 3, 7, 5), (6, 1, 2, 6), (8, 2, 3, 2), (5, 1, 4, 5), (12, 4, 9, 7)]


@pytest.mark.parametrize("n,B,W,lam", PARAMETERS)
def test_selective_repeat_tolerance_delay_and_load(n: int, B: int, W: int, lam: int) -> None:
    scheme = SelectiveRepeatSGC(n, B, W, lam)
    s = math.ceil(B * lam / (W - 1 + B))
    assert scheme.s == s and scheme.code.s == s
    assert scheme.delay == B and scheme.decodable_job(17) == 17 - B
    assert scheme.load == pytest.approx((s + 1) / n)


@pytest.mark.parametrize("n,B,W,lam", [*PARAMETERS, (7, 2, 4, 3), (9, 3, 5, 9)])
def test_multiplexed_delay_load_and_chunk_sizes(n: int, B: int, W: int, lam: int) -> None:
    scheme = MultiplexedSGC(n, B, W, lam)
    assert scheme.delay == W - 2 + B and scheme.slots == W - 1 + B and scheme.decodable_job(17) == 17 - (W - 2 + B)
    if lam < n:
        expected = (lam + 1) * (W - 1 + B) / (n * (B + (W - 1) * (lam + 1)))
    else:
        expected = (W - 1 + B) / (n * (W - 1))
    assert scheme.load == pytest.approx(expected, rel=1e-14)
    weights = scheme.chunk_weights()
    assert float(weights.sum()) == pytest.approx(1.0, rel=1e-14)
    # every mini-task costs the same: a D1 mini-chunk, or lambda + 1 chunks of a D2 group
    costs = []
    for worker in range(n):
        tasks = [Task(0, worker, "d1", index) for index in range(W - 1)]
        tasks += [Task(0, worker, "d2", group) for group in range(B)] if lam < n else []
        costs += ((scheme.coefficients(tasks) != 0).to(torch.float64) @ weights).tolist()
    assert max(costs) == pytest.approx(min(costs), rel=1e-12)
    # the load is one worker's W - 1 + B mini-tasks of a round
    assert scheme.slots * max(costs) == pytest.approx(scheme.load, rel=1e-12)


def test_the_claim_check_example_loads() -> None:
    assert GradientCode(20, 4).load == 0.25
    assert SelectiveRepeatSGC(20, 1, 3, 4).load == pytest.approx(0.15)
    assert MultiplexedSGC(20, 1, 3, 4).load == pytest.approx(15 / 220)


def test_selective_repeat_rejects_w_minus_one_not_divisible_by_b() -> None:
    with pytest.raises(HyperparameterError, match=r"sr_sgc.*\(W - 1\) % B must be 0.*W=4, B=2"):
        SelectiveRepeatSGC(8, 2, 4, 2)
    MultiplexedSGC(8, 2, 4, 2)  # M-SGC has no such constraint


def test_selective_repeat_hand_schedule() -> None:
    """n = 4, (B, W, lambda) = (1, 3, 2), s = 1: workers 1 and 3 straggle in round 0, so v - s = 1 of
    them (the lowest index, 1) recomputes job 0 in round 1; job 0 then has 3 >= n - s tasks."""
    scheme = SelectiveRepeatSGC(4, 1, 3, 2)
    history = torch.tensor([[0], [1], [0], [1]], dtype=torch.bool)
    assert scheme.tasks_for_round(0) == {0: 0, 1: 0, 2: 0, 3: 0}
    assert scheme.tasks_for_round(1, history) == {0: 1, 1: 0, 2: 1, 3: 1}
    two = torch.tensor([[0, 0], [1, 0], [0, 0], [1, 0]], dtype=torch.bool)
    assert scheme.tasks_for_round(2, two) == {0: 2, 1: 2, 2: 2, 3: 2}  # job 1 complete: no repeat
    assert scheme.tasks_for_round(2, two, jobs=2) == {}  # no job 2; job 1 needs nothing
    schedule = scheme.replay(two, 2)
    assert schedule.decodable(0) and schedule.decodable(1)
    assert sorted(task.worker for task in schedule.delivered(0)) == [0, 1, 2]


def test_multiplexed_hand_schedule() -> None:
    """n = 4, (B, W, lambda) = (1, 3, 2): worker 1 straggles in round 0 (slot 0 of job 0): it retries its first
    D1 mini-task in round 1 and redoes the second in round 2, job 0's D2 slot (adaptive multiplexing)."""
    scheme = MultiplexedSGC(4, 1, 3, 2)
    first = scheme.tasks_for_round(0)
    assert first == {w: [Task(0, w, "d1", 0)] for w in range(4)}
    history = torch.tensor([[0, 0], [1, 0], [0, 0], [0, 0]], dtype=torch.bool)
    second = scheme.tasks_for_round(1, history[:, :1])
    assert second[0] == [Task(0, 0, "d1", 1), Task(1, 0, "d1", 0)]
    assert second[1] == [Task(0, 1, "d1", 0), Task(1, 1, "d1", 0)]
    third = scheme.tasks_for_round(2, history)
    assert third[0][0] == Task(0, 0, "d2", 0) and third[1][0] == Task(0, 1, "d1", 1)
    assert [task.job for task in third[2]] == [0, 1, 2]  # three jobs in flight: W - 1 + B mini-tasks
    schedule = scheme.replay(torch.cat([history, torch.zeros(4, 1, dtype=torch.bool)], 1), 3)
    assert schedule.decodable(0)  # worker 1's two D1 mini-tasks arrived; D2 group 0 has 3 >= n - lambda results
    assert sorted(task.worker for task in schedule.delivered(0) if task.part == "d2") == [0, 2, 3]


def _patterns() -> list[tuple[tuple[int, int, int, int], torch.Tensor]]:
    cases = []
    for index, (n, B, W, lam) in enumerate([(6, 1, 3, 3), (8, 2, 5, 4), (5, 1, 2, 2), (7, 3, 7, 4), (6, 2, 3, 6)]):
        for seed in range(3):
            cases.append(((n, B, W, lam), bursty_pattern(n, 40 + W + B, B, W, lam, 0.4, seed=10 * index + seed)))
    return cases


@pytest.mark.parametrize("scheme_class", [SelectiveRepeatSGC, MultiplexedSGC])
def test_every_job_decodable_at_its_deadline_and_never_later(scheme_class: type) -> None:
    """On random bursty patterns: job t is decodable at round t + T, and no task of job t is planned after it."""
    for (n, B, W, lam), pattern in _patterns():
        if scheme_class is SelectiveRepeatSGC and (W - 1) % B:
            continue
        scheme = scheme_class(n, B, W, lam)
        jobs = 40
        schedule = scheme.schedule(jobs)
        for r in range(jobs + scheme.delay):
            for task in schedule.tasks(r):
                assert task.job <= r <= task.job + scheme.delay, (task, r)
            schedule.record(r, ~pattern[:, r])
            job = scheme.decodable_job(r)
            if job >= 0:
                assert schedule.decodable(job), (scheme, job, pattern[:, job : r + 1].int())


def test_selective_repeat_without_repeats_misses_a_deadline() -> None:
    """Wrong variant: SR-SGC that never repeats (plain GC with s = 1) leaves job 0 with 2 < n - s tasks."""

    class NoRepeat(_SelectiveRepeatSchedule):
        def _plan(self, r: int) -> list[Task]:
            return [Task(r, w, "gc", w) for w in range(self.scheme.n_workers)] if self.has_job(r) else []

    scheme = SelectiveRepeatSGC(4, 1, 3, 2)
    pattern = torch.tensor([[0, 0], [1, 0], [0, 0], [1, 0]], dtype=torch.bool)
    right, wrong = scheme.schedule(1), NoRepeat(scheme, 1)
    for r in range(2):
        right.record(r, ~pattern[:, r])
        wrong.record(r, ~pattern[:, r])
    assert right.decodable(0) and not wrong.decodable(0)


def test_multiplexed_without_adaptive_multiplexing_misses_a_deadline() -> None:
    """Wrong variant: D2 slots always hold D2 tasks (no redo of lost D1 work): job 0 lacks a D1 mini-task."""

    class Fixed(_MultiplexedSchedule):
        def _plan(self, r: int) -> list[Task]:
            W = self.scheme.W
            return [
                Task(job, w, "d1", r - job) if r - job < W - 1 else Task(job, w, "d2", r - job - (W - 1))
                for job in range(max(0, r - self.scheme.delay), r + 1)
                if self.has_job(job)
                for w in range(self.scheme.n_workers)
            ]

        def _deliver(self, task: Task) -> None:
            if task.part == "d1":
                self._d1_done(task.job)[task.worker] += 1
            else:
                self._d2_done(task.job)[task.index] += 1

    scheme = MultiplexedSGC(4, 1, 3, 2)
    pattern = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 0, 0], [0, 0, 0]], dtype=torch.bool)
    right, wrong = scheme.schedule(1), Fixed(scheme, 1)
    for r in range(3):
        right.record(r, ~pattern[:, r])
        wrong.record(r, ~pattern[:, r])
    assert right.decodable(0) and not wrong.decodable(0)


@pytest.mark.parametrize("name", ["gc", "sr_sgc", "m_sgc"])
def test_runs_decode_the_uncoded_sum_in_every_round(name: str) -> None:
    n, B, W, lam = 6, 2, 5, 3
    scheme = {"gc": GradientCode(n, lam), "sr_sgc": SelectiveRepeatSGC(n, B, W, lam)}.get(name) or MultiplexedSGC(
        n, B, W, lam
    )
    jobs = 12
    pattern = bursty_pattern(n, jobs + scheme.delay, B, W, lam, 0.4, seed=5)
    assert int(pattern.sum()) >= 8
    generator = torch.Generator(device="cpu").manual_seed(0)
    gradients = torch.randn(jobs, scheme.n_chunks, 2, 3, generator=generator, dtype=torch.float64)
    states = list(run_scheme(scheme, gradients, pattern))
    last = states[-1]
    assert len(states) == jobs + scheme.delay + 1
    assert last.extras["decoded_round"].tolist() == [t + scheme.delay for t in range(jobs)]
    torch.testing.assert_close(last.solution, gradients.sum(1), rtol=1e-12, atol=1e-12)
    residuals = [state.residual for state in states]
    assert residuals[0] == 1.0 and residuals[-1] == 0.0
    assert all(b <= a for a, b in itertools.pairwise(residuals))


def test_solvers_stop_on_tol_and_max_iter() -> None:
    scheme = MultiplexedSGC(4, 1, 3, 2)
    gradients = torch.randn(6, scheme.n_chunks, 3, dtype=torch.float64)
    full = m_sgc(gradients, n_workers=4, B=1, W=3, lam=2)
    assert full.converged and full.iterations == 8 and full.residuals.tolist()[-1] == 0.0
    half = m_sgc(gradients, n_workers=4, B=1, W=3, lam=2, tol=0.5)
    assert half.converged and half.iterations == 5 and half.residuals[-1] == 0.5  # jobs 0..2 decoded
    capped = sr_sgc(gradients[:, :4], n_workers=4, B=1, W=3, lam=2, max_iter=3)
    assert not capped.converged and capped.iterations == 3
    assert torch.equal(capped.decoded_round, torch.tensor([1, 2, -1, -1, -1, -1]))
    assert torch.equal(capped.solution[2:], torch.zeros(4, 3, dtype=torch.float64))
    plain = gradient_coding(gradients[:, :4], n_workers=4, s=1, tol=0.0)
    assert plain.converged and plain.iterations == 6 and plain.delay == 0
