"""gradhub's optimizers through ``torch.distributed.checkpoint`` (DCP), in one process on the CPU.

``get_optimizer_state_dict`` / ``set_optimizer_state_dict`` (``torch.distributed.checkpoint.state_dict``)
key the state by parameter name and, for an optimizer that has not stepped yet, create its state
first with one step at lr 0 over zero gradients; ``dcp.save`` / ``dcp.load`` write and read a folder,
loading *in place* into the tensors of a target state dict. Each round trip is checked bit for bit:
right after loading, and after three more steps against the run that was never interrupted. Run
with no process group (DCP then works as a single process) and in a gloo group of one, as a
distributed job's rank would.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_optimizer_state_dict,
    get_state_dict,
    set_optimizer_state_dict,
    set_state_dict,
)

import gradhub

pytestmark = pytest.mark.filterwarnings(
    # Without a process group DCP says it works as a single process: that is what is meant here.
    "ignore:torch.distributed is disabled, unavailable or uninitialized, assuming the intent is to"
)

OPTIMIZERS = [
    ("adamp", {"lr": 2e-2, "betas": (0.8, 0.99), "weight_decay": 1e-2}),
    ("diffgrad", {"lr": 2e-2, "weight_decay": 1e-3}),
    ("sgdp", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
]
IDS = [name for name, _ in OPTIMIZERS]

_generator = torch.Generator().manual_seed(1)
INPUTS, TARGETS = torch.randn(16, 4, generator=_generator), torch.randn(16, 2, generator=_generator)

Compare = Callable[[nn.Module, torch.optim.Optimizer, nn.Module, torch.optim.Optimizer], list[str]]


def network(seed: int) -> nn.Sequential:
    """Linear -> LayerNorm -> Tanh -> Linear: the first weight is scale-invariant (AdamP/SGDP project it)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Tanh(), nn.Linear(8, 2))


def train(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int) -> None:
    for step in range(steps):
        rows = slice(step * 4 % 16, step * 4 % 16 + 4)
        optimizer.zero_grad()
        nn.functional.mse_loss(model(INPUTS[rows]), TARGETS[rows]).backward()
        optimizer.step()


def trained(name: str, kwargs: dict[str, Any]) -> tuple[nn.Module, torch.optim.Optimizer]:
    model = network(seed=0)
    optimizer = gradhub.get(name)(model.parameters(), **kwargs)
    train(model, optimizer, 3)
    return model, optimizer


def other_start(optimizer_class: type[torch.optim.Optimizer], kwargs: dict[str, Any]) -> tuple[nn.Module, Any]:
    """A model with other random weights and an optimizer with another lr: only the checkpoint makes them equal."""
    model = network(seed=1)
    return model, optimizer_class(model.parameters(), **{**kwargs, "lr": kwargs["lr"] / 2})


@pytest.fixture(params=["no process group", "gloo group of one"])
def process_group(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "gloo group of one":
        dist.init_process_group("gloo", init_method=f"file://{tmp_path}/process-group", rank=0, world_size=1)
        try:
            yield request.param
        finally:
            dist.destroy_process_group()
    else:
        assert not dist.is_initialized()
        yield request.param


@pytest.mark.parametrize(("name", "kwargs"), OPTIMIZERS, ids=IDS)
def test_get_and_set_optimizer_state_dict_round_trip(
    name: str, kwargs: dict[str, Any], process_group: str, run_differences: Compare
) -> None:
    model, optimizer = trained(name, kwargs)
    saved = get_optimizer_state_dict(model, optimizer)
    assert set(saved["state"]) == {name for name, _ in model.named_parameters()}  # keyed by parameter name

    restored, restored_optimizer = other_start(type(optimizer), kwargs)
    restored.load_state_dict(model.state_dict())
    set_optimizer_state_dict(restored, restored_optimizer, copy.deepcopy(saved))
    assert run_differences(model, optimizer, restored, restored_optimizer) == [], "right after loading"
    train(model, optimizer, 3)
    train(restored, restored_optimizer, 3)
    assert run_differences(model, optimizer, restored, restored_optimizer) == [], "after 3 more steps"


@pytest.mark.parametrize(("name", "kwargs"), OPTIMIZERS, ids=IDS)
def test_getting_the_state_dict_of_a_fresh_optimizer_leaves_the_model_alone(name: str, kwargs: dict[str, Any]) -> None:
    """DCP creates a fresh optimizer's state with one step at lr 0 over zero gradients: nothing may move."""
    model = network(seed=0)
    before = copy.deepcopy(model.state_dict())
    optimizer = gradhub.get(name)(model.parameters(), **kwargs)
    state = get_optimizer_state_dict(model, optimizer)
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())
    assert all(param.grad is None for param in model.parameters())
    assert optimizer.param_groups[0]["lr"] == kwargs["lr"]
    expected = set(optimizer.state_keys())
    assert state["state"] and all(set(entry) == expected for entry in state["state"].values())


