"""The schemes on ``torch.distributed``: workers compute coded gradients of a real model, the master decodes.

Paper: Krishnan, Ebrahimi, Khisti, "Sequential Gradient Coding For Straggler Mitigation", ICLR 2023,
arXiv 2211.13802 (Sec. 2 setting; the paper's experiments run workers on AWS Lambda with a master that
waits for the non-stragglers; the official harness is ``0_create_aws_lambda/``). Here the workers are
the processes of a ``torch.distributed`` group (gloo on CPU is enough), one per worker: rank i is worker
i, and rank ``master`` (default 0) is also the master. Every rank keeps the same schedule (it depends
only on the straggler pattern, which every rank is given, so no assignment needs sending). In round r:

1. every worker that does not straggle computes each of its tasks: for a task with coefficients c over
   its job's K data chunks, the gradient of ``sum_k c_k loss_fn(model(x_k), y_k)`` (one backward per
   task, ``torch.autograd.grad``: the model's ``.grad`` is left alone), flattened over the trainable
   parameters; it sends the stacked results to the master (``send``/``recv``, point to point);
2. a straggler computes and sends nothing (it is too slow for this round: the pattern says so);
3. the master records who returned, decodes job r - T with the scheme's decoder and tells every rank
   whether to go on (one ``broadcast_object_list``: a failed decoding, e.g. a non-finite gradient,
   stops every rank with the master's message instead of leaving them waiting).

The decoded gradient of job t is ``sum_k grad loss_fn(model(x_k), y_k)`` over its K chunks: the uncoded
full gradient when ``loss_fn`` sums over examples (use a sum reduction; divide by N for the mean).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gradhub.errors import GradhubError, UnsupportedInputError
from gradhub.progress import ProgressCallback, tracker
from gradhub_sgc.stragglers import require_pattern
from gradhub_sgc.tasks import SequentialScheme, Task, chunk_sizes

__all__ = ["DistributedRun", "coded_gradients", "split_job", "unflatten"]

Chunk = tuple[Tensor, Tensor]


@dataclass
class DistributedRun:
    """What one rank saw of a coded run."""

    gradients: Tensor | None
    """On the master: ``(J, d)``, every job's decoded gradient (flattened trainable parameters); else None."""
    decoded_round: Tensor
    """(J,) int64: the round at whose end the master decoded each job (t + T)."""
    stragglers: Tensor
    """(n, J + T) bool: the pattern the run followed."""
    tasks_computed: int
    """Tasks this rank computed (as a worker)."""
    messages: dict[int, dict[Task, Tensor]] | None = None
    """On the master with ``keep_messages=True``: every job's received results, by task."""


def split_job(inputs: Tensor, targets: Tensor, scheme: SequentialScheme) -> list[Chunk]:
    """One job's examples (dim 0) split into the scheme's K chunks, sized by its chunk weights."""
    sizes = chunk_sizes(scheme, inputs.shape[0])
    return list(zip(inputs.split(sizes), targets.split(sizes)))


def unflatten(vector: Tensor, model: nn.Module) -> list[Tensor]:
    """A flattened gradient (as decoded) as one tensor per trainable parameter of ``model``."""
    shapes = [p.shape for p in model.parameters() if p.requires_grad]
    return [part.view(shape) for part, shape in zip(vector.split([s.numel() for s in shapes]), shapes)]


