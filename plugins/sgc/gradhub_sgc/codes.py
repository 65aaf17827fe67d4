"""Gradient coding (Tandon, Lei, Dimakis, Karampatziakis, ICML 2017): the encoder and decoder of gradient tensors.

The baseline of Krishnan, Ebrahimi, Khisti, "Sequential Gradient Coding For Straggler Mitigation", ICLR
2023, arXiv 2211.13802 (Sec. 2), and the building block of both SGC schemes. A job's data is split into
n chunks with gradients g_1..g_n; worker i computes the chunks of its row of the encoding matrix B
(n x n, s + 1 nonzeros per row) and returns ``m_i = sum_k B[i, k] g_k``. Any n - s rows of B span the
all-ones vector, so from any n - s returned messages F the master finds a with ``a^T B_F = 1^T`` and
returns ``sum_{i in F} a_i m_i = sum_k g_k``, the full gradient.

- FRC (fractional repetition, (s + 1) | n): n / (s + 1) groups of s + 1 workers; every worker of group
  g computes (and sums) the same s + 1 chunks of group g. Decoding takes one survivor per group
  (coefficients 0/1: exact in any precision).
- CRC (cyclic repetition, any s < n; Tandon et al. Alg. 2): row i has support {i, ..., i + s mod n}.
  With a random H (s x n) whose rows sum to 0, B[i, i] = 1 and the other s entries solve
  ``H[:, supp \\ {i}] x = -H[:, i]``: every row of B lies in null(H), which has dimension n - s and
  contains 1, and any n - s rows of B are independent (almost surely), so they span it.

The official SGC code (mamaj/Sequential-Gradient-Coding) only counts who delivered; this module is
gradhub's addition: the real encoding and decoding, batched over the flattened gradient (one matrix
product; no Python loop over entries). B is kept in float64 on the host and cast to the messages'
dtype and device. The official GC simulator accepts a round with ``stragglers < s``; a gradient code
tolerates ``<= s`` (Tandon et al.), which is what is implemented.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import validated
from gradhub.kinds.inputs import require_tensor
from gradhub_sgc import GRADIENT_CODING, GradientCodeParameters
from gradhub_sgc.stragglers import Violation, per_round_violations
from gradhub_sgc.tasks import Schedule, SequentialScheme, Task

__all__ = ["GradientCode"]

DECODE_TOLERANCE = 1e-8
"""How far ``a^T B_F`` may be from 1^T (max entry) in float64 before a decoding is refused."""


@validated(GRADIENT_CODING.name, GradientCodeParameters)
class GradientCode(SequentialScheme):
    """Gradient code for n workers tolerating s stragglers per round (FRC or CRC); also the T = 0 scheme.

    ``GradientCode(n_workers, s, scheme="auto", seed=0)``. ``encode_coeffs()`` is B; ``encode(g)``
    gives every worker's message from the chunk gradients ``g`` (n, ...); ``decode(returned)`` the sum
    of the n chunk gradients from ``{worker: message}`` of at least n - s workers.
    """

    method = GRADIENT_CODING.name
    delay = 0

    def __init__(self, n_workers: int, s: int, scheme: str, seed: int) -> None:
        self.n_workers = n_workers
        self.s = s
        self.seed = seed
        self.scheme = ("frc" if n_workers % (s + 1) == 0 else "crc") if scheme == "auto" else scheme
        self._vectors: dict[tuple[int, ...], Tensor] = {}

    def __repr__(self) -> str:
        return f"GradientCode(n_workers={self.n_workers}, s={self.s}, scheme={self.scheme!r}, seed={self.seed})"

    # --- the code -------------------------------------------------------------------------------

    @functools.cached_property
    def _matrix(self) -> Tensor:
        """B, float64 on the host (built on first use: constructing a code costs nothing)."""
        n, s = self.n_workers, self.s
        if self.scheme == "frc":
            group = torch.arange(n, device="cpu") // (s + 1)
            return (group[:, None] == group[None, :]).to(torch.float64)
        matrix = torch.eye(n, dtype=torch.float64, device="cpu")
        if s == 0:
            return matrix
        generator = torch.Generator(device="cpu").manual_seed(self.seed)
        H = torch.randn(s, n, generator=generator, dtype=torch.float64, device="cpu")
        H[:, -1] = -H[:, :-1].sum(1)  # rows sum to 0: H 1 = 0
        others = (torch.arange(n, device="cpu")[:, None] + torch.arange(1, s + 1, device="cpu")) % n  # (n, s)
        systems = H[:, others].permute(1, 0, 2)  # (n, s, s): H[:, supp(i) \ {i}]
        entries = torch.linalg.solve(systems, -H.T.unsqueeze(-1)).squeeze(-1)  # (n, s), all rows at once
        return matrix.scatter(1, others, entries)

    def encode_coeffs(self, device: torch.device | str | None = None) -> Tensor:
        """B (n x n, float64): row i holds the coefficients worker i applies to the n chunk gradients."""
        return self._matrix.to(device or "cpu", copy=True)

    def assignment(self) -> list[list[int]]:
        """The chunk ids each worker computes (the support of its row of B), s + 1 per worker."""
        n, s = self.n_workers, self.s
        if self.scheme == "frc":
            return [[(i // (s + 1)) * (s + 1) + k for k in range(s + 1)] for i in range(n)]
        return [[(i + k) % n for k in range(s + 1)] for i in range(n)]

    def encode(self, chunk_gradients: Tensor) -> Tensor:
        """Every worker's message ``B g`` from the chunk gradients ``(n, ...)``: ``(n, ...)``, one product."""
        gradients = require_tensor(self.method, "chunk_gradients", chunk_gradients, min_dim=1)
        if gradients.shape[0] != self.n_workers:
            raise UnsupportedInputError(
                self.method,
                "chunk_gradients shape",
                tuple(gradients.shape),
                f"chunk_gradients must be (n={self.n_workers} chunks, ...)",
            )
        rows = self._matrix.to(device=gradients.device, dtype=gradients.dtype)
        return (rows @ gradients.reshape(self.n_workers, -1)).reshape(gradients.shape)

    def decoding_vector(self, returned: Sequence[int] | Tensor) -> Tensor:
        """a (n,) float64 with ``a^T B = 1^T`` and ``a_i = 0`` for every worker not in ``returned``.

        ``returned``: worker ids, or a boolean mask (n,). FRC: 1 for the lowest-index survivor of every
        group. CRC: least squares on the first n - s returned rows (exactly n - s: then ``B_F^T`` has
        full column rank, which every lstsq driver needs), checked to reproduce 1^T.
        """
        workers = self._workers(returned)
        missing = [i for i in range(self.n_workers) if i not in set(workers)]
        if len(missing) > self.s:
            raise UnsupportedInputError(
                self.method,
                "returned workers",
                f"{len(workers)} of n={self.n_workers} (missing: {missing})",
                f"a code with s={self.s} decodes from at least n - s = {self.n_workers - self.s} workers; "
                f"{len(missing)} stragglers are more than it tolerates",
            )
        key = tuple(workers)
        if key not in self._vectors:  # a run meets few distinct sets of survivors: solve each once
            self._vectors[key] = self._decoding_vector(key)
        return self._vectors[key].clone()

    def _decoding_vector(self, workers: tuple[int, ...]) -> Tensor:
        n, s = self.n_workers, self.s
        if self.scheme == "frc":
            alive = torch.zeros(n, dtype=torch.bool, device="cpu")
            alive[list(workers)] = True
            index = torch.where(alive, torch.arange(n, device="cpu"), n).view(n // (s + 1), s + 1)
            first = index.min(1).values  # the lowest-index survivor of every group
            vector = torch.zeros(n, dtype=torch.float64, device="cpu")
            vector[first] = 1.0
            return vector
        used = list(workers[: n - s])
        rows = self._matrix[used]  # (n - s, n)
        ones = torch.ones(n, 1, dtype=torch.float64, device="cpu")
        solution = torch.linalg.lstsq(rows.T, ones).solution.squeeze(-1)
        error = float((rows.T @ solution - 1).abs().max())
        if not error <= DECODE_TOLERANCE:
            raise UnsupportedInputError(
                self.method,
                "returned workers",
                f"{used} (a^T B_F misses 1^T by {error:.3g})",
                f"rows of B that span the all-ones vector; seed={self.seed} drew an ill-conditioned H, try another",
            )
        vector = torch.zeros(n, dtype=torch.float64, device="cpu")
        vector[used] = solution
        return vector

    def decode(self, returned: Mapping[int, Tensor]) -> Tensor:
        """The sum of the n chunk gradients from ``{worker: message}`` of at least n - s workers.

        The messages are stacked and combined with the decoding vector in one product over the
        flattened gradient, in the messages' dtype (float64 decoding vector cast to it). A message
        that is not finite is refused with the worker named.
        """
        if not isinstance(returned, Mapping):
            raise UnsupportedInputError(
                self.method, "returned", type(returned).__name__, "a mapping {worker: message tensor}"
            )
        workers = self._workers(list(returned))
        vector = self.decoding_vector(workers)
        messages = self._stack(returned, workers)
        used = vector[workers] != 0
        coefficients = vector[workers][used].to(device=messages.device, dtype=messages.dtype)
        return torch.tensordot(coefficients, messages[used.to(messages.device)], dims=1)

    def _stack(self, returned: Mapping[int, Tensor], workers: list[int]) -> Tensor:
        first = returned[workers[0]]
        for worker in workers:
            message = require_tensor(self.method, f"message of worker {worker}", returned[worker])
            if message.shape != first.shape or message.device != first.device or message.dtype != first.dtype:
                raise UnsupportedInputError(
                    self.method,
                    f"message of worker {worker}",
                    f"{tuple(message.shape)} {message.dtype} on {message.device}",
                    f"every message like worker {workers[0]}'s: {tuple(first.shape)} {first.dtype} on {first.device}",
                )
        messages = torch.stack([returned[worker] for worker in workers])
        finite = torch.isfinite(messages.reshape(len(workers), -1)).all(1)
        if not bool(finite.all()):
            bad = [workers[k] for k in (~finite).nonzero().flatten().tolist()]
            raise UnsupportedInputError(
                self.method,
                "message values",
                f"non-finite entries (NaN or inf) in the coded gradients of workers {bad}",
                "every returned message (a combination of chunk gradients) must be finite",
            )
        return messages

    def _workers(self, returned: Sequence[int] | Tensor) -> list[int]:
        if isinstance(returned, Tensor) and returned.dtype == torch.bool:
            if returned.shape != (self.n_workers,):
                raise UnsupportedInputError(
                    self.method, "returned mask shape", tuple(returned.shape), f"(n={self.n_workers},)"
                )
            return returned.nonzero().flatten().tolist()
        workers = [int(w) for w in (returned.tolist() if isinstance(returned, Tensor) else returned)]
        bad = [w for w in workers if not 0 <= w < self.n_workers]
        if bad or len(set(workers)) != len(workers):
            raise UnsupportedInputError(
                self.method,
                "returned workers",
                workers,
                f"distinct worker ids in [0, {self.n_workers - 1}]",
            )
        return sorted(workers)

    # --- GC as the sequential scheme with T = 0 ------------------------------------------------------

    @property
    def n_chunks(self) -> int:
        return self.n_workers

    @property
    def load(self) -> float:
        """(s + 1) / n (Tandon et al.; official ``GradientCoding.normalized_load``)."""
        return (self.s + 1) / self.n_workers

    @property
    def model(self) -> str:
        return f"s={self.s} stragglers per round model"

    def chunk_weights(self, device: torch.device | str | None = None) -> Tensor:
        return torch.full((self.n_workers,), 1.0 / self.n_workers, dtype=torch.float64, device=device or "cpu")

    def coefficients(self, tasks: Sequence[Task], device: torch.device | str | None = None) -> Tensor:
        return self._matrix[[task.index for task in tasks]].to(device or "cpu")

    def schedule(self, jobs: int | None = None) -> Schedule:
        return _CodeSchedule(self, jobs)

    def tasks_for_round(self, r: int, history: Tensor | None = None, jobs: int | None = None) -> dict[int, int]:
        """``{worker: job}`` in round ``r``: every worker computes its task of job r (none after the last job)."""
        return {task.worker: task.job for task in self.replay(history, r, jobs).tasks(r)}

    def decode_tasks(self, job: int, results: Mapping[Task, Tensor]) -> Tensor:
        self._check_results(job, results)
        return self.decode({task.worker: message for task, message in results.items()})

    def violations(self, pattern: Tensor) -> list[Violation]:
        return per_round_violations(pattern, self.s)

    def round_conforms(self, history: Tensor, candidate: Tensor) -> bool:
        return int(candidate.sum()) <= self.s


class _CodeSchedule(Schedule):
    """GC over a job sequence: job r in round r, by every worker; decodable when n - s returned."""

    scheme: GradientCode

    def __init__(self, scheme: GradientCode, jobs: int | None) -> None:
        super().__init__(scheme, jobs)
        self._returned: dict[int, int] = {}

    def _plan(self, r: int) -> list[Task]:
        if not self.has_job(r):
            return []
        return [Task(r, worker, "gc", worker) for worker in range(self.scheme.n_workers)]

    def _deliver(self, task: Task) -> None:
        self._returned[task.job] = self._returned.get(task.job, 0) + 1

    def decodable(self, job: int) -> bool:
        return self._returned.get(job, 0) >= self.scheme.n_workers - self.scheme.s
