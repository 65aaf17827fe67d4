"""Shared set-up for gradhub-rmt's tests: each test (conformance checks included) runs with one torch thread,
and this folder is on ``sys.path`` (the repository runs pytest with ``--import-mode=importlib``) so the test
modules can import the direct formulas of ``rmt_reference.py``.

Every tensor here is tiny (batches of 16 to 128 rows); on a small shared machine OpenMP threads
handing such ops back and forth cost more than they save (the reason of ``gradhub.claims.single_thread``).
The core's ``pytest_runtest_call`` wrapper (``gradhub.testing.pytest_plugin``), named here, reaches only
the items of this folder, and the caller's thread count is restored after each.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gradhub.testing.pytest_plugin import one_torch_thread_per_test as pytest_runtest_call  # noqa: F401

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
