"""pytest plugin (entry point ``pytest11: gradhub``): collect conformance checks as tests.

A test module that assigns ``gradhub.testing.suite(...)`` to a ``test_*`` name gets one test
per check, device and dtype, with stable ids such as
``test_conformance::resume_exact[adamp-cpu-float32]``. Checks listed in a spec's
``expected_failures`` are marked ``xfail(strict=True)`` with its reason. Importing this
module costs nothing: torch and the suite load only when a suite is collected.

A plugin whose tests (conformance items included) all run on tiny tensors can run each with one
torch thread, where OpenMP threads handing small ops back and forth cost more than they save (on
a busy 2-core machine, 4-23 s against 1 s for one double-backward gradcheck): its
``tests/conftest.py`` says ::

    from gradhub.testing.pytest_plugin import one_torch_thread_per_test as pytest_runtest_call

pytest calls a conftest's hooks only for the items under its folder, and the caller's thread
count is restored after each test, so other folders' tests are not affected.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gradhub")
    group.addoption(
        "--gradhub-device",
        action="append",
        default=None,
        help="run gradhub conformance checks on this device only (repeatable; default: every available one)",
    )


def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: Any) -> Any:
    from gradhub.testing import Suite

    if isinstance(obj, Suite) and name.startswith("test"):
        return SuiteCollector.from_parent(collector, name=name, suite=obj)
    return None


class SuiteCollector(pytest.Collector):
    def __init__(self, *, suite: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.suite = suite

    def collect(self) -> list[pytest.Item]:
        devices = self.config.getoption("--gradhub-device") or self.suite.devices
        items = []
        for check in self.suite.checks(devices):
            item = CheckItem.from_parent(self, name=check.name, check=check)
            if check.expected_failure:
                item.add_marker(pytest.mark.xfail(reason=check.expected_failure, strict=True, raises=Exception))
            items.append(item)
        return items


class CheckItem(pytest.Item):
    def __init__(self, *, check: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check

    def runtest(self) -> None:
        self.check()

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        from gradhub.errors import ConformanceError

        if isinstance(excinfo.value, ConformanceError):
            return f"{self.check.name}: {excinfo.value}"
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"gradhub conformance {self.check.name}"


@pytest.hookimpl(wrapper=True)
def one_torch_thread_per_test(item: pytest.Item) -> Iterator[None]:
    """A ``pytest_runtest_call`` wrapper for a conftest: the test runs with one torch thread (see the module)."""
    from gradhub.claims import single_thread

    with single_thread():
        return (yield)
