"""The pytest front end: ``gradhub.testing.suite(...)`` in a test module becomes one test per check.

Generated test modules run in-process (``pytester.runpytest``), so the methods this file
registers in-process are visible to them. ``pytest_plugins`` is declared here rather than
in ``conftest.py``: pytest refuses it in a conftest below the rootdir.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from gradhub_suite_broken import BROKEN_VARIANTS, with_expected_failures
from gradhub_suite_methods import MOMENTUM

import gradhub.testing
from gradhub.specs import MethodSpec

pytest_plugins = ["pytester"]

MODULE = """
import gradhub.testing

test_conformance = gradhub.testing.suite({methods})
"""


def generated_module(pytester: pytest.Pytester, *methods: str) -> None:
    pytester.makepyfile(test_generated=MODULE.format(methods=", ".join(map(repr, methods))))


def literal(text: str) -> str:
    """A regular expression matching a line that starts with ``text`` (ids contain brackets)."""
    return re.escape(text) + ".*"


def collected_ids(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if line.startswith("test_generated.py::")]


def variant(name: str) -> MethodSpec:
    return next(broken.spec for broken in BROKEN_VARIANTS if broken.name == name)


def test_one_test_per_check_with_stable_ids(pytester: pytest.Pytester, register: Callable[[MethodSpec], str]) -> None:
    name = register(MOMENTUM)
    generated_module(pytester, name)
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider")
    expected = {f"test_generated.py::test_conformance::{check.name}" for check in gradhub.testing.checks(name)}
    assert set(collected_ids(result)) == expected
    assert "test_generated.py::test_conformance::resume_exact[suite-momentum-cpu-float32]" in expected
    assert "test_generated.py::test_conformance::spec_valid[suite-momentum]" in expected


def test_good_method_passes(pytester: pytest.Pytester, register: Callable[[MethodSpec], str]) -> None:
    name = register(MOMENTUM)
    generated_module(pytester, name)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=len(gradhub.testing.checks(name)))


def test_failure_names_the_method_and_the_check(
    pytester: pytest.Pytester, register: Callable[[MethodSpec], str]
) -> None:
    name = register(variant("suite-momentum-ascends"))
    generated_module(pytester, name)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=len(gradhub.testing.checks(name)) - 1, failed=1)
    result.stdout.re_match_lines(
        [
            literal(
                "loss_decreases[suite-momentum-ascends-cpu-float32]: suite-momentum-ascends: "
                "the example's loss did not go down"
            ),
            literal("FAILED test_generated.py::test_conformance::loss_decreases[suite-momentum-ascends-cpu-float32]"),
        ]
    )


def test_expected_failure_is_an_xfail(pytester: pytest.Pytester, register: Callable[[MethodSpec], str]) -> None:
    spec = variant("suite-momentum-ascends")
    name = register(with_expected_failures(spec, {"loss_decreases": "ascends on purpose"}))
    generated_module(pytester, name)
    result = pytester.runpytest("-p", "no:cacheprovider", "-rx")
    result.assert_outcomes(passed=len(gradhub.testing.checks(name)) - 1, xfailed=1)
    xfailed = "XFAIL test_generated.py::test_conformance::loss_decreases[suite-momentum-ascends-cpu-float32]"
    result.stdout.re_match_lines([re.escape(xfailed) + ".*ascends on purpose"])


def test_unexpected_pass_fails_strictly(pytester: pytest.Pytester, register: Callable[[MethodSpec], str]) -> None:
    name = register(with_expected_failures(MOMENTUM, {"loss_decreases": "thought to ascend"}))
    generated_module(pytester, name)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=len(gradhub.testing.checks(name)) - 1, failed=1)
    result.stdout.re_match_lines([r".*\[XPASS\(strict\)\] thought to ascend"])


def test_device_option_restricts_devices(pytester: pytest.Pytester, register: Callable[[MethodSpec], str]) -> None:
    name = register(MOMENTUM)
    generated_module(pytester, name)
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider", "--gradhub-device", "cpu")
    ids = collected_ids(result)
    assert ids and all("-cuda-" not in test_id and "-mps-" not in test_id for test_id in ids)


def test_installed_plugin_ids(pytester: pytest.Pytester) -> None:
    """The installed adamp plugin, collected by name: ids per device and each declared dtype."""
    generated_module(pytester, "adamp")
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider")
    ids = set(collected_ids(result))
    prefix = "test_generated.py::test_conformance::"
    assert {
        f"{prefix}spec_valid[adamp]",
        f"{prefix}entry_module_torch_free[adamp]",
        f"{prefix}resume_exact[adamp-cpu-float32]",
        f"{prefix}resume_exact[adamp-cpu-bfloat16]",
        f"{prefix}foreach_matches_single[adamp-cpu-float64]",
    } <= ids
    assert ids == {prefix + check.name for check in gradhub.testing.checks("adamp")}
