"""AdamP and SGDP under FSDP2: an example and a broken fixture for the suite's check, and a 2-process harness.

Under FSDP2's ``Shard(0)`` each process holds whole rows of every weight: the channel view's
per-row cosines are local, but its decision (every row passes) and the layer view's norms and
dot products are over the whole weight and must be summed across processes.

- :func:`projection_example` (``delta=2``): on the FSDP2 check's MLP both views fire within
  its 4 steps (with the suite's default ``delta=0.1`` neither does, so the projection would go
  unchecked); :class:`LocalLayerViewAdamP` sums the layer view over its local shard only, the
  bug the check must catch.
- :func:`distributed_runs` spawns 2 gloo processes once and runs every scenario of
  :data:`SCENARIOS` under FSDP2 (``fully_shard`` per linear layer and at the root); each
  scenario's gathered parameters are compared with :func:`single_process` on the global batch.

This module is imported by name in the spawned processes (the folder is on ``sys.path``, see
``conftest.py``), so it holds everything they run.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any
from unittest import mock

import gradhub_adamp.multitensor as multitensor
import torch
from gradhub_adamp.adamp import AdamP
from gradhub_adamp.projection import project_radial
from gradhub_adamp.sgdp import SGDP
from torch import Tensor, nn

from gradhub.kernels import all_reduce_over
from gradhub.kinds.optimizer import OptimizerExample, standard_problem
from gradhub.testing.distributed import GLOBAL_BATCH, STEPS, in_processes, problem

WORLD = 2
TOLERANCE = 1e-10
ADAMP_PROJECTING = {"lr": 1e-2, "weight_decay": 1e-2, "delta": 2.0}
"""On the check's MLP, AdamP's decisions over its 4 steps: channel view 9 times, layer view 3 times."""
SGDP_PROJECTING = {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-3, "delta": 2.0}


def projection_example(
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> OptimizerExample:
    """The suite's AdamP example with ``delta=2``: the projection fires on the distributed checks' MLP."""
    model, loss = standard_problem(device, dtype, seed)
    return OptimizerExample(model=model, loss=loss, hparams=dict(ADAMP_PROJECTING), steps=10)


def _local_layer_sums(sums: Tensor, groups: tuple[Any, ...]) -> None:
    """The bug: the channel test's failures are summed over processes, the layer view's sums are not."""
    failures = sums[:, :1].clone()
    all_reduce_over(failures, groups)
    sums[:, :1] = failures


def _local_layer_view_adamp(*args: Any) -> None:
    with mock.patch.object(multitensor, "all_reduce_over", _local_layer_sums):
        AdamP.multi_tensor(*args)


class LocalLayerViewAdamP(AdamP):
    """AdamP whose layer view uses the norms and ``<g, w>``, ``<w, u>`` of its local shard only.

    Under FSDP2 its layer-view cosine and projection scale are those of half a weight; in one
    process it is AdamP.
    """

    multi_tensor = staticmethod(_local_layer_view_adamp)


class Net(nn.Module):
    """An MLP with what the check's MLP lacks: two same-shape weights (stacked in one batch) and a
    one-row weight, of which one of the two processes holds no row."""

    def __init__(self) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1)
            self.layers = nn.ModuleList(
                [nn.Linear(6, 12), nn.Linear(12, 12), nn.Linear(12, 12), nn.Linear(12, 3), nn.Linear(12, 1)]
            ).double()

    def forward(self, inputs: Tensor, labels: Tensor) -> Tensor:
        hidden = inputs
        for layer in self.layers[:3]:
            hidden = torch.tanh(layer(hidden))
        logits, gate = self.layers[3](hidden), self.layers[4](hidden)
        return nn.functional.cross_entropy(logits, labels) + gate.square().mean()


Scenario = tuple[str, str, dict[str, Any]]
"""(method, model: "check" for the check's MLP or "net" for :class:`Net`, options)."""

SCENARIOS: dict[str, Scenario] = {
    "adamp": ("adamp", "check", ADAMP_PROJECTING),
    "adamp-net": ("adamp", "net", ADAMP_PROJECTING),
    "adamp-per-tensor": ("adamp", "net", {**ADAMP_PROJECTING, "foreach": False}),
    "adamp-nesterov-maximize": ("adamp", "net", {**ADAMP_PROJECTING, "delta": 1.0, "nesterov": True, "maximize": True}),
    "adamp-fused": ("adamp", "net", {**ADAMP_PROJECTING, "fused": True}),
    "adamp-with-a-plain-tensor": ("adamp", "net", {**ADAMP_PROJECTING, "plain_tensor": True}),
    "adamp-a-zero-gradient": ("adamp", "net", {**ADAMP_PROJECTING, "zero_gradient": True}),
    "sgdp": ("sgdp", "net", SGDP_PROJECTING),
    "sgdp-per-tensor": ("sgdp", "net", {**SGDP_PROJECTING, "foreach": False}),
    "sgdp-nesterov": ("sgdp", "net", {**SGDP_PROJECTING, "delta": 1.0, "nesterov": True}),
    "adamp-rows-split": ("adamp", "net", {**ADAMP_PROJECTING, "shard_dim": 1}),
}
OPTIMIZERS = {"adamp": AdamP, "sgdp": SGDP}


def _model(kind: str) -> tuple[nn.Module, Callable[[nn.Module, Tensor, Tensor], Tensor], Tensor, Tensor]:
    """The model, its loss and the global batch (the check's for both)."""
    model, inputs, labels = problem()
    if kind == "check":
        return model, (lambda module, x, y: nn.functional.cross_entropy(module(x), y)), inputs, labels
    return Net(), (lambda module, x, y: module(x, y)), inputs, labels


def _plain_tensor() -> nn.Parameter:
    """A weight outside FSDP2 in the optimizer's group: plain, the same on every process."""
    generator = torch.Generator().manual_seed(2)
    return nn.Parameter(torch.randn(5, 4, generator=generator, dtype=torch.float64))


def train(
    scenario: Scenario, model: nn.Module, loss: Callable[..., Tensor], inputs: Tensor, labels: Tensor
) -> tuple[list[Tensor], set[str]]:
    """Train :data:`STEPS` steps; the parameters gathered whole, and the views that fired (in one process)."""
    method, _, options = scenario
    options = dict(options)
    plain = _plain_tensor() if options.pop("plain_tensor", False) else None
    zero_gradient = options.pop("zero_gradient", False)
    options.pop("shard_dim", None)
    params = [*model.parameters(), *([plain] if plain is not None else [])]
    optimizer = OPTIMIZERS[method](params, **options)
    fired = set()
    for step in range(STEPS):
        optimizer.zero_grad()
        loss(model, inputs, labels).backward()
        if plain is not None:
            plain.grad = torch.sin(plain.detach() * (step + 1))
        if zero_gradient and step == 0:
            params[0].grad.zero_()  # the weight counts as scale-invariant: AdamP warns at its first step
        for param in params:
            if param.dim() > 1 and not hasattr(param, "to_local"):
                fired.add(str(project_radial(param, param.grad, param.grad, delta=options["delta"])[2]))
        optimizer.step()
    return [(p.full_tensor() if hasattr(p, "full_tensor") else p).detach().clone() for p in params], fired


def single_process(name: str) -> tuple[list[Tensor], set[str], list[str]]:
    """One process over the global batch: the parameters after training, the views that fired, the warnings."""
    method, kind, options = SCENARIOS[name]
    # fused=True takes no DTensor shards (they take the multi-tensor path): that path is the reference, and
    # the kernel is not compiled for it.
    scenario = (method, kind, {key: value for key, value in options.items() if key != "fused"})
    model, loss, inputs, labels = _model(kind)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        params, fired = train(scenario, model, loss, inputs, labels)
    return params, fired, [f"{w.category.__name__}: {w.message}" for w in caught]


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
    for name, scenario in SCENARIOS.items():
        model, loss, inputs, labels = _model(scenario[1])
        _sharded(model, scenario[2].get("shard_dim", 0))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                params, _ = train(scenario, model, loss, inputs[local], labels[local])
                results[name] = {"params": params}
            except Exception as error:
                results[name] = {"error": f"{type(error).__name__}: {error}"}
        results[name]["warnings"] = [f"{w.category.__name__}: {w.message}" for w in caught]
    return results


@functools.cache
def distributed_runs() -> list[dict[str, Any]]:
    """Every scenario under FSDP2 in 2 processes (spawned once): per rank, per scenario, params or error."""
    return in_processes(_body, WORLD)
