"""Distributed conformance for optimizers: DDP and FSDP2 in 2 CPU processes (gloo) against one process.

Every optimizer whose spec declares ``ddp`` (or ``fsdp2``) ``status="tested"`` is run on a small
MLP in float64 in two processes spawned by the check, each on its half of a global batch:

- DDP: gradients are averaged across the processes before ``step()``; after a few steps the
  parameters must be identical on both ranks and equal (to 1e-10) those of one process
  stepping on the whole batch (the loss is a mean, so the averaged gradient is the same).
- FSDP2 (``fully_shard`` per layer and at the root): parameters, gradients and optimizer
  state are DTensor shards of dim 0; the gathered parameters must equal the one-process
  run to 1e-10. An optimizer that reduces over a whole tensor by hand (a per-layer norm on
  its local shard) fails here and should declare ``unsupported`` with that reason.

Both modes run in one pair of processes per method (spawning costs seconds); the checks
share the result. Optimizers that need a closure get the standard one (zero_grad, forward,
backward, loss); one whose closure means something else declares DDP unsupported.
"""

from __future__ import annotations

import functools
import importlib
import importlib.machinery
import importlib.util
import os
import pickle
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

import torch

from gradhub.kinds.optimizer import OptimizerExample
from gradhub.specs import MethodSpec
from gradhub.testing._helpers import fail, load_example, load_target
from gradhub.testing._suite import conformance_check
from gradhub.testing.processes import SPAWN_SECONDS, WORLD_SIZE, in_processes, join_group, spawn

__all__ = [
    "SPAWN_SECONDS",
    "WORLD_SIZE",
    "check_ddp_matches_single_process",
    "check_fsdp2_matches_single_process",
    "in_processes",
    "spawn",
]

STEPS = 4
GLOBAL_BATCH = 16
TOLERANCE = 1e-10
MODES = ("ddp", "fsdp2")


def _tested(mode: str) -> Any:
    def applies(spec: MethodSpec) -> bool:
        support = getattr(spec.capabilities, mode, None)
        return support is not None and support.status == "tested"

    return applies


def problem(seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The distributed checks' problem: an MLP 6 -> 12 -> 12 -> 3 (tanh) and a global batch, in float64."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = torch.nn.Sequential(
            torch.nn.Linear(6, 12), torch.nn.Tanh(), torch.nn.Linear(12, 12), torch.nn.Tanh(), torch.nn.Linear(12, 3)
        ).double()
    inputs = torch.randn(GLOBAL_BATCH, 6, generator=generator, dtype=torch.float64)
    labels = torch.randint(3, (GLOBAL_BATCH,), generator=generator)
    return model, inputs, labels


def _train(
    optimizer_class: Any,
    hparams: dict[str, Any],
    model: torch.nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    requires_closure: bool,
) -> None:
    optimizer = optimizer_class(model.parameters(), **hparams)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(inputs), labels)
        loss.backward()
        return loss

    for _ in range(STEPS):
        if requires_closure:
            optimizer.step(closure)
        else:
            closure()
            optimizer.step()


def _file_loaded_modules() -> dict[str, str]:
    """Top-level modules the parent loaded from a file that cannot be imported by name (test fixtures
    loaded with importlib, notebooks' helpers), in load order: a spawned process loads them the same way."""
    found = {}
    prefixes = tuple({sys.prefix, sys.base_prefix})
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if "." in name or not path or not path.endswith(".py") or path.startswith(prefixes):
            continue
        try:  # PathFinder searches sys.path only (find_spec would answer from sys.modules)
            importable = importlib.machinery.PathFinder.find_spec(name) is not None
        except (ImportError, ValueError):
            importable = False
        if not importable:
            found[name] = path
    return found


