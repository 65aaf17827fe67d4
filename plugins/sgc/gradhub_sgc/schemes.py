"""The sequential gradient coding schedulers: selective-repeat SGC and multiplexed SGC.

Paper: Krishnan, Ebrahimi, Khisti, "Sequential Gradient Coding For Straggler Mitigation", ICLR 2023,
arXiv 2211.13802: SR-SGC (Sec. 3.1) and M-SGC (Sec. 3.2), both designed for the (B, W, lambda)-bursty
straggler model. Official code: mamaj/Sequential-Gradient-Coding(-2),
``2_find_runtimes/analyze_delay_profiles/{selective_repeat_sgc,multiplexed_sgc}.py``, whose master
bookkeeping (who computes what in which round, when a job is decodable) is reproduced here; the
official code stops at that bookkeeping, gradhub adds the real encoding and decoding of gradients.

**SR-SGC** (delay T = B, load (s + 1)/n). A gradient code tolerating s = ceil(B lambda / (W - 1 + B))
stragglers per round. In round r every worker computes its GC task of job r, except that when job
r - B lacks v > s of its n tasks (their workers straggled in round r - B, or were repeating then),
v - s of those workers (the lowest indices, as the official code) recompute their job-(r - B) task in
round r instead. Job t is decoded at the end of round t + B from the >= n - s of its tasks delivered in
rounds t and t + B.

**M-SGC** (delay T = W - 2 + B). A job's data is split into D1, shared uncoded among the workers (each
worker's share in W - 1 mini-chunks), and D2, split into B groups each coded by a gradient code
tolerating lambda stragglers (none when lambda = n: D2 is empty). Job t occupies a diagonal: its slot m
(m = 0 .. W - 2 + B) is processed in round t + m, so every round a worker runs W - 1 + B mini-tasks, one
per job in flight. Slots 0 .. W - 2 hold D1 mini-tasks; slot W - 1 + j holds the worker's coded task of
D2 group j, unless the worker still owes D1 mini-tasks of job t (it straggled in an earlier slot):
then it redoes the next D1 mini-task there (the official token rule, adaptive multiplexing). Job t is
decodable at round t + W - 2 + B when every worker delivered its W - 1 D1 mini-tasks and every D2
group has >= n - lambda coded results. The sizes make every mini-task cost the same: a D1 mini-chunk is
(lambda + 1)/(n (B + (W - 1)(lambda + 1))) of a job, a D2 chunk 1/(n (B + (W - 1)(lambda + 1))), so a
coded D2 task (lambda + 1 chunks) costs one D1 mini-chunk and the load is
(lambda + 1)(W - 1 + B) / (n (B + (W - 1)(lambda + 1))) (lambda < n), (W - 1 + B)/(n (W - 1)) (lambda = n).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import validated
from gradhub_sgc import M_SGC, SR_SGC, BurstyParameters, SelectiveRepeatParameters, sr_sgc_s
from gradhub_sgc.codes import GradientCode
from gradhub_sgc.stragglers import Violation, bursty_round_conforms, bursty_violations
from gradhub_sgc.tasks import Schedule, SequentialScheme, Task

__all__ = ["MultiplexedSGC", "SelectiveRepeatSGC"]


class _Bursty(SequentialScheme):
    """What the two SGC schemes share: the (B, W, lambda)-bursty model."""

    n_workers: int
    B: int
    W: int
    lam: int

    @property
    def model(self) -> str:
        return f"(B={self.B}, W={self.W}, lam={self.lam})-bursty model"

    def violations(self, pattern: Tensor) -> list[Violation]:
        return bursty_violations(pattern, self.B, self.W, self.lam)

    def round_conforms(self, history: Tensor, candidate: Tensor) -> bool:
        return bursty_round_conforms(history, candidate, self.B, self.W, self.lam)


@validated(SR_SGC.name, SelectiveRepeatParameters)
class SelectiveRepeatSGC(_Bursty):
    """SR-SGC (Sec. 3.1): GC with s = ceil(B lambda/(W - 1 + B)), missing tasks repeated B rounds later."""

    method = SR_SGC.name

    def __init__(self, n_workers: int, B: int, W: int, lam: int) -> None:
        self.n_workers, self.B, self.W, self.lam = n_workers, B, W, lam
        self.s = sr_sgc_s(B, W, lam)
        self.delay = B
        self.code = GradientCode(n_workers, self.s)
        """The per-round gradient code (FRC when (s + 1) | n, else CRC with seed 0)."""

    def __repr__(self) -> str:
        return f"SelectiveRepeatSGC(n_workers={self.n_workers}, B={self.B}, W={self.W}, lam={self.lam})"

    @property
    def n_chunks(self) -> int:
        return self.n_workers

    @property
    def load(self) -> float:
        """(s + 1)/n: a repeated task replaces the round's own task, it is not added to it."""
        return self.code.load

    def chunk_weights(self, device: torch.device | str | None = None) -> Tensor:
        return self.code.chunk_weights(device)

    def coefficients(self, tasks: Sequence[Task], device: torch.device | str | None = None) -> Tensor:
        return self.code.coefficients(tasks, device)

    def schedule(self, jobs: int | None = None) -> Schedule:
        return _SelectiveRepeatSchedule(self, jobs)

    def tasks_for_round(self, r: int, history: Tensor | None = None, jobs: int | None = None) -> dict[int, int]:
        """``{worker: job}`` in round ``r`` after the straggler pattern ``history`` of rounds ``[0, r)``.

        Job r for everyone, but v - s of the v > s workers whose job-(r - B) task is missing compute
        that task again (lowest indices first). Without ``jobs`` a job starts every round.
        """
        return {task.worker: task.job for task in self.replay(history, r, jobs).tasks(r)}

    def decode(self, job: int, results: Mapping[int, Tensor] | Mapping[Task, Tensor]) -> Tensor:
        """Job ``job``'s gradient from ``{worker: message}`` (or ``{Task: message}``) of >= n - s workers."""
        self._check_results(job, results)
        by_worker = {(key.worker if isinstance(key, Task) else key): value for key, value in results.items()}
        if len(by_worker) < self.n_workers - self.s:
            missing = sorted(set(range(self.n_workers)) - set(by_worker))
            raise UnsupportedInputError(
                self.method,
                f"results of job {job}",
                f"{len(by_worker)} of n={self.n_workers} tasks (missing workers {missing})",
                f"SR-SGC decodes a job from at least n - s = {self.n_workers - self.s} of its tasks (s={self.s})",
            )
        return self.code.decode(by_worker)

    def decode_tasks(self, job: int, results: Mapping[Task, Tensor]) -> Tensor:
        return self.decode(job, results)


