"""The conformance suite: every check a method of its kind must pass, chosen by its spec.

Three front ends over the same checks:

* ``gradhub.testing.check("adamp")``: run them now (a notebook, a script); returns a
  :class:`Report` and raises :class:`~gradhub.ConformanceError` if any check failed;
* the pytest plugin (:mod:`gradhub.testing.pytest_plugin`, registered through ``pytest11``):
  ``test_gradhub = gradhub.testing.suite(distribution="gradhub-adamp")`` in a test module
  collects one test per check, device and dtype of every method the distribution declares,
  e.g. ``test_gradhub::resume_exact[adamp-cpu-float32]``;
* ``gradhub check NAME... [--device D] [--json]`` on the command line.

Each check is a plain function ``check_<id>(spec, device, dtype)`` that raises
:class:`~gradhub.ConformanceError` with a message naming the method and the broken
convention. A check a method is known to fail is listed in its spec's
``expected_failures`` with a reason: it still runs, and passing unexpectedly is an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from gradhub.errors import ConformanceError

if TYPE_CHECKING:
    from gradhub.specs import MethodSpec
    from gradhub.testing._suite import Check, Report

__all__ = [
    "CheckDefinition",
    "Suite",
    "assert_model_unchanged",
    "check",
    "checks",
    "checks_in",
    "compare_with",
    "conformance_check",
    "counting_read_backs",
    "distribution_methods",
    "fingerprint",
    "reload_checks",
    "suite",
]

_HELPERS = ("assert_model_unchanged", "counting_read_backs", "fingerprint")
_SUITE = ("CheckDefinition", "checks_in", "conformance_check", "reload_checks")
_PARITY = ("compare_with",)


def __getattr__(name: str) -> object:
    """The helpers a plugin's own tests use too, loaded (with torch) on first use."""
    if name in _HELPERS:
        from gradhub.testing import _helpers

        return getattr(_helpers, name)
    if name in _SUITE:
        from gradhub.testing import _suite

        return getattr(_suite, name)
    if name in _PARITY:
        from gradhub.testing import parity

        return getattr(parity, name)
    raise AttributeError(f"module 'gradhub.testing' has no attribute {name!r}")


def _resolve(method: str | MethodSpec) -> MethodSpec:
    import gradhub
    from gradhub.specs import MethodSpec

    return method if isinstance(method, MethodSpec) else gradhub.spec(method)


def _all_installed() -> list[str]:
    import gradhub

    return [entry.name for entry in gradhub.list()]


def distribution_methods(distribution: str) -> list[str]:
    """The method names an installed distribution declares (its ``gradhub.<kind>`` entry points).

    Read from the installed metadata, so a plugin's conformance test never lists its methods by
    hand: ``suite(distribution="gradhub-adamp")``.
    """
    import importlib.metadata

    from gradhub.registry import KINDS

    try:
        found = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ConformanceError(
            f"distribution {distribution!r} is not installed; install it (pip install -e .) before running its suite"
        ) from None
    groups = {f"gradhub.{kind}" for kind in KINDS}
    names = sorted({entry.name for entry in found.entry_points if entry.group in groups})
    if not names:
        raise ConformanceError(f"distribution {distribution!r} declares no gradhub.<kind> entry points")
    return names


def checks(
    *methods: str | MethodSpec, devices: Iterable[str] | None = None, distribution: str | None = None
) -> list[Check]:
    """The checks that apply to each method (all installed methods when none given)."""
    from gradhub.testing._suite import expand

    chosen = list(methods) + (distribution_methods(distribution) if distribution else [])
    return [check for method in (chosen or _all_installed()) for check in expand(_resolve(method), devices)]


def check(
    *methods: str | MethodSpec,
    devices: Iterable[str] | None = None,
    distribution: str | None = None,
    raise_on_failure: bool = True,
) -> Report:
    """Run every applicable check on each method; see the module docstring."""
    from gradhub.testing._suite import Report, run_check

    report = Report([run_check(item) for item in checks(*methods, devices=devices, distribution=distribution)])
    if raise_on_failure and not report.ok:
        raise ConformanceError(report.summary())
    return report


class Suite:
    """Marker object the pytest plugin expands into one test per check (see :func:`suite`)."""

    def __init__(
        self,
        methods: tuple[str | MethodSpec, ...],
        devices: tuple[str, ...] | None,
        distribution: str | None = None,
    ) -> None:
        self.methods = methods
        self.devices = devices
        self.distribution = distribution

    def checks(self, devices: Iterable[str] | None = None) -> list[Check]:
        return checks(*self.methods, devices=devices or self.devices, distribution=self.distribution)


def suite(*methods: str | MethodSpec, distribution: str | None = None, devices: Iterable[str] | None = None) -> Suite:
    """``test_conformance = gradhub.testing.suite(distribution="gradhub-mymethod")``: pytest runs every check.

    ``distribution`` takes the methods from that installed distribution's entry points (the way a
    plugin tests itself: no hand-kept list of names); ``methods`` names methods or passes specs
    (an in-process ``register``ed one, say). With neither, every installed method.
    ``pytest --gradhub-device cuda`` restricts devices.
    """
    return Suite(tuple(methods), tuple(devices) if devices is not None else None, distribution)
