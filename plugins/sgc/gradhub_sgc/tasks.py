"""What the three schemes share: coded tasks, the master's per-run bookkeeping, the sequential-scheme interface.

Paper: Krishnan, Ebrahimi, Khisti, ICLR 2023, arXiv 2211.13802, Sec. 2 (the sequential setting). Job t
(the gradient of a data set D(t): J models trained together, or J mini-batches) starts in round t and
must be decoded by the master at the end of round t + T, T the scheme's delay; in every round a worker
either returns all its results or straggles (returns nothing). Every job's data is split into the
scheme's K chunks; a *task* is a linear combination of one job's chunk gradients (its coefficients are
a row of the scheme's encoding), computed by one worker in one round.

A :class:`Schedule` is the master's bookkeeping over one run: before round r it says which task each
worker computes (:meth:`Schedule.tasks`, a function of which results came back in earlier rounds
only), after round r it records who returned (:meth:`Schedule.record`), and it says whether a job can
be decoded from what was delivered (:meth:`Schedule.decodable`). It keeps host-side integers: it is the
master's control logic, not tensor arithmetic (encoding and decoding are batched tensor operations).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from gradhub.errors import UnsupportedInputError
from gradhub_sgc.stragglers import StragglerModelError, Violation, require_pattern

__all__ = ["Schedule", "SequentialScheme", "Task", "chunk_sizes"]

Part = Literal["gc", "d1", "d2"]


@dataclass(frozen=True, order=True)
class Task:
    """One coded task: worker ``worker`` computes part ``part``, number ``index``, of job ``job``.

    ``part``: ``"gc"`` a gradient-code task (``index``: the row of the code's encoding matrix, the
    worker's own); ``"d1"`` an uncoded M-SGC mini-task (``index``: which of the worker's W - 1 D1
    mini-chunks); ``"d2"`` an M-SGC coded task of D2 group ``index``.
    """

    job: int
    worker: int
    part: Part
    index: int


class Schedule(ABC):
    """The master's bookkeeping over one run of ``jobs`` jobs (None: a new job every round, no end)."""

    def __init__(self, scheme: SequentialScheme, jobs: int | None) -> None:
        self.scheme = scheme
        self.jobs = jobs
        self.round = 0
        """The next round to plan."""
        self._planned: list[Task] | None = None
        self._delivered: dict[int, list[Task]] = {}

    def has_job(self, job: int) -> bool:
        return job >= 0 and (self.jobs is None or job < self.jobs)

    def tasks(self, r: int) -> list[Task]:
        """The tasks of round ``r`` (every worker's; a worker may have none, M-SGC workers have several)."""
        if r != self.round:
            raise ValueError(f"{self.scheme.method}: the schedule is at round {self.round}; asked for round {r}")
        if self._planned is None:
            self._planned = self._plan(r)
        return list(self._planned)

    def record(self, r: int, returned: Tensor | Sequence[bool]) -> list[Task]:
        """Record that the workers with ``returned[i]`` True returned in round ``r``; the tasks delivered."""
        planned = self.tasks(r)
        came_back = [bool(flag) for flag in (returned.tolist() if isinstance(returned, Tensor) else returned)]
        delivered = [task for task in planned if came_back[task.worker]]
        for task in delivered:
            self._deliver(task)
            self._delivered.setdefault(task.job, []).append(task)
        self.round += 1
        self._planned = None
        return delivered

    def delivered(self, job: int) -> list[Task]:
        """The tasks of ``job`` delivered so far."""
        return list(self._delivered.get(job, []))

    @abstractmethod
    def _plan(self, r: int) -> list[Task]: ...

    @abstractmethod
    def _deliver(self, task: Task) -> None: ...

    @abstractmethod
    def decodable(self, job: int) -> bool:
        """Whether the tasks delivered so far determine job ``job``'s gradient."""


