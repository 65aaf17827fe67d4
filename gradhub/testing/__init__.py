"""The conformance suite: every check a method of its kind must pass, chosen by its spec.

Three front ends over the same checks:

* ``gradhub.testing.check("adamp")``: run them now (a notebook, a script); returns a
  :class:`Report` and raises :class:`~gradhub.ConformanceError` if any check failed;
* the pytest plugin (:mod:`gradhub.testing.pytest_plugin`, registered through ``pytest11``):
  ``test_gradhub = gradhub.testing.suite("adamp")`` in a test module collects one test per
  check, device and dtype, e.g. ``test_gradhub::resume_exact[adamp-cpu-float32]``;
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

__all__ = ["Suite", "check", "checks", "suite"]


def _resolve(method: str | MethodSpec) -> MethodSpec:
    import gradhub
    from gradhub.specs import MethodSpec

    return method if isinstance(method, MethodSpec) else gradhub.spec(method)


def _all_installed() -> list[str]:
    import gradhub

    return [entry.name for entry in gradhub.list()]


def checks(*methods: str | MethodSpec, devices: Iterable[str] | None = None) -> list[Check]:
    """The checks that apply to each method (all installed methods when none given)."""
    from gradhub.testing._suite import expand

    return [check for method in (methods or _all_installed()) for check in expand(_resolve(method), devices)]


def check(*methods: str | MethodSpec, devices: Iterable[str] | None = None, raise_on_failure: bool = True) -> Report:
    """Run every applicable check on each method; see the module docstring."""
    from gradhub.testing._suite import Report, run_check

    report = Report([run_check(item) for item in checks(*methods, devices=devices)])
    if raise_on_failure and not report.ok:
        raise ConformanceError(report.summary())
    return report


class Suite:
    """Marker object the pytest plugin expands into one test per check (see :func:`suite`)."""

    def __init__(self, methods: tuple[str | MethodSpec, ...], devices: tuple[str, ...] | None) -> None:
        self.methods = methods
        self.devices = devices

    def checks(self) -> list[Check]:
        return checks(*self.methods, devices=self.devices)


def suite(*methods: str | MethodSpec, devices: Iterable[str] | None = None) -> Suite:
    """``test_conformance = gradhub.testing.suite("mymethod")`` in a test module: pytest runs every check.

    With no methods, every installed method. ``pytest --gradhub-device cuda`` restricts devices.
    """
    return Suite(tuple(methods), tuple(devices) if devices is not None else None)
