"""(loss, logp) closures in 2 processes (gloo): the ``distributed`` hyperparameter's three modes.

Such a closure is differentiated inside the optimizer with ``torch.autograd.grad``, which DDP's
gradient all-reduce never sees. Measured before the ``distributed`` hyperparameter existed:
N-HARPG under DDP left the two ranks 0.034 and 0.024 away from the one-process run, with no
error. The conformance suite's DDP/FSDP2 checks cover the torch.optim closure form; these
tests cover the other one. One pair of processes (spawned once, a few seconds) runs every
scenario and saves what it saw; the tests read it.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch
from gradhub_harpg.harpg import HARPG, NHARPG
from gradhub_harpg.npg_igt import NPGIGT

from gradhub.testing.distributed import GLOBAL_BATCH, in_processes, problem

WORLD = 2
STEPS = 4
OPTIMIZERS = {cls.method: cls for cls in (NPGIGT, HARPG, NHARPG)}


def _closure(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor, with_logp: bool):
    """A (loss,) closure (a deterministic objective: everything linear in the batch) or a (loss, logp) one."""

    def closure() -> tuple[torch.Tensor, ...]:
        logits = model(inputs)
        loss = torch.nn.functional.cross_entropy(logits, labels)
        if not with_logp:
            return (loss,)
        return loss, torch.log_softmax(logits, -1).gather(1, labels[:, None]).sum()

    return closure


def _train(name: str, model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor, **options: Any) -> None:
    with_logp = options.pop("with_logp", False)
    optimizer = OPTIMIZERS[name](model.parameters(), lr=0.1, **options)
    closure = _closure(model, inputs, labels, with_logp)
    for _ in range(STEPS):
        optimizer.step(closure)


def _parameters(model: torch.nn.Module) -> list[torch.Tensor]:
    return [(p.full_tensor() if hasattr(p, "full_tensor") else p).detach().clone() for p in model.parameters()]


def _body(rank: int, world: int) -> dict[str, Any]:
    """What one process runs (gradhub.testing.distributed.in_processes spawns it)."""
    local = slice(rank * GLOBAL_BATCH // world, (rank + 1) * GLOBAL_BATCH // world)
    results: dict[str, Any] = {}
    for name in OPTIMIZERS:
        for mode, with_logp in (("average", False), ("average", True), ("local", False), ("error", False)):
            model, inputs, labels = problem()
            wrapped = torch.nn.parallel.DistributedDataParallel(model)
            key = f"{name}-{mode}-{'logp' if with_logp else 'loss'}"
            try:
                _train(name, wrapped, inputs[local], labels[local], distributed=mode, with_logp=with_logp)
                results[key] = _parameters(model)
            except Exception as error:
                results[key] = f"{type(error).__name__}: {error}"
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        model, inputs, labels = problem()
        sharded = fully_shard(model, mesh=init_device_mesh("cpu", (WORLD,)))
        try:
            _train(name, sharded, inputs[local], labels[local], distributed="average")
            results[f"{name}-fsdp2"] = _parameters(model)
        except Exception as error:
            results[f"{name}-fsdp2"] = f"{type(error).__name__}: {error}"
    return results


@functools.cache
def _runs() -> list[dict[str, Any]]:
    """DDP and FSDP2 runs of every optimizer in 2 processes (spawned once), per rank."""
    return in_processes(_body, WORLD)


def _single(name: str, rows: slice | None = None, **options: Any) -> list[torch.Tensor]:
    model, inputs, labels = problem()
    rows = rows or slice(None)
    _train(name, model, inputs[rows], labels[rows], **options)
    return _parameters(model)


def _assert_close(first: list[torch.Tensor], second: list[torch.Tensor], tolerance: float = 1e-10) -> None:
    assert len(first) == len(second)
    for a, b in zip(first, second):
        assert torch.allclose(a, b, rtol=0, atol=tolerance), float((a - b).abs().max())


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_average_of_a_deterministic_closure_equals_one_process_on_the_global_batch(name: str) -> None:
    ranks = _runs()
    for rank in ranks:
        assert not isinstance(rank[f"{name}-average-loss"], str), rank[f"{name}-average-loss"]
    _assert_close(ranks[0][f"{name}-average-loss"], ranks[1][f"{name}-average-loss"], 0.0)
    _assert_close(ranks[0][f"{name}-average-loss"], _single(name, distributed="error"))


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_average_with_logp_keeps_the_ranks_identical(name: str) -> None:
    """The score term g <grad logp, v> is a product of batch quantities: the mean of the ranks' estimates
    is a mini-batch of estimates (as the paper's batched B), not one process's product; the ranks agree."""
    ranks = _runs()
    first, second = ranks[0][f"{name}-average-logp"], ranks[1][f"{name}-average-logp"]
    assert not isinstance(first, str), first
    _assert_close(first, second, 0.0)
    moved = max(float((a - b).abs().max()) for a, b in zip(first, _parameters(problem()[0])))
    assert moved > 1e-3


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_local_mode_steps_each_process_on_its_own_batch(name: str) -> None:
    ranks = _runs()
    half = GLOBAL_BATCH // WORLD
    for rank, result in enumerate(ranks):
        _assert_close(result[f"{name}-local-loss"], _single(name, slice(rank * half, (rank + 1) * half)))
    difference = max(
        float((a - b).abs().max()) for a, b in zip(ranks[0][f"{name}-local-loss"], ranks[1][f"{name}-local-loss"])
    )
    assert difference > 1e-3


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_error_mode_refuses_with_the_choices(name: str) -> None:
    for result in _runs():
        message = result[f"{name}-error-loss"]
        assert isinstance(message, str) and message.startswith("UnsupportedInputError")
        assert name in message and "distributed" in message and "'average'" in message and "'local'" in message


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_average_refuses_fsdp2_shards(name: str) -> None:
    for result in _runs():
        message = result[f"{name}-fsdp2"]
        assert isinstance(message, str) and message.startswith("UnsupportedInputError")
        assert "DTensor" in message and "torch.optim closure" in message


def test_one_process_ignores_the_mode() -> None:
    """No process group: every mode is the plain algorithm."""
    for name in OPTIMIZERS:
        _assert_close(_single(name, distributed="error"), _single(name, distributed="average"), 0.0)
