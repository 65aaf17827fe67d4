"""GC, SR-SGC and M-SGC on torch.distributed (gloo, 3 CPU processes): decoded = uncoded gradient in every round.

One process group (spawned once by the core's ``in_processes``; it costs seconds, hence 3 workers, not 4
plus a master) runs the three schemes one after the other on a tiny float64 MLP: rank i is worker i,
rank 0 is also the master. Every worker computes the coded gradients of its tasks of the real model
(one backward per task) and sends them unless the pattern says it straggles; the master decodes one job
per round. The straggler patterns are drawn from the bursty model (seed chosen so that every mechanism
runs): (B, W, lambda) = (1, 3, 1) for GC (s = 1: CRC, random coefficients) and M-SGC (D2 code: CRC;
worker 0 straggles in D1 slots, so it redoes D1 work in D2 slots), (1, 3, 2) for SR-SGC (s = 1, CRC;
two stragglers in round 0, so one task is repeated in round 1).
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import pytest
import torch
from gradhub_sgc.codes import GradientCode
from gradhub_sgc.distributed import coded_gradients, split_job
from gradhub_sgc.schemes import MultiplexedSGC, SelectiveRepeatSGC
from gradhub_sgc.stragglers import bursty_pattern, bursty_violations
from torch import nn

from gradhub.testing.processes import in_processes

N, B, W = 3, 1, 3
JOBS = 4
EXAMPLES = 24
SEED = 3
TOLERANCE = 1e-10
LAMBDAS = {"gc": 1, "sr_sgc": 2, "m_sgc": 1}


def _schemes() -> dict[str, Any]:
    return {
        "gc": GradientCode(N, LAMBDAS["gc"]),
        "sr_sgc": SelectiveRepeatSGC(N, B, W, LAMBDAS["sr_sgc"]),
        "m_sgc": MultiplexedSGC(N, B, W, LAMBDAS["m_sgc"]),
    }


def _pattern(name: str) -> torch.Tensor:
    """A (1, 3, lambda)-bursty pattern over the J + T rounds of the scheme."""
    return bursty_pattern(N, JOBS + _schemes()[name].delay, B, W, LAMBDAS[name], p=0.4, seed=SEED)


def _problem() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    generator = torch.Generator(device="cpu").manual_seed(1)
    inputs = torch.randn(JOBS, EXAMPLES, 3, generator=generator, dtype=torch.float64, device="cpu")
    targets = torch.randn(JOBS, EXAMPLES, 2, generator=generator, dtype=torch.float64, device="cpu")
    return model, inputs, targets


def _loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return 0.5 * (outputs - targets).square().sum()


def _body(rank: int, world: int) -> dict[str, Any]:
    """One process: every scheme in turn (gradhub.testing.processes.in_processes spawns it)."""
    model, inputs, targets = _problem()
    results: dict[str, Any] = {}
    for name, scheme in _schemes().items():
        jobs = [split_job(inputs[t], targets[t], scheme) for t in range(JOBS)]
        results[name] = coded_gradients(scheme, model, _loss, jobs, _pattern(name), keep_messages=True)
    # Errors, in the same processes: every rank must raise (none may wait for a peer that gave up).
    scheme, pattern = _schemes()["gc"], _pattern("gc")
    jobs = [split_job(inputs[t], targets[t], scheme) for t in range(JOBS)]

    def broken(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:  # worker 2's gradients are NaN
        return _loss(outputs, targets) * (float("nan") if rank == 2 else 1.0)

    other = copy.deepcopy(model)
    if rank == 1:
        with torch.no_grad():
            other[0].bias.add_(1e-3)
    for label, call in {
        "non-finite": lambda: coded_gradients(scheme, model, broken, jobs, pattern),
        "different model": lambda: coded_gradients(scheme, other, _loss, jobs, pattern),
    }.items():
        try:
            call()
            results[label] = "no error"
        except Exception as error:
            results[label] = f"{type(error).__name__}: {error}"
    return results


@functools.cache
def _runs() -> list[dict[str, Any]]:
    return in_processes(_body, N)


def _uncoded() -> torch.Tensor:
    """(J, d): the plain gradient of each job's summed loss, in this process, on the whole mini-batch."""
    model, inputs, targets = _problem()
    rows = []
    for t in range(JOBS):
        grads = torch.autograd.grad(_loss(model(inputs[t]), targets[t]), list(model.parameters()))
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows)