class _SelectiveRepeatSchedule(Schedule):
    scheme: SelectiveRepeatSGC

    def __init__(self, scheme: SelectiveRepeatSGC, jobs: int | None) -> None:
        super().__init__(scheme, jobs)
        self._arrived: dict[int, list[bool]] = {}
        """Per job: which workers' tasks were delivered."""
        self.repeats = 0
        """Tasks recomputed so far (v - s per round with v > s)."""

    def _arrivals(self, job: int) -> list[bool]:
        return self._arrived.setdefault(job, [False] * self.scheme.n_workers)

    def _plan(self, r: int) -> list[Task]:
        n, s, B = self.scheme.n_workers, self.scheme.s, self.scheme.B
        assigned = [r if self.has_job(r) else -1] * n
        earlier = r - B
        if self.has_job(earlier):
            missing = [worker for worker, came in enumerate(self._arrivals(earlier)) if not came]
            if len(missing) > s:  # official: the first v - s of them repeat
                for worker in missing[: len(missing) - s]:
                    assigned[worker] = earlier
                self.repeats += len(missing) - s
        return [Task(job, worker, "gc", worker) for worker, job in enumerate(assigned) if job >= 0]

    def _deliver(self, task: Task) -> None:
        self._arrivals(task.job)[task.worker] = True

    def decodable(self, job: int) -> bool:
        return sum(self._arrivals(job)) >= self.scheme.n_workers - self.scheme.s


