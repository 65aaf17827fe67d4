"""M-FAC under FSDP2: a broken fixture for the suite's check, and a 2-process harness.

Under FSDP2 each process holds a shard of every parameter and keeps the window rows of its
shard; the m-vector ``G g`` is a sum over all coordinates, so each process's part must be
summed across processes before the solve (``G G^T`` is built from it).

- :class:`LocalProductsMFAC` solves with its own shard's ``G g`` only: the bug the FSDP2
  check must catch.
- :func:`distributed_runs` spawns 2 gloo processes once and runs every scenario of
  :data:`SCENARIOS` under FSDP2 (``fully_shard`` per linear layer and at the root); each
  scenario's gathered parameters are compared with :func:`single_process` on the global batch.

This module is imported by name in the spawned processes (the folder is on ``sys.path``, see
``conftest.py``), so it holds everything they run.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any
from unittest import mock

import gradhub_mfac.optimizer as mfac_optimizer
import torch
from gradhub_mfac.optimizer import MFAC
from torch import Tensor, nn

from gradhub.testing.distributed import GLOBAL_BATCH, STEPS, in_processes, problem

WORLD = 2
TOLERANCE = 1e-10
HPARAMS = {"lr": 1e-2, "momentum": 0.5, "weight_decay": 1e-3, "ngrads": 3, "damp": 1e-2}
"""A window of 3 gradients: it wraps within the 4 steps."""


def _local_products(products: Tensor, sharded: dict[tuple[Any, ...], Tensor]) -> None:
    """The bug: each process's shard products added as they are, not summed over processes."""
    for partial in sharded.values():
        products += partial


class LocalProductsMFAC(MFAC):
    """M-FAC whose window products ``G g`` (and so ``G G^T``) cover its local shard only.

    Under FSDP2 each process solves with its half of the Fisher; in one process it is M-FAC.
    """

    def step(self, closure: Any = None) -> Any:
        with mock.patch.object(mfac_optimizer, "_sum_products", _local_products):
            return super().step(closure)


class Net(nn.Module):
    """An MLP with a one-row weight, of which one of the two processes holds no row."""

    def __init__(self) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1)
            self.layers = nn.ModuleList([nn.Linear(6, 12), nn.Linear(12, 12), nn.Linear(12, 3), nn.Linear(12, 1)])
            self.layers.double()

    def forward(self, inputs: Tensor, labels: Tensor) -> Tensor:
        hidden = torch.tanh(self.layers[1](torch.tanh(self.layers[0](inputs))))
        logits, gate = self.layers[2](hidden), self.layers[3](hidden)
        return nn.functional.cross_entropy(logits, labels) + gate.square().mean()


SCENARIOS: dict[str, dict[str, Any]] = {
    "mfac": {},
    "mfac-per-tensor": {"foreach": False},
    "mfac-check-mlp": {"model": "check"},
    "mfac-sparse": {"sparse": True},
    "mfac-no-momentum": {"momentum": 0.0},
    "mfac-a-gradient-none": {"grad_none_at": 2},
    "mfac-non-finite-on-one-process": {"nan_at": 1},
    "mfac-resumed": {"resume_at": 2},
    "mfac-resumed-through-dcp": {"resume_at": 2, "dcp": True},
    "mfac-with-a-plain-tensor": {"plain_tensor": True},
    "mfac-sharded-along-dim-1": {"shard_dim": 1},
}
"""Options beyond :data:`HPARAMS`; the test-only ones are read by :func:`train`."""
TEST_OPTIONS = ("model", "grad_none_at", "nan_at", "resume_at", "dcp", "plain_tensor", "shard_dim")


def _model(options: dict[str, Any]) -> tuple[nn.Module, Any, Tensor, Tensor]:
    model, inputs, labels = problem()
    if options.get("model") == "check":
        return model, (lambda module, x, y: nn.functional.cross_entropy(module(x), y)), inputs, labels
    model = Net()
    if options.get("sparse"):
        with torch.no_grad():
            for param in model.parameters():
                if param.dim() > 1:
                    param[:, ::3] = 0
    return model, (lambda module, x, y: module(x, y)), inputs, labels


