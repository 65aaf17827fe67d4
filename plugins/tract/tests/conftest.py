"""Shared set-up for gradhub-tract's tests: each test (conformance checks included) runs with one torch thread.

Every tensor here is small (a few images, 64 x 128 layers); on a small shared machine OpenMP threads
handing such ops back and forth cost more than they save (the reason of ``gradhub.claims.single_thread``).
A ``pytest_runtest_call`` wrapper in this conftest reaches only the items of this folder, and the
caller's thread count is restored after each, so other plugins' tests are not affected.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gradhub.claims import single_thread


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    with single_thread():
        return (yield)
