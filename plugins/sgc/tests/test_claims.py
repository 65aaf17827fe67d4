"""The claim check passes, and its criterion fails for deliberately wrong schemes."""

from __future__ import annotations

from gradhub_sgc import claims
from gradhub_sgc.schemes import MultiplexedSGC, SelectiveRepeatSGC, _MultiplexedSchedule
from gradhub_sgc.tasks import Schedule, Task


def test_sgc_total_time() -> None:
    result = claims.sgc_total_time()
    assert result.passed, result.report()
    assert result.measured["M-SGC / GC time"] <= 0.4 and result.measured["SR-SGC / GC time"] <= 0.7
    assert result.measured["stragglers in pattern"] > 100


class _NotAdaptive(MultiplexedSGC):
    """Wrong: D2 slots always hold D2 tasks; D1 work lost to a straggle is never redone."""

    def schedule(self, jobs: int | None = None) -> Schedule:
        return _FixedSlots(self, jobs)


class _FixedSlots(_MultiplexedSchedule):
    def _plan(self, r: int) -> list[Task]:
        W = self.scheme.W
        return [
            Task(job, w, "d1", r - job) if r - job < W - 1 else Task(job, w, "d2", r - job - (W - 1))
            for job in range(max(0, r - self.scheme.delay), r + 1)
            if self.has_job(job)
            for w in range(self.scheme.n_workers)
        ]


class _GCLoadMultiplexed(MultiplexedSGC):
    """Wrong: M-SGC that processes a whole GC task per mini-task (the load of GC with s = lambda)."""

    @property
    def load(self) -> float:
        return (self.lam + 1) / self.n_workers


class _NoRepeatSelective(SelectiveRepeatSGC):
    """Wrong: SR-SGC without the selective repeat (GC with s = 2 at lambda = 4)."""

    def schedule(self, jobs: int | None = None) -> Schedule:
        schedule = super().schedule(jobs)
        schedule._plan = lambda r: [  # type: ignore[method-assign]
            Task(r, w, "gc", w) for w in range(self.n_workers) if schedule.has_job(r)
        ]
        return schedule


def _with(name: str, scheme: object) -> dict:
    return {**claims.schemes(), name: scheme}


def test_the_criterion_fails_without_adaptive_multiplexing() -> None:
    result = claims.sgc_total_time(_with("m_sgc", _NotAdaptive(claims.N, claims.B, claims.W, claims.LAM)))
    assert not result.passed and result.measured["jobs late m_sgc"] > 0


def test_the_criterion_fails_for_a_multiplexed_scheme_with_gc_load() -> None:
    result = claims.sgc_total_time(_with("m_sgc", _GCLoadMultiplexed(claims.N, claims.B, claims.W, claims.LAM)))
    assert not result.passed and result.measured["M-SGC / GC time"] > 0.8


def test_the_criterion_fails_without_selective_repeat() -> None:
    result = claims.sgc_total_time(_with("sr_sgc", _NoRepeatSelective(claims.N, claims.B, claims.W, claims.LAM)))
    assert not result.passed and result.measured["jobs late sr_sgc"] > 0