@validated(M_SGC.name, BurstyParameters)
class MultiplexedSGC(_Bursty):
    """M-SGC (Sec. 3.2): uncoded D1 mini-tasks and B GC-coded D2 groups on a diagonal of W - 1 + B rounds."""

    method = M_SGC.name

    def __init__(self, n_workers: int, B: int, W: int, lam: int) -> None:
        self.n_workers, self.B, self.W, self.lam = n_workers, B, W, lam
        self.delay = W - 2 + B
        self.slots = W - 1 + B
        """Mini-tasks per worker per round; slot m of job t runs in round t + m."""
        self.code = GradientCode(n_workers, lam) if lam < n_workers else None
        """The code of every D2 group (tolerates lambda stragglers); None when lambda = n (no D2)."""

    def __repr__(self) -> str:
        return f"MultiplexedSGC(n_workers={self.n_workers}, B={self.B}, W={self.W}, lam={self.lam})"

    @property
    def n_chunks(self) -> int:
        """n (W - 1) D1 mini-chunks (worker i's are i (W - 1) + u), then B groups of n D2 chunks."""
        return self.n_workers * (self.W - 1) + (self.B * self.n_workers if self.code is not None else 0)

    @property
    def load(self) -> float:
        """(lambda + 1)(W - 1 + B) / (n (B + (W - 1)(lambda + 1))); (W - 1 + B)/(n (W - 1)) for lambda = n."""
        n, B, W, lam = self.n_workers, self.B, self.W, self.lam
        if lam == n:
            return (W - 1 + B) / (n * (W - 1))
        return (lam + 1) * (W - 1 + B) / (n * (B + (W - 1) * (lam + 1)))

    def chunk_weights(self, device: torch.device | str | None = None) -> Tensor:
        n, B, W, lam = self.n_workers, self.B, self.W, self.lam
        if self.code is None:
            return torch.full((n * (W - 1),), 1.0 / (n * (W - 1)), dtype=torch.float64, device=device or "cpu")
        unit = 1.0 / (n * (B + (W - 1) * (lam + 1)))
        weights = torch.full((self.n_chunks,), unit, dtype=torch.float64, device=device or "cpu")
        weights[: n * (W - 1)] = (lam + 1) * unit
        return weights

    def d1_chunk(self, worker: int, index: int) -> int:
        return worker * (self.W - 1) + index

    def d2_chunks(self, group: int) -> range:
        start = self.n_workers * (self.W - 1) + group * self.n_workers
        return range(start, start + self.n_workers)

    def coefficients(self, tasks: Sequence[Task], device: torch.device | str | None = None) -> Tensor:
        rows = torch.zeros(len(tasks), self.n_chunks, dtype=torch.float64, device="cpu")
        d1 = [(row, self.d1_chunk(task.worker, task.index)) for row, task in enumerate(tasks) if task.part == "d1"]
        if d1:
            at = torch.tensor(d1, device="cpu")
            rows[at[:, 0], at[:, 1]] = 1.0
        d2 = [(row, task) for row, task in enumerate(tasks) if task.part == "d2"]
        if d2:
            assert self.code is not None
            matrix = self.code._matrix
            which = torch.tensor([row for row, _ in d2], device="cpu")
            columns = torch.tensor([list(self.d2_chunks(task.index)) for _, task in d2], device="cpu")
            code_rows = matrix[[task.worker for _, task in d2]]
            rows[which[:, None], columns] = code_rows
        return rows.to(device or "cpu")

    def schedule(self, jobs: int | None = None) -> Schedule:
        return _MultiplexedSchedule(self, jobs)

    def tasks_for_round(self, r: int, history: Tensor | None = None, jobs: int | None = None) -> dict[int, list[Task]]:
        """``{worker: [tasks]}`` in round ``r`` after the pattern ``history`` of rounds ``[0, r)``: one task
        per job in flight (jobs r - W + 2 - B .. r), D1 mini-tasks first, D2 where D1 is complete."""
        tasks: dict[int, list[Task]] = {worker: [] for worker in range(self.n_workers)}
        for task in self.replay(history, r, jobs).tasks(r):
            tasks[task.worker].append(task)
        return tasks

    def decode(self, job: int, results: Mapping[Task, Tensor]) -> Tensor:
        """Job ``job``'s gradient: the sum of all n (W - 1) D1 results plus every D2 group's GC decoding."""
        self._check_results(job, results)
        d1 = {(task.worker, task.index): value for task, value in results.items() if task.part == "d1"}
        missing = [
            (worker, index)
            for worker in range(self.n_workers)
            for index in range(self.W - 1)
            if (worker, index) not in d1
        ]
        if missing:
            raise UnsupportedInputError(
                self.method,
                f"results of job {job}",
                f"D1 mini-tasks (worker, index) {missing[:6]}{' ...' if len(missing) > 6 else ''} are missing",
                f"M-SGC decodes a job from all n (W - 1) = {self.n_workers * (self.W - 1)} D1 mini-tasks",
            )
        total = self._d1_sum(job, list(d1.values()))
        for group in range(self.B if self.code is not None else 0):
            assert self.code is not None
            coded = {task.worker: value for task, value in results.items() if task.part == "d2" and task.index == group}
            if len(coded) < self.n_workers - self.lam:
                raise UnsupportedInputError(
                    self.method,
                    f"results of job {job}",
                    f"{len(coded)} coded results of D2 group {group} (from workers {sorted(coded)})",
                    f"every D2 group decodes from at least n - lam = {self.n_workers - self.lam} workers",
                )
            total = total + self.code.decode(coded)
        return total

    def _d1_sum(self, job: int, messages: list[Tensor]) -> Tensor:
        """The sum of the uncoded D1 results (stacked: one reduction), refusing non-finite ones."""
        stacked = torch.stack(messages)
        if not bool(torch.isfinite(stacked).all()):
            raise UnsupportedInputError(
                self.method,
                f"D1 results of job {job}",
                "non-finite entries (NaN or inf)",
                "every returned gradient must be finite",
            )
        return stacked.sum(0)

    def decode_tasks(self, job: int, results: Mapping[Task, Tensor]) -> Tensor:
        return self.decode(job, results)


