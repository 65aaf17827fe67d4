"""The good methods pass every check of their kind: the baseline every broken variant departs from."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest
from gradhub_suite_broken import BROKEN_VARIANTS, UNSEEN_BUGS
from gradhub_suite_legacy import LEGACY_MOMENTUM, LEGACY_SQUARED_ERROR
from gradhub_suite_methods import CLOSURE_MOMENTUM, GOOD_METHODS

import gradhub.testing
from gradhub.kinds import KINDS
from gradhub.specs import MethodSpec
from gradhub.testing._suite import available_devices, definitions

NEEDS_TWO_DEVICES = "devices_agree"
NEEDS_AN_INSTALLED_DISTRIBUTION = "entry_module_torch_free"  # proven in test_entry_module.py


@pytest.mark.parametrize("spec", GOOD_METHODS, ids=lambda spec: spec.name)
def test_good_method_passes_every_check(spec: MethodSpec, register: Callable[[MethodSpec], str]) -> None:
    """Registered in-process and checked by name, the way a notebook user would."""
    name = register(spec)
    report = gradhub.testing.check(name, raise_on_failure=False)
    assert report.results, f"no check applies to {name}"
    assert report.ok, f"{name} should pass every check:\n{report.summary()}"
    assert {result.outcome for result in report.results} == {"passed"}


@pytest.mark.parametrize("kind", KINDS)
def test_every_check_runs_on_some_good_method(kind: str) -> None:
    """A check no good method reaches (a capability nobody declares) would pass vacuously here."""
    reached = {check.id for spec in GOOD_METHODS if spec.kind.value == kind for check in gradhub.testing.checks(spec)}
    expected = {definition.id for definition in definitions(kind)} - {NEEDS_AN_INSTALLED_DISTRIBUTION}
    assert reached == expected


def test_devices_agree_compares_the_cpu_with_its_stand_in_when_alone() -> None:
    """On a CPU-only machine devices_agree runs against the CPU's accelerator formulation, and says so."""
    several = len(available_devices()) > 1
    for spec in GOOD_METHODS:
        defined = any(definition.id == NEEDS_TWO_DEVICES for definition in definitions(spec.kind.value))
        generated = [check for check in gradhub.testing.checks(spec) if check.id == NEEDS_TWO_DEVICES]
        assert bool(generated) == defined, spec.name
        if generated and not several:
            assert generated[0].device == "cpu+cpu-as-accelerator", generated[0].name


def test_check_ids_are_stable_names() -> None:
    """Checks are named as the pytest plugin shows them: id[method-device-dtype], or id[method]."""
    names = {check.name for check in gradhub.testing.checks(GOOD_METHODS[0])}
    assert "resume_exact[suite-momentum-cpu-float32]" in names
    assert "resume_exact[suite-momentum-cpu-float64]" in names
    assert "foreach_matches_single[suite-momentum-cpu-float64]" in names
    assert "spec_valid[suite-momentum]" in names


def string_literals(path: Path) -> list[str]:
    return [
        node.value
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


@pytest.mark.parametrize(
    ("filename", "names"),
    [
        ("methods.py", [spec.name for spec in (*GOOD_METHODS, CLOSURE_MOMENTUM)]),
        ("broken.py", [variant.name for variant in (*BROKEN_VARIANTS, *UNSEEN_BUGS.values())]),
        ("legacy.py", [LEGACY_MOMENTUM.name, LEGACY_SQUARED_ERROR.name]),
    ],
)
def test_fixtures_write_each_method_name_once(filename: str, names: list[str]) -> None:
    """Like a protocol-2 plugin: the name is written in the spec; implementations and messages take it from there."""
    literals = string_literals(Path(__file__).with_name(filename))
    repeated = {name: literals.count(name) for name in names if literals.count(name) != 1}
    assert not repeated, f"{filename} writes these names other than once: {repeated}"
