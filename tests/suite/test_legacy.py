"""Plugin protocol 1 still works: the core accepts the shapes gradhub 0.1 plugins were written in.

The fixtures are in ``legacy.py`` (an entry module with only ``register_methods`` is covered by
``tests/test_registry.py``). New code uses protocol 2 (``methods.py``); these only prove that a
third-party plugin written earlier keeps working.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest
import torch
from gradhub_suite_legacy import LEGACY_MOMENTUM, LEGACY_SQUARED_ERROR, LegacyMomentumSGD, legacy_squared_error
from torch import nn

import gradhub.testing
from gradhub.errors import HyperparameterError, UnknownHyperparameterError
from gradhub.specs import MethodSpec


def test_validated_with_a_name_and_a_model_passes_every_check(register: Callable[[MethodSpec], str]) -> None:
    report = gradhub.testing.check(register(LEGACY_SQUARED_ERROR), raise_on_failure=False)
    assert report.ok, report.summary()


def test_validated_with_a_name_and_a_model_checks_every_call() -> None:
    assert [p.default for p in inspect.signature(legacy_squared_error).parameters.values()][2:] == [1.0, "mean"]
    assert legacy_squared_error.method == LEGACY_SQUARED_ERROR.name and legacy_squared_error.spec is None
    prediction, target = torch.ones(3), torch.zeros(3)
    assert legacy_squared_error(prediction, target, 0.5).item() == 0.5
    with pytest.raises(HyperparameterError, match=r"^suite-legacy-squared-error: invalid weight=-1"):
        legacy_squared_error(prediction, target, weight=-1)
    with pytest.raises(UnknownHyperparameterError, match=r"^suite-legacy-squared-error: unknown hyperparameter"):
        legacy_squared_error(prediction, target, wieght=1)


def test_optimizer_with_its_own_constructor_builds_validates_and_steps() -> None:
    weight = nn.Parameter(torch.ones(2))
    optimizer = LegacyMomentumSGD([weight], lr=0.5, weight_decay=0.1)
    assert optimizer.defaults == {"lr": 0.5, "momentum": 0.9, "weight_decay": 0.1, "foreach": None}
    weight.grad = torch.ones(2)
    optimizer.step()
    assert torch.allclose(weight.detach(), torch.full((2,), 0.95 - 0.5))
    with pytest.raises(HyperparameterError, match=r"^suite-legacy-momentum: invalid lr=-1"):
        LegacyMomentumSGD([nn.Parameter(torch.ones(2))], lr=-1)
    with pytest.raises(HyperparameterError, match=r"^suite-legacy-momentum: invalid momentum=1"):
        optimizer.add_param_group({"params": [nn.Parameter(torch.ones(1))], "momentum": 1})


def test_optimizer_with_its_own_constructor_fails_at_most_the_protocol_2_checks(
    register: Callable[[MethodSpec], str],
) -> None:
    """A protocol-1 class is not bound to its spec, so it cannot know the dtypes the spec declares: it fails
    undeclared_dtypes_refused until it sets ``spec`` (and, at most, the keyword check)."""
    report = gradhub.testing.check(register(LEGACY_MOMENTUM), raise_on_failure=False)
    failed = {result.check.id for result in report.failures}
    assert report.results and failed <= {"hyperparameters_validated", "undeclared_dtypes_refused"}


def test_optimizer_with_its_own_constructor_names_an_unknown_keyword() -> None:
    with pytest.raises(UnknownHyperparameterError, match=r"^suite-legacy-momentum: unknown hyperparameter"):
        LegacyMomentumSGD([nn.Parameter(torch.ones(2))], not_a_hyperparameter=1)