def test_the_patterns_are_bursty_and_make_every_mechanism_run() -> None:
    for name, scheme in _schemes().items():
        pattern = _pattern(name)
        assert not bursty_violations(pattern, B, W, LAMBDAS[name]) and int(pattern.sum()) >= 2
        assert (
            getattr(scheme, "code", scheme).scheme == "crc"
        )  # random coefficients: decoding is a real least-squares solve
    schedule = _schemes()["sr_sgc"].schedule(JOBS)
    for r in range(JOBS + B):
        schedule.record(r, ~_pattern("sr_sgc")[:, r])
    assert schedule.repeats >= 1  # v = 2 > s = 1 stragglers in round 0
    multiplexed = _schemes()["m_sgc"]
    schedule = multiplexed.schedule(JOBS)
    redone = []
    for r in range(JOBS + multiplexed.delay):
        redone += [t for t in schedule.tasks(r) if t.part == "d1" and r - t.job >= W - 1]
        schedule.record(r, ~_pattern("m_sgc")[:, r])
    assert redone  # D1 work redone in a D2 slot (adaptive multiplexing)


@pytest.mark.parametrize("name", ["gc", "sr_sgc", "m_sgc"])
def test_decoded_gradient_equals_the_uncoded_one_in_every_round(name: str) -> None:
    master, *workers = _runs()
    run = master[name]
    scheme = _schemes()[name]
    expected = _uncoded()
    assert run.gradients is not None and all(worker[name].gradients is None for worker in workers)
    assert run.decoded_round.tolist() == [t + scheme.delay for t in range(JOBS)]
    difference = (run.gradients - expected).abs().max()
    assert float(difference) <= TOLERANCE, (name, float(difference))
    assert float(expected.abs().max()) > 1.0  # not a vacuous comparison


@pytest.mark.parametrize("name", ["gc", "sr_sgc", "m_sgc"])
def test_stragglers_sent_nothing(name: str) -> None:
    """The master received a result of round r only from workers the pattern lets return in round r."""
    master = _runs()[0][name]
    pattern = master.stragglers
    scheme = _schemes()[name]
    schedule = scheme.schedule(JOBS)
    planned: dict[Any, int] = {}
    for r in range(pattern.shape[1]):
        for task in schedule.tasks(r):
            planned[task] = r
        schedule.record(r, ~pattern[:, r])
    received = [task for results in master.messages.values() for task in results]
    assert received and all(not pattern[task.worker, planned[task]] for task in received)
    computed = sum(ranks[name].tasks_computed for ranks in _runs())
    assert computed == len(received) and int(pattern.sum()) > 0


def test_a_decoder_that_ignores_who_returned_is_caught() -> None:
    """Wrong variant: GC's decoding vector for the first n - s workers applied to whoever returned."""
    master = _runs()[0]["gc"]
    scheme = _schemes()["gc"]
    expected = _uncoded()
    fixed = scheme.decoding_vector(list(range(N - scheme.s)))
    errors = []
    for job, results in master.messages.items():
        messages = {task.worker: message for task, message in results.items()}
        used = sorted(messages)[: N - scheme.s]
        wrong = sum(float(fixed[k]) * messages[w] for k, w in enumerate(used))
        errors.append(float((wrong - expected[job]).abs().max()))
    assert max(errors) > 1e-3, errors


def test_a_non_finite_gradient_stops_every_rank_with_the_workers_named() -> None:
    master, *workers = _runs()
    assert master["non-finite"].startswith("UnsupportedInputError: gradient_coding")
    assert "non-finite" in master["non-finite"] and "workers [2]" in master["non-finite"]
    for worker in workers:
        assert "the master stopped the run" in worker["non-finite"] and "workers [2]" in worker["non-finite"]


def test_different_models_on_the_ranks_are_refused_everywhere() -> None:
    for rank in _runs():
        assert "model parameters" in rank["different model"] and "1 process(es)" in rank["different model"]