def _import_target(target: str, module_files: dict[str, str]) -> Any:
    """The target in a spawned process, after loading the parent's file-loaded modules the same way."""
    for name, path in module_files.items():
        if name not in sys.modules:
            spec = importlib.util.spec_from_file_location(name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
    module_name, _, attribute = target.partition(":")
    value: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        value = getattr(value, part)
    return value


def _worker(rank: int, payload: dict[str, Any]) -> None:
    """One rank: train under each requested mode, save the gathered parameters (or the error)."""
    import torch.distributed as dist

    out = Path(payload["out"])
    join_group(rank, payload["init_file"], WORLD_SIZE)
    try:
        optimizer_class = _import_target(payload["target"], payload["module_files"])
        for mode in payload["modes"]:
            try:
                model, inputs, labels = problem()
                local = slice(rank * GLOBAL_BATCH // WORLD_SIZE, (rank + 1) * GLOBAL_BATCH // WORLD_SIZE)
                if mode == "ddp":
                    from torch.nn.parallel import DistributedDataParallel

                    wrapped: torch.nn.Module = DistributedDataParallel(model)
                else:
                    from torch.distributed.device_mesh import init_device_mesh
                    from torch.distributed.fsdp import fully_shard

                    mesh = init_device_mesh("cpu", (WORLD_SIZE,))
                    for layer in model:
                        if isinstance(layer, torch.nn.Linear):
                            fully_shard(layer, mesh=mesh)
                    wrapped = fully_shard(model, mesh=mesh)
                _train(
                    optimizer_class,
                    payload["hparams"],
                    wrapped,
                    inputs[local],
                    labels[local],
                    payload["requires_closure"],
                )
                gathered = [
                    (p.full_tensor() if hasattr(p, "full_tensor") else p).detach().clone() for p in model.parameters()
                ]
                torch.save(gathered, out / f"{mode}-{rank}.pt")
            except Exception:
                (out / f"{mode}-{rank}.error").write_text(traceback.format_exc())
        dist.barrier()  # both ranks done with every collective before the group is torn down
    finally:
        dist.destroy_process_group()


@functools.lru_cache(maxsize=64)
def _distributed_run(payload_bytes: bytes) -> dict[str, Any]:
    """Spawn the ranks once for a method and all its tested modes; per mode, the ranks' parameters or errors."""
    payload = pickle.loads(payload_bytes)
    with tempfile.TemporaryDirectory(prefix="gradhub-distributed-") as directory:
        payload["out"] = directory
        payload["init_file"] = os.path.join(directory, "rendezvous")
        try:
            spawn(_worker, (payload,), WORLD_SIZE)
        except Exception as error:  # a rank crashed outside a mode (import, rendezvous, teardown) or hung
            if _complete(Path(directory), payload["modes"]):
                # Every rank saved every result before dying: a crash in gloo's teardown at
                # process exit ("terminate called without an active exception"), not the method's.
                return _collect(Path(directory), payload["modes"])
            hint = (
                "\n(the check spawns processes: a script that calls gradhub.testing.check must guard it with "
                '`if __name__ == "__main__":`)'
                if "bootstrapping phase" in str(error)
                else ""
            )
            return {mode: {"error": f"the processes failed: {error}{hint}"} for mode in payload["modes"]}
        return _collect(Path(directory), payload["modes"])


def _complete(directory: Path, modes: list[str]) -> bool:
    return all(
        (directory / f"{mode}-{rank}.pt").exists() or (directory / f"{mode}-{rank}.error").exists()
        for mode in modes
        for rank in range(WORLD_SIZE)
    )


def _collect(directory: Path, modes: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for mode in modes:
        errors = sorted(directory.glob(f"{mode}-*.error"))
        if errors:
            results[mode] = {"error": errors[0].read_text()}
        else:
            results[mode] = {"ranks": [torch.load(directory / f"{mode}-{rank}.pt") for rank in range(WORLD_SIZE)]}
    return results


def _results(spec: MethodSpec) -> tuple[dict[str, Any], list[torch.Tensor]]:
    example = load_example(spec, torch.device("cpu"), torch.float64, 0, OptimizerExample)
    hparams = {key: value for key, value in example.hparams.items() if key != "foreach"}
    modes = [mode for mode in MODES if _tested(mode)(spec)]
    payload = {
        "target": spec.target,
        "module_files": _file_loaded_modules(),
        "hparams": hparams,
        "modes": modes,
        "requires_closure": spec.capabilities.requires_closure,
    }
    try:
        payload_bytes = pickle.dumps(payload)
    except Exception as error:
        fail(spec, f"its example's hyperparameters cannot be sent to another process ({error})")
    model, inputs, labels = problem()
    _train(load_target(spec), hparams, model, inputs, labels, spec.capabilities.requires_closure)
    reference = [p.detach().clone() for p in model.parameters()]
    return _distributed_run(payload_bytes), reference


def _compare(spec: MethodSpec, mode: str, name: str) -> None:
    results, reference = _results(spec)
    result = results[mode]
    if "error" in result:
        fail(spec, f"under {name} in {WORLD_SIZE} processes it raised:\n{result['error'].strip()[-1500:]}")
    first, *others = result["ranks"]
    for rank, params in enumerate(others, 1):
        if not all(torch.equal(a, b) for a, b in zip(first, params)):
            fail(spec, f"under {name} the parameters on rank {rank} differ from rank 0's after {STEPS} steps")
    for index, (ours, expected) in enumerate(zip(first, reference)):
        if not torch.allclose(ours, expected, rtol=TOLERANCE, atol=TOLERANCE):
            difference = (ours - expected).abs().max().item()
            fail(
                spec,
                f"under {name} parameter {index} differs from a one-process run over the same global batch by "
                f"{difference:.3g} after {STEPS} steps (tolerance {TOLERANCE})",
            )


@conformance_check("optimizer", dtypes="none", per_device=False, applies=_tested("ddp"), when='ddp status is "tested"')
def check_ddp_matches_single_process(spec: MethodSpec, device: Any, dtype: Any) -> None:
    """Under DDP (gloo, 2 CPU processes) parameters agree across ranks and with one process on the global batch."""
    _compare(spec, "ddp", "DistributedDataParallel")


@conformance_check(
    "optimizer", dtypes="none", per_device=False, applies=_tested("fsdp2"), when='fsdp2 status is "tested"'
)
def check_fsdp2_matches_single_process(spec: MethodSpec, device: Any, dtype: Any) -> None:
    """Under FSDP2 fully_shard (gloo, 2 CPU processes) the gathered parameters equal one process's."""
    _compare(spec, "fsdp2", "FSDP2 fully_shard")