@pytest.mark.parametrize("name", IDS)
def test_initialising_a_fresh_optimizers_state_warns_of_nothing(name: str) -> None:
    """The step DCP takes to create a fresh optimizer's state (lr 0, zero gradients) is not the user's first
    step: a warning about weights "with an all-zero gradient at their first step" (AdamP and SGDP, when they
    decay weights) would send users of DCP looking for frozen weights they do not have."""
    model = network(seed=0)
    kwargs = dict(OPTIMIZERS[IDS.index(name)][1], weight_decay=1e-2)
    optimizer = gradhub.get(name)(model.parameters(), **kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        get_optimizer_state_dict(model, optimizer)
    assert [str(warning.message) for warning in caught] == []


def dcp_resume_differences(
    optimizer_class: type[torch.optim.Optimizer],
    kwargs: dict[str, Any],
    directory: Path,
    run_differences: Compare,
    options: StateDictOptions | None = None,
) -> list[str]:
    """What a run restored by ``dcp.load`` disagrees on with the uninterrupted run, bit for bit.

    Three steps, ``dcp.save`` of the model's and the optimizer's state dicts (``get_state_dict``); a model
    with other weights and an optimizer with another lr, their (initialised) state dicts filled in place
    by ``dcp.load`` and set back (``set_state_dict``); the differences right after loading and after three
    more steps on both runs, each prefixed by when it was seen.
    """
    model = network(seed=0)
    optimizer = optimizer_class(model.parameters(), **kwargs)
    train(model, optimizer, 3)
    model_state, optimizer_state = get_state_dict(model, optimizer, options=options)
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=str(directory))

    restored, restored_optimizer = other_start(optimizer_class, kwargs)
    target_model, target_optimizer = get_state_dict(restored, restored_optimizer, options=options)
    target = {"model": target_model, "optimizer": target_optimizer}
    dcp.load(target, checkpoint_id=str(directory))
    set_state_dict(
        restored,
        restored_optimizer,
        model_state_dict=target["model"],
        optim_state_dict=target["optimizer"],
        options=options,
    )
    found = [f"after loading: {key}" for key in run_differences(model, optimizer, restored, restored_optimizer)]
    train(model, optimizer, 3)
    train(restored, restored_optimizer, 3)
    found += [f"after 3 more steps: {key}" for key in run_differences(model, optimizer, restored, restored_optimizer)]
    return found


@pytest.mark.parametrize(("name", "kwargs"), OPTIMIZERS, ids=IDS)
def test_dcp_save_and_load_continue_exactly_as_the_uninterrupted_run(
    name: str, kwargs: dict[str, Any], process_group: str, tmp_path: Path, run_differences: Compare
) -> None:
    assert dcp_resume_differences(gradhub.get(name), kwargs, tmp_path / "checkpoint", run_differences) == []


def test_dcp_with_a_flattened_optimizer_state_dict(tmp_path: Path, run_differences: Compare) -> None:
    """``flatten_optimizer_state_dict=True`` (one key per tensor, the form for resharding pipelines)."""
    options = StateDictOptions(flatten_optimizer_state_dict=True)
    name, kwargs = OPTIMIZERS[0]
    assert dcp_resume_differences(gradhub.get(name), kwargs, tmp_path / "checkpoint", run_differences, options) == []


def test_the_dcp_comparison_sees_an_optimizer_that_loses_state_on_load(
    tmp_path: Path, run_differences: Compare
) -> None:
    class SGDPDroppingItsMomentum(gradhub.get("sgdp")):
        """SGDP whose ``load_state_dict`` ignores the saved momentum buffers (restarts them from zeros)."""

        def load_state_dict(self, state_dict: dict[str, Any]) -> None:
            super().load_state_dict(state_dict)
            for state in self.state.values():
                state["momentum"].zero_()

    kwargs = OPTIMIZERS[IDS.index("sgdp")][1]
    found = dcp_resume_differences(SGDPDroppingItsMomentum, kwargs, tmp_path / "checkpoint", run_differences)
    assert any(key.startswith("after loading: state ") and key.endswith(".momentum") for key in found), found
    assert any(key.startswith("after 3 more steps: parameter ") for key in found), found