def _whole(tensor: Tensor) -> Tensor:
    return (tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor).detach().clone()


def train(
    options: dict[str, Any], model: nn.Module, loss: Any, inputs: Tensor, labels: Tensor, rank: int | None = None
) -> dict[str, Any]:
    """Train :data:`STEPS` steps; the parameters gathered whole and the groups' skipped-step counts.

    ``rank`` is None in one process; with ``nan_at`` a NaN enters one gradient entry at that step,
    on process 0 only under FSDP2 (in its shard), at the same entry in one process.
    """
    hparams = {**HPARAMS, **{key: value for key, value in options.items() if key not in TEST_OPTIONS}}
    plain = None
    if options.get("plain_tensor"):
        plain = nn.Parameter(torch.randn(5, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64))
    params = [*model.parameters(), *([plain] if plain is not None else [])]
    optimizer = MFAC(params, **hparams)
    for step in range(STEPS):
        if step == options.get("resume_at") and options.get("dcp"):
            from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict

            saved = get_optimizer_state_dict(model, optimizer)
            optimizer = MFAC(params, **hparams)
            set_optimizer_state_dict(model, optimizer, saved)
        elif step == options.get("resume_at"):
            saved = optimizer.state_dict()
            optimizer = MFAC(params, **hparams)
            optimizer.load_state_dict(saved)
        optimizer.zero_grad()
        loss(model, inputs, labels).backward()
        if plain is not None:
            plain.grad = torch.sin(plain.detach() * (step + 1))
        if step == options.get("grad_none_at"):
            params[1].grad = None
        if step == options.get("nan_at") and rank in (None, 0):
            grad = params[0].grad
            (grad.to_local() if hasattr(grad, "to_local") else grad)[0, 0] = float("nan")
        optimizer.step()
    skipped = [optimizer.state[key]["skipped_steps"] for key in optimizer.state if isinstance(key, str)]
    return {"params": [_whole(param) for param in params], "skipped": skipped}


def single_process(name: str) -> dict[str, Any]:
    """One process over the global batch: what :func:`train` returns, and the warnings."""
    options = SCENARIOS[name]
    model, loss, inputs, labels = _model(options)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(options, model, loss, inputs, labels)
    return {**result, "warnings": [f"{w.category.__name__}: {w.message}" for w in caught]}


def _sharded(model: nn.Module, shard_dim: int) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import Shard

    mesh = init_device_mesh("cpu", (WORLD,))

    def placement(param: nn.Parameter) -> Shard:
        return Shard(shard_dim if param.dim() > 1 else 0)

    for module in model.modules():
        if isinstance(module, nn.Linear):
            fully_shard(module, mesh=mesh, shard_placement_fn=placement)
    fully_shard(model, mesh=mesh, shard_placement_fn=placement)


def _body(rank: int, world: int) -> dict[str, Any]:
    """What one process runs (gradhub.testing.distributed.in_processes spawns it)."""
    local = slice(rank * GLOBAL_BATCH // world, (rank + 1) * GLOBAL_BATCH // world)
    results: dict[str, Any] = {}
    for name, options in SCENARIOS.items():
        model, loss, inputs, labels = _model(options)
        _sharded(model, options.get("shard_dim", 0))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                results[name] = train(options, model, loss, inputs[local], labels[local], rank)
            except Exception as error:
                results[name] = {"error": f"{type(error).__name__}: {error}"}
        results[name]["warnings"] = [f"{w.category.__name__}: {w.message}" for w in caught]
    return results


@functools.cache
def distributed_runs() -> list[dict[str, Any]]:
    """Every scenario under FSDP2 in 2 processes (spawned once): per rank, per scenario, results or error."""
    return in_processes(_body, WORLD)
