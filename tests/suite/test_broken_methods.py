"""Every check is proven able to fail: each broken variant fails the check meant to catch it.

The variants live in ``broken.py``; each is a good method from ``methods.py`` with one
convention broken. Besides failing its check, a variant must fail *only* that check and the
collateral it declares, so a check cannot take credit for a variant broken by accident.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest
from gradhub_suite_broken import BROKEN_VARIANTS, TORCH_IMPORTING_ENTRY_MODULES, BrokenVariant, with_expected_failures
from gradhub_suite_methods import GOOD_METHODS, MOMENTUM

import gradhub.testing
from gradhub.errors import ConformanceError
from gradhub.kinds import KINDS
from gradhub.specs import MethodSpec
from gradhub.testing._suite import available_devices, definitions

GPU_ONLY_CHECKS: set[str] = set()
"""Checks that cannot run without a GPU: none (devices_agree compares the CPU with its accelerator stand-in)."""


def needs_device(variant: BrokenVariant) -> pytest.MarkDecorator:
    missing = variant.requires is not None and variant.requires not in available_devices()
    return pytest.mark.skipif(
        missing, reason=f"{variant.breaks} compares devices; it needs {variant.requires}, which is not available"
    )


def params(variants: Iterable[BrokenVariant]) -> list[Any]:
    return [pytest.param(variant, id=variant.name, marks=needs_device(variant)) for variant in variants]


@pytest.mark.parametrize("variant", params(BROKEN_VARIANTS))
def test_broken_variant_fails_its_check(variant: BrokenVariant, register: Callable[[MethodSpec], str]) -> None:
    """Calling the check raises ConformanceError naming the method, with the message for this bug."""
    name = register(variant.spec)
    targeted = [check for check in gradhub.testing.checks(name) if check.id == variant.breaks]
    assert targeted, f"{variant.breaks} is not generated for {name}"
    messages = []
    for check in targeted:
        try:
            check()
        except ConformanceError as error:
            messages.append(str(error))
    assert messages, f"{name} passes every instance of {variant.breaks}: the check cannot see this bug"
    for message in messages:
        assert message.startswith(f"{name}: "), f"the failure does not name the method first: {message}"
        assert variant.message in message, f"{variant.breaks} failed, but not for this bug: {message}"


@pytest.mark.parametrize("variant", params(v for v in BROKEN_VARIANTS if v.collateral is not None))
def test_broken_variant_fails_only_where_declared(
    variant: BrokenVariant, register: Callable[[MethodSpec], str]
) -> None:
    """The variant is the good method with one bug: no other check fails than the ones that bug explains."""
    name = register(variant.spec)
    report = gradhub.testing.check(name, raise_on_failure=False)
    failed = {result.check.id for result in report.failures}
    assert variant.collateral is not None
    assert failed == {variant.breaks} | variant.collateral, report.summary()


@pytest.mark.parametrize("kind", KINDS)
def test_every_check_has_a_broken_variant(kind: str) -> None:
    """Adding a check without a broken method that fails it fails here."""
    targeted = {variant.breaks for variant in BROKEN_VARIANTS if variant.kind == kind}
    targeted |= {entry.breaks for entry in TORCH_IMPORTING_ENTRY_MODULES if entry.kind == kind}
    missing = {definition.id for definition in definitions(kind)} - targeted
    assert not missing, f"no broken {kind} variant proves these checks can fail: {sorted(missing)}"


def test_gpu_only_variants_are_declared_as_such() -> None:
    """Variants that cannot run on CPU say so, and only device-comparing checks may need a device."""
    for variant in BROKEN_VARIANTS:
        assert (variant.requires is not None) == (variant.breaks in GPU_ONLY_CHECKS), variant.name


def test_variant_names_are_unique_and_distinct_from_good_methods() -> None:
    names = [variant.name for variant in BROKEN_VARIANTS] + [spec.name for spec in GOOD_METHODS]
    assert len(names) == len(set(names))


# --- expected_failures ---------------------------------------------------------------------


def first_clean_variant(kind: str) -> BrokenVariant:
    """The kind's first variant that breaks exactly one check, on CPU, in its code rather than its spec."""
    return next(
        variant
        for variant in BROKEN_VARIANTS
        if variant.kind == kind
        and variant.collateral == frozenset()
        and variant.requires is None
        and variant.breaks != "spec_valid"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_expected_failure_is_reported_xfailed(kind: str, register: Callable[[MethodSpec], str]) -> None:
    variant = first_clean_variant(kind)
    name = register(with_expected_failures(variant.spec, {variant.breaks: "known, being fixed"}))
    report = gradhub.testing.check(name, raise_on_failure=False)
    outcomes = {result.check.id: result.outcome for result in report.results if result.check.id == variant.breaks}
    assert outcomes == {variant.breaks: "xfailed"}, report.summary()
    assert report.ok, report.summary()
    xfailed = next(result for result in report.results if result.outcome == "xfailed")
    assert xfailed.message is not None and "known, being fixed" in xfailed.message


def test_unexpected_pass_is_reported_xpassed(register: Callable[[MethodSpec], str]) -> None:
    name = register(with_expected_failures(MOMENTUM, {"loss_decreases": "thought to diverge"}))
    report = gradhub.testing.check(name, raise_on_failure=False)
    xpassed = [result for result in report.results if result.outcome == "xpassed"]
    assert [result.check.id for result in xpassed] == ["loss_decreases"]
    assert not report.ok
    assert xpassed[0].message is not None and "remove it from expected_failures" in xpassed[0].message
    with pytest.raises(ConformanceError, match=r"loss_decreases\[suite-momentum-cpu-float32\]"):
        gradhub.testing.check(name)


def test_check_raises_naming_every_failure(register: Callable[[MethodSpec], str]) -> None:
    variant = first_clean_variant("solver")
    name = register(variant.spec)
    with pytest.raises(ConformanceError) as raised:
        gradhub.testing.check(name)
    assert f"FAILED {variant.breaks}[{name}" in str(raised.value)
