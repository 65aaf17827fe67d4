"""The three schemes run over a job sequence: the registered solvers ``gradient_coding``, ``sr_sgc``, ``m_sgc``.

Paper: Krishnan, Ebrahimi, Khisti, "Sequential Gradient Coding For Straggler Mitigation", ICLR 2023,
arXiv 2211.13802 (GC baseline of Tandon et al. 2017, SR-SGC Sec. 3.1, M-SGC Sec. 3.2).

Each solver takes the chunk gradients of J jobs, ``(J, K, ...)`` (K: the scheme's chunks per job; what
the workers would compute), and a straggler pattern ``(n, >= J + T)``, and plays the master and the
workers in one process: in round r every non-straggling worker returns its tasks' messages (the
scheme's coefficients times its job's chunk gradients: one batched product per job in flight), the
master records who returned and, at the end of round r, decodes job r - T from what was delivered (the
decoder of :mod:`gradhub_sgc.codes`, batched over the flattened gradient). A scheduler is not an
iterative solver; the core's solver frame fits it this way (see the README): one iteration is one
round, the residual is the fraction of jobs not yet decoded (1 before the first round, 0 once every
job is), ``tol`` stops once at most that fraction is left, ``max_iter`` caps the rounds, and the
solution ``(J, ...)`` holds every decoded job's gradient (zeros for jobs not decoded). The pattern must
follow the scheme's straggler model (GC: at most s per round; SGC: (B, W, lambda)-bursty): otherwise a
:class:`~gradhub_sgc.stragglers.StragglerModelError` names the round and the worker (use
:func:`gradhub_sgc.simulator.simulate` for delay profiles, where the master waits out such rounds).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gradhub.errors import UnsupportedInputError
from gradhub.kinds.inputs import require_finite, require_tensor
from gradhub.kinds.solver import Iterate, SolverResult, solver
from gradhub_sgc import GRADIENT_CODING, M_SGC, SR_SGC
from gradhub_sgc.codes import GradientCode
from gradhub_sgc.schemes import MultiplexedSGC, SelectiveRepeatSGC
from gradhub_sgc.stragglers import require_pattern
from gradhub_sgc.tasks import SequentialScheme, Task


@dataclass
class CodedRunResult(SolverResult):
    """A coded run over J jobs: ``solution`` ``(J, ...)`` holds the decoded gradient sums."""

    decoded_round: Tensor
    """(J,) int64: the round at whose end each job was decoded (t + T); -1 for a job not decoded."""
    stragglers: Tensor
    """(n, J + T) bool: the straggler pattern of the run (True: the worker returned nothing)."""
    delivered: Tensor
    """(J + T,) int64: tasks delivered to the master in each round (0 for rounds not run)."""
    encode_coeffs: Tensor
    """The run's gradient code B (n x n, float64; M-SGC: its D2 groups' code, 0 x 0 when lambda = n)."""
    delay: int
    """T: job t is decoded at the end of round t + T."""


def _code_of(scheme: SequentialScheme) -> Tensor:
    code = getattr(scheme, "code", scheme)
    if isinstance(code, GradientCode):
        return code.encode_coeffs()
    return torch.zeros(0, 0, dtype=torch.float64, device="cpu")


def run_scheme(
    scheme: SequentialScheme, chunk_gradients: Tensor, stragglers: Tensor | None = None
) -> Iterator[Iterate]:
    """Play ``scheme`` over the jobs of ``chunk_gradients`` ``(J, K, ...)`` under ``stragglers`` (n, >= J + T).

    Yields the state before the first round and after each (an :class:`~gradhub.kinds.solver.Iterate`
    whose extras are :class:`CodedRunResult`'s fields); ``None`` stragglers: nobody straggles.
    """
    method = scheme.method
    gradients = require_tensor(
        method, "chunk_gradients", chunk_gradients, min_dim=2, what="(J jobs, K chunks, ...) of chunk gradients"
    )
    jobs, chunks = gradients.shape[:2]
    if chunks != scheme.n_chunks or jobs == 0:
        raise UnsupportedInputError(
            method,
            "chunk_gradients shape",
            tuple(gradients.shape),
            f"{scheme!r} splits every job into K = {scheme.n_chunks} chunks: chunk_gradients must be "
            f"(J >= 1 jobs, {scheme.n_chunks}, ...)",
        )
    require_finite(method, "chunk_gradients", gradients)
    rounds = scheme.rounds(jobs)
    if stragglers is None:
        pattern = torch.zeros(scheme.n_workers, rounds, dtype=torch.bool, device="cpu")
    else:
        pattern = require_pattern(method, stragglers, scheme.n_workers, rounds)[:, :rounds]
    scheme.require_conforming(pattern)

    flat = gradients.reshape(jobs, chunks, -1)
    decoded = torch.zeros_like(flat[:, 0])
    decoded_round = torch.full((jobs,), -1, dtype=torch.int64, device="cpu")
    delivered = torch.zeros(rounds, dtype=torch.int64, device="cpu")
    extras: dict[str, Any] = {
        "decoded_round": decoded_round,
        "stragglers": pattern,
        "delivered": delivered,
        "encode_coeffs": _code_of(scheme),
        "delay": scheme.delay,
    }
    solution = decoded.view(jobs, *gradients.shape[2:])
    yield Iterate(solution, 1.0, extras)

    schedule = scheme.schedule(jobs)
    pending: dict[int, dict[Task, Tensor]] = {}
    for r in range(rounds):
        came_back = schedule.record(r, ~pattern[:, r])  # the tasks of round r whose workers returned
        for task, message in _messages(scheme, flat, came_back):
            pending.setdefault(task.job, {})[task] = message
        delivered[r] = len(came_back)
        job = scheme.decodable_job(r)
        if 0 <= job < jobs:
            if not schedule.decodable(job):  # cannot happen for a pattern that follows the model
                raise RuntimeError(f"{method}: job {job} is not decodable at its deadline, round {r} (a bug)")
            decoded[job] = scheme.decode_tasks(job, pending.pop(job, {}))
            decoded_round[job] = r
        yield Iterate(solution, float((decoded_round < 0).sum()) / jobs, extras)


def _messages(scheme: SequentialScheme, flat: Tensor, tasks: list[Task]) -> list[tuple[Task, Tensor]]:
    """What the delivered ``tasks`` return: per job in flight, coefficients (L, K) @ chunk gradients (K, d)."""
    out: list[tuple[Task, Tensor]] = []
    for job in sorted({task.job for task in tasks}):
        mine = [task for task in tasks if task.job == job]
        rows = scheme.coefficients(mine, flat.device).to(flat.dtype)
        out.extend(zip(mine, rows @ flat[job]))
    return out


def _check_chunks(method: str, chunk_gradients: Any, chunks: int) -> None:
    """The chunk count before a scheme is built (a wrong n_workers must not build a huge code first)."""
    if isinstance(chunk_gradients, Tensor) and chunk_gradients.dim() >= 2 and chunk_gradients.shape[1] != chunks:
        raise UnsupportedInputError(
            method,
            "chunk_gradients shape",
            tuple(chunk_gradients.shape),
            f"these hyperparameters split every job into K = {chunks} chunks: (J, {chunks}, ...)",
        )


@solver(GRADIENT_CODING, result=CodedRunResult)
def gradient_coding(
    chunk_gradients: Tensor,
    stragglers: Tensor | None = None,
    *,
    n_workers: int,
    s: int,
    scheme: str,
    seed: int,
    tol: float,
    max_iter: int,
) -> Iterator[Iterate]:
    """GC over J jobs (Tandon et al.; the paper's baseline, T = 0): job r is coded and decoded in round r.

    Args:
        chunk_gradients: ``(J, n, ...)``, the gradient of each of the n chunks of every job.
        stragglers: ``(n, >= J)`` bool, at most s True per round (None: no stragglers).
    """
    _check_chunks(GRADIENT_CODING.name, chunk_gradients, n_workers)
    return run_scheme(GradientCode(n_workers, s, scheme, seed), chunk_gradients, stragglers)


@solver(SR_SGC, result=CodedRunResult)
def sr_sgc(
    chunk_gradients: Tensor,
    stragglers: Tensor | None = None,
    *,
    n_workers: int,
    B: int,
    W: int,
    lam: int,
    tol: float,
    max_iter: int,
) -> Iterator[Iterate]:
    """SR-SGC over J jobs (Sec. 3.1): job t decoded at the end of round t + B.

    Args:
        chunk_gradients: ``(J, n, ...)``.
        stragglers: ``(n, >= J + B)`` bool following the (B, W, lambda)-bursty model (None: no stragglers).
    """
    _check_chunks(SR_SGC.name, chunk_gradients, n_workers)
    return run_scheme(SelectiveRepeatSGC(n_workers, B, W, lam), chunk_gradients, stragglers)


@solver(M_SGC, result=CodedRunResult)
def m_sgc(
    chunk_gradients: Tensor,
    stragglers: Tensor | None = None,
    *,
    n_workers: int,
    B: int,
    W: int,
    lam: int,
    tol: float,
    max_iter: int,
) -> Iterator[Iterate]:
    """M-SGC over J jobs (Sec. 3.2): job t decoded at the end of round t + W - 2 + B.

    Args:
        chunk_gradients: ``(J, K, ...)`` with K = n (W - 1) + B n (n (W - 1) when lambda = n): D1
            mini-chunks ``i (W - 1) + u`` of worker i, then the n chunks of each D2 group
            (:attr:`MultiplexedSGC.chunk_weights` gives their sizes).
        stragglers: ``(n, >= J + W - 2 + B)`` bool following the (B, W, lambda)-bursty model.
    """
    chunks = n_workers * (W - 1) + (B * n_workers if lam < n_workers else 0)
    _check_chunks(M_SGC.name, chunk_gradients, chunks)
    return run_scheme(MultiplexedSGC(n_workers, B, W, lam), chunk_gradients, stragglers)


__all__ = [
    CodedRunResult.__name__,
    gradient_coding.__name__,
    m_sgc.__name__,
    run_scheme.__name__,
    sr_sgc.__name__,
]
