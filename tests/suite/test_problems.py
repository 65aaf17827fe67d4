"""Problems found in gradhub.testing and gradhub.kinds while proving the checks.

Each test pins a behaviour the suite (or a kind's base class) once got wrong. A known limitation
is marked ``xfail(strict=True)`` with its reason, so that fixing it fails the run until the
marker is removed.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from gradhub_suite_broken import UNSEEN_BUGS, BrokenVariant, variant
from gradhub_suite_methods import CLOSURE_MOMENTUM, MOMENTUM, SCALED_TANH, WARMUP_DECAY, MomentumSGD
from torch import nn

import gradhub.testing
import gradhub.testing._suite
import gradhub.testing.common
from gradhub.errors import HyperparameterError, UnknownHyperparameterError
from gradhub.registry import import_target
from gradhub.specs import MethodSpec


def failed_checks(name: str) -> set[str]:
    return {result.check.id for result in gradhub.testing.check(name, raise_on_failure=False).failures}


@pytest.mark.parametrize("good", [SCALED_TANH, WARMUP_DECAY], ids=lambda spec: spec.kind.value)
def test_target_that_does_not_import_is_reported_not_raised(
    good: MethodSpec, register: Callable[[MethodSpec], str]
) -> None:
    broken = variant(good, f"{good.name}-missing-target", "spec_valid", "does not import", target="missing:Target")
    name = register(broken.spec)
    report = gradhub.testing.check(name, raise_on_failure=False)
    spec_valid = [result for result in report.results if result.check.id == "spec_valid"]
    assert spec_valid and spec_valid[0].outcome == "failed"
    assert "does not import" in (spec_valid[0].message or "")


def test_inherited_constructor_errors_name_the_subclass() -> None:
    """A subclass bound to its own spec inherits the constructor, and its errors name the subclass's method."""
    renamed = variant(MOMENTUM, "suite-momentum-renamed", "hyperparameters_validated", "", target="RenamedMomentumSGD")

    class RenamedMomentumSGD(MomentumSGD):
        spec = renamed.spec

    with pytest.raises(UnknownHyperparameterError) as raised:
        RenamedMomentumSGD([nn.Parameter(torch.zeros(2))], not_a_hyperparameter=1)
    assert str(raised.value).startswith("suite-momentum-renamed: ")
    with pytest.raises(HyperparameterError, match=r"^suite-momentum-renamed: invalid lr=-1"):
        RenamedMomentumSGD([nn.Parameter(torch.zeros(2))], lr=-1)


def test_correct_closure_optimizer_passes_every_check(register: Callable[[MethodSpec], str]) -> None:
    name = register(CLOSURE_MOMENTUM)
    assert failed_checks(name) == set()


def unseen(bug: str) -> BrokenVariant:
    return UNSEEN_BUGS[bug]


def test_literal_hyperparameters_are_tried(register: Callable[[MethodSpec], str]) -> None:
    bug = unseen("literal_hyperparameters_never_tried")
    name = register(bug.spec)
    example = import_target(bug.spec.example)(torch.device("cpu"), torch.float32, 0)
    gradhub.get(name)(*example.inputs, reduction="bogus")  # the bug: accepted
    assert bug.breaks in failed_checks(name)


def test_attack_iterations_are_counted_not_trusted(register: Callable[[MethodSpec], str]) -> None:
    bug = unseen("self_reported_iterations")
    name = register(bug.spec)
    assert bug.breaks in failed_checks(name)


def test_reductions_are_compared_without_none(register: Callable[[MethodSpec], str]) -> None:
    bug = unseen("reductions_without_none")
    name = register(bug.spec)
    assert failed_checks(name) & {bug.breaks, "spec_valid"}


def test_a_constructor_of_its_own_cannot_hide_other_defaults(register: Callable[[MethodSpec], str]) -> None:
    bug = unseen("constructor_defaults_hidden")
    name = register(bug.spec)
    optimizer = import_target(bug.spec.target)([nn.Parameter(torch.zeros(2))])
    assert optimizer.defaults["lr"] == 0.01  # what the constructor really does; the signature says 0.1
    assert bug.breaks in failed_checks(name)


def test_device_restriction_also_restricts_devices_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only expansion is examined (nothing runs), so pretending CUDA exists is honest here."""
    two_devices = lambda: ["cpu", "cuda"]  # noqa: E731
    monkeypatch.setattr(gradhub.testing._suite, "available_devices", two_devices)
    assert "devices_agree" in {check.id for check in gradhub.testing.checks(MOMENTUM)}  # the pretence works
    restricted = gradhub.testing.checks(MOMENTUM, devices=["cpu"])
    (agree,) = [check for check in restricted if check.id == "devices_agree"]
    assert agree.device == "cpu+cpu-as-accelerator"  # the CPU alone: against its GPU formulation, not CUDA