def coded_gradients(
    scheme: SequentialScheme,
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    jobs: Sequence[Sequence[Chunk]],
    stragglers: Tensor,
    *,
    master: int = 0,
    keep_messages: bool = False,
    progress: ProgressCallback | None = None,
) -> DistributedRun:
    """Run ``scheme`` over ``jobs`` in this process group: call it on every rank (one rank per worker).

    Args:
        scheme: a :class:`~gradhub_sgc.codes.GradientCode`, :class:`~gradhub_sgc.schemes.SelectiveRepeatSGC`
            or :class:`~gradhub_sgc.schemes.MultiplexedSGC` for ``n_workers`` = the group's size.
        model: the same parameters on every rank (checked); evaluated as it is (train or eval mode).
        loss_fn: ``loss_fn(model(x), y) -> scalar``, a sum over the chunk's examples.
        jobs: J jobs, each the K chunks ``(x, y)`` of the scheme (:func:`split_job`); every rank gets them
            (a worker touches only the chunks of its tasks).
        stragglers: ``(n, >= J + T)`` bool following the scheme's straggler model (e.g. drawn by
            :func:`~gradhub_sgc.stragglers.bursty_pattern`), the same on every rank.
        master: the rank that decodes (it is also a worker).
        keep_messages: keep every result the master received (``DistributedRun.messages``).
        progress: called once per round.
    """
    import torch.distributed as dist

    method = scheme.method
    if not (dist.is_available() and dist.is_initialized()):
        raise UnsupportedInputError(
            method, "process group", "none", "call torch.distributed.init_process_group first (one rank per worker)"
        )
    world, rank = dist.get_world_size(), dist.get_rank()
    if world != scheme.n_workers or not 0 <= master < world:
        raise UnsupportedInputError(
            method,
            "process group",
            f"{world} processes, master={master}",
            f"one process per worker: n_workers={scheme.n_workers} processes, master one of their ranks",
        )
    for job, chunks in enumerate(jobs):
        if len(chunks) != scheme.n_chunks:
            raise UnsupportedInputError(
                method, f"job {job}", f"{len(chunks)} chunks", f"{scheme.n_chunks} chunks (split_job splits a job)"
            )
    rounds = scheme.rounds(len(jobs))
    pattern = require_pattern(method, stragglers, scheme.n_workers, rounds)[:, :rounds]
    scheme.require_conforming(pattern)
    params = [p for p in model.parameters() if p.requires_grad]
    _same_model(method, params, master)

    flat = torch.cat([p.detach().reshape(-1) for p in params])
    decoded = flat.new_zeros(len(jobs), flat.numel()) if rank == master else None
    decoded_round = torch.full((len(jobs),), -1, dtype=torch.int64, device="cpu")
    schedule = scheme.schedule(len(jobs))
    pending: dict[int, dict[Task, Tensor]] = {}
    kept: dict[int, dict[Task, Tensor]] | None = {} if keep_messages and rank == master else None
    computed = 0
    with tracker(progress, total=rounds, task=method) as bar:
        for r in range(rounds):
            returned = ~pattern[:, r]
            per_worker: dict[int, list[Task]] = {worker: [] for worker in range(world)}
            for task in schedule.tasks(r):
                per_worker[task.worker].append(task)
            mine = per_worker[rank] if returned[rank] else []
            own = _compute(scheme, model, loss_fn, params, jobs, mine) if mine else None
            computed += len(mine)
            if rank != master and own is not None:
                dist.send(own, dst=master)
            failure: GradhubError | None = None
            if rank == master:
                for worker, tasks in per_worker.items():
                    if not (returned[worker] and tasks):
                        continue
                    if worker == master:
                        received = own
                    else:
                        received = flat.new_empty(len(tasks), flat.numel())
                        dist.recv(received, src=worker)
                    assert received is not None
                    for task, message in zip(tasks, received):
                        pending.setdefault(task.job, {})[task] = message
            schedule.record(r, returned)
            job = scheme.decodable_job(r)
            if rank == master and 0 <= job < len(jobs):
                results = pending.pop(job, {})
                if kept is not None:
                    kept[job] = dict(results)
                try:
                    assert decoded is not None
                    decoded[job] = scheme.decode_tasks(job, results)
                except GradhubError as error:
                    failure = error
            if 0 <= job < len(jobs):
                decoded_round[job] = r
            verdict = [None if failure is None else str(failure)]
            dist.broadcast_object_list(verdict, src=master)
            if failure is not None:
                raise failure
            if verdict[0] is not None:
                raise UnsupportedInputError(method, f"round {r}", "the master stopped the run", str(verdict[0]))
            bar.update()
    return DistributedRun(decoded, decoded_round, pattern, computed, kept)


def _same_model(method: str, params: list[Tensor], master: int) -> None:
    """Every rank holds the master's parameters (one broadcast, one all-reduce); every rank raises if not."""
    import torch.distributed as dist

    flat = torch.cat([p.detach().reshape(-1) for p in params])
    reference = flat.clone()
    dist.broadcast(reference, src=master)
    differs = torch.tensor([0.0 if torch.equal(flat, reference) else 1.0], dtype=torch.float64, device=flat.device)
    dist.all_reduce(differs)
    if float(differs) > 0:
        raise UnsupportedInputError(
            method,
            "model parameters",
            f"differ from the master's on {int(differs)} process(es)",
            "every rank must hold the same model (seed it alike, or broadcast the master's state first)",
        )


def _compute(
    scheme: SequentialScheme,
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    params: list[Tensor],
    jobs: Sequence[Sequence[Chunk]],
    tasks: list[Task],
) -> Tensor:
    """``(len(tasks), d)``: each task's coded gradient, one backward over its weighted chunk losses."""
    rows = scheme.coefficients(tasks)
    results = []
    with torch.enable_grad():
        for task, row in zip(tasks, rows):
            used = row.nonzero().flatten().tolist()
            loss = sum(float(row[k]) * loss_fn(model(jobs[task.job][k][0]), jobs[task.job][k][1]) for k in used)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            results.append(
                torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)])
            )
    return torch.stack(results)
