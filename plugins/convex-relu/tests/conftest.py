"""Shared set-up for gradhub-convex-relu's tests: each test (conformance checks included) runs with one torch
thread, and this folder is on ``sys.path`` (the repository runs pytest with ``--import-mode=importlib``) so the
test modules can import ``convex_relu_testkit.py``.

The solvers iterate over small tensors (hundreds to thousands of entries per operation); on a small shared
machine OpenMP threads handing such operations back and forth cost far more than they save (measured: 26 s
with 2 threads on a busy 2-core machine against 0.4 s with one for the same 1000 ADMM iterations). The
core's ``pytest_runtest_call`` wrapper (``gradhub.testing.pytest_plugin``), named here, reaches only the
items of this folder, and the caller's thread count is restored after each.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gradhub.testing.pytest_plugin import one_torch_thread_per_test as pytest_runtest_call  # noqa: F401

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
