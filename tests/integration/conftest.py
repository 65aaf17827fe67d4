"""Shared set-up for the integration tests: gradhub's optimizers inside what people train with.

The tests in this folder pin what works today with the Hugging Face ``Trainer``, Lightning,
``torch.distributed.checkpoint``, ``torch.amp`` and torch's LR schedulers, so it stays working.
Everything runs offline on the CPU in a few steps: tiny models with random weights built by the
tests, synthetic data, output folders under ``tmp_path``.

Resume and round-trip checks compare two runs *bit for bit* (``torch.equal``): the parameters, every
optimizer state tensor (with its dtype) and the param groups' values. The comparison lives here as
fixtures (under ``--import-mode=importlib`` this folder is not importable), so the self-tests that
plant a broken optimizer exercise the very check the real tests use.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

Snapshot = dict[str, Any]


def training_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> Snapshot:
    """A copy of a run's state, flat and keyed by parameter name.

    ``parameter <name>`` for each parameter, ``state <name>.<key>`` for each entry of the optimizer's
    per-parameter state (``step``, ``exp_avg``, ...), ``group <i> <key>`` for each param group's values
    (``lr``, ``betas``, what a scheduler added) and ``group <i> params`` for the names the group holds.
    Naming by parameter (not by position) makes two models built alike comparable. A group's
    ``differentiable`` is left out: torch's ``Optimizer.__setstate__`` adds it to ``defaults`` and gradhub's
    copies the defaults into the groups, so it shows up only after a ``load_state_dict`` (accelerate runs
    one when it wraps an optimizer), with the value every step here uses (False).
    """
    names = {id(param): name for name, param in model.named_parameters()}
    flat: Snapshot = {f"parameter {name}": param.detach().clone() for name, param in model.named_parameters()}
    for param, state in optimizer.state.items():
        for key, value in state.items():
            flat[f"state {names[id(param)]}.{key}"] = value.clone() if isinstance(value, torch.Tensor) else value
    for index, group in enumerate(optimizer.param_groups):
        for key, value in group.items():
            if key not in ("params", "differentiable"):
                flat[f"group {index} {key}"] = value.clone() if isinstance(value, torch.Tensor) else value
        flat[f"group {index} params"] = [names[id(param)] for param in group["params"]]
    return flat


def snapshot_differences(first: Mapping[str, Any], second: Mapping[str, Any]) -> list[str]:
    """The keys whose values differ (sorted): tensors bit for bit (dtype, shape, every value), others by ``==``.

    A key present in only one snapshot is a difference too.
    """
    different = []
    for key in sorted(first.keys() | second.keys()):
        if key not in first or key not in second:
            different.append(f"{key} (only in {'the first' if key in first else 'the second'})")
            continue
        a, b = first[key], second[key]
        if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
            same = (
                isinstance(a, torch.Tensor)
                and isinstance(b, torch.Tensor)
                and a.dtype == b.dtype
                and a.shape == b.shape
                and torch.equal(a, b)
            )
        else:
            same = a == b
        if not same:
            different.append(key)
    return different


@pytest.fixture
def snapshot() -> Callable[[nn.Module, torch.optim.Optimizer], Snapshot]:
    """:func:`training_state`: a flat copy of a model's parameters and its optimizer's state."""
    return training_state


@pytest.fixture
def differences() -> Callable[[Mapping[str, Any], Mapping[str, Any]], list[str]]:
    """:func:`snapshot_differences`: the entries two snapshots disagree on, compared bit for bit."""
    return snapshot_differences


@pytest.fixture
def run_differences() -> Callable[[nn.Module, torch.optim.Optimizer, nn.Module, torch.optim.Optimizer], list[str]]:
    """``(model, optimizer, other_model, other_optimizer) -> names``: what two runs disagree on, bit for bit."""

    def compare(
        model: nn.Module, optimizer: torch.optim.Optimizer, other: nn.Module, other_optimizer: torch.optim.Optimizer
    ) -> list[str]:
        return snapshot_differences(training_state(model, optimizer), training_state(other, other_optimizer))

    return compare


@pytest.fixture(autouse=True)
def _leave_global_state_as_found() -> Iterator[None]:
    """The frameworks seed the global generators (``transformers.set_seed`` seeds Python's, NumPy's and
    torch's) and may switch torch's deterministic mode: put all of it back for the tests that follow."""
    python_state, numpy_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    grad_enabled = torch.is_grad_enabled()
    yield
    random.setstate(python_state)
    np.random.set_state(numpy_state)
    torch.set_rng_state(torch_state)
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    torch.set_grad_enabled(grad_enabled)
