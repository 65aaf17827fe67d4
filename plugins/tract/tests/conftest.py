"""Shared set-up for gradhub-tract's tests: each test (conformance checks included) runs with one torch thread.

Every tensor here is small (a few images, 64 x 128 layers); on a small shared machine OpenMP threads
handing such ops back and forth cost more than they save (the reason of ``gradhub.claims.single_thread``).
The core's ``pytest_runtest_call`` wrapper (``gradhub.testing.pytest_plugin``), named here, reaches only
the items of this folder, and the caller's thread count is restored after each.
"""

from __future__ import annotations

from gradhub.testing.pytest_plugin import one_torch_thread_per_test as pytest_runtest_call  # noqa: F401