class _MultiplexedSchedule(Schedule):
    scheme: MultiplexedSGC

    def __init__(self, scheme: MultiplexedSGC, jobs: int | None) -> None:
        super().__init__(scheme, jobs)
        self._d1: dict[int, list[int]] = {}
        """Per job: D1 mini-tasks delivered by each worker (they are delivered in index order)."""
        self._d2: dict[int, list[int]] = {}
        """Per job: coded results delivered per D2 group."""

    def _d1_done(self, job: int) -> list[int]:
        return self._d1.setdefault(job, [0] * self.scheme.n_workers)

    def _d2_done(self, job: int) -> list[int]:
        return self._d2.setdefault(job, [0] * self.scheme.B)

    def _plan(self, r: int) -> list[Task]:
        scheme = self.scheme
        d1_slots = scheme.W - 1
        tasks = []
        for job in range(max(0, r - scheme.delay), r + 1):
            if not self.has_job(job):
                continue
            slot = r - job
            for worker, done in enumerate(self._d1_done(job)):
                if done < d1_slots:  # a D1 slot, or a D2 slot given to D1 work the worker still owes
                    tasks.append(Task(job, worker, "d1", done))
                elif scheme.code is not None:
                    tasks.append(Task(job, worker, "d2", slot - d1_slots))
        return tasks

    def _deliver(self, task: Task) -> None:
        if task.part == "d1":
            self._d1_done(task.job)[task.worker] += 1
        else:
            self._d2_done(task.job)[task.index] += 1

    def decodable(self, job: int) -> bool:
        scheme = self.scheme
        if any(done < scheme.W - 1 for done in self._d1_done(job)):
            return False
        return scheme.code is None or all(count >= scheme.n_workers - scheme.lam for count in self._d2_done(job))
