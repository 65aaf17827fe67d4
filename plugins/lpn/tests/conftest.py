"""Shared set-up for gradhub-lpn's tests: each test (conformance checks included) runs with one torch thread.

Every tensor here is tiny (LPNs of a few units, 4 x 4 images, 1-D Laplacian batches); on a small shared
machine OpenMP threads handing such ops back and forth cost more than they save (measured: the conformance
suite's gradcheck of the example ConvLPN's double backward took 4-23 s on 2 busy threads, 1 s on one), the
reason of ``gradhub.claims.single_thread``. The core's ``pytest_runtest_call`` wrapper
(``gradhub.testing.pytest_plugin``), named here, reaches only the items of this folder, and the caller's
thread count is restored after each.
"""

from __future__ import annotations

from gradhub.testing.pytest_plugin import one_torch_thread_per_test as pytest_runtest_call  # noqa: F401