class SequentialScheme(ABC):
    """A coded scheme over a job sequence: its K chunks, its tasks' coefficients, its delay, its schedule."""

    method: str
    n_workers: int
    delay: int
    """T: job t is decoded at the end of round t + T."""

    @property
    @abstractmethod
    def n_chunks(self) -> int:
        """K: the chunks every job's data is split into."""

    @property
    @abstractmethod
    def load(self) -> float:
        """The most data (a fraction of one job's) a worker processes in a round: the normalised load."""

    @abstractmethod
    def chunk_weights(self, device: torch.device | str | None = None) -> Tensor:
        """``(K,)`` float64: each chunk's share of a job's data (they sum to 1; equal-cost mini-tasks)."""

    @abstractmethod
    def coefficients(self, tasks: Sequence[Task], device: torch.device | str | None = None) -> Tensor:
        """``(len(tasks), K)`` float64: the combination of its job's chunk gradients each task computes."""

    @abstractmethod
    def schedule(self, jobs: int | None = None) -> Schedule:
        """A fresh :class:`Schedule` for a run over ``jobs`` jobs."""

    @abstractmethod
    def decode_tasks(self, job: int, results: Mapping[Task, Tensor]) -> Tensor:
        """Job ``job``'s gradient (the sum of its K chunk gradients) from its delivered tasks' results."""

    @abstractmethod
    def violations(self, pattern: Tensor) -> list[Violation]:
        """Where a straggler pattern ``(n, rounds)`` leaves the straggler model the scheme is designed for."""

    @abstractmethod
    def round_conforms(self, history: Tensor, candidate: Tensor) -> bool:
        """Whether stragglers ``candidate`` in the round after ``history`` keep the scheme's model."""

    @property
    @abstractmethod
    def model(self) -> str:
        """The straggler model in words, for messages."""

    def rounds(self, jobs: int) -> int:
        """Rounds a run over ``jobs`` jobs takes: J + T."""
        return jobs + self.delay

    def decodable_job(self, r: int) -> int:
        """The job decoded at the end of round ``r``: r - T (negative: none yet)."""
        return r - self.delay

    def require_conforming(self, pattern: Tensor) -> None:
        """Raise :class:`~gradhub_sgc.stragglers.StragglerModelError` (round and worker named) off the model."""
        pattern = require_pattern(self.method, pattern, self.n_workers)
        violations = self.violations(pattern)
        if violations:
            raise StragglerModelError(self.method, violations[0], self.model)

    def replay(self, history: Tensor | None, r: int, jobs: int | None = None) -> Schedule:
        """A schedule brought to round ``r`` by the straggler pattern ``history`` of rounds ``[0, r)``."""
        schedule = self.schedule(jobs)
        if r:
            history = require_pattern(self.method, history, self.n_workers, r)
            for q in range(r):
                schedule.tasks(q)
                schedule.record(q, ~history[:, q])
        return schedule

    def _check_results(self, job: int, results: Mapping[object, Tensor]) -> None:
        for key, value in results.items():
            if not isinstance(value, Tensor):
                raise UnsupportedInputError(
                    self.method, f"result of {key!r} for job {job}", type(value).__name__, "results are tensors"
                )


def chunk_sizes(scheme: SequentialScheme, examples: int, method: str | None = None) -> list[int]:
    """How many of a job's ``examples`` go to each of the scheme's K chunks: one each, and the other
    N - K shared in proportion to :meth:`SequentialScheme.chunk_weights` (largest remainders)."""
    chunks = scheme.n_chunks
    if examples < chunks:
        raise UnsupportedInputError(
            method or scheme.method,
            "examples per job",
            examples,
            f"{scheme!r} splits every job into K = {chunks} chunks of at least one example: at least {chunks}",
        )
    share = scheme.chunk_weights() * (examples - chunks)
    sizes = share.floor()
    left = examples - chunks - int(sizes.sum())
    order = torch.argsort(share - sizes, descending=True, stable=True)
    sizes[order[:left]] += 1
    return [1 + int(size) for size in sizes.tolist()]
