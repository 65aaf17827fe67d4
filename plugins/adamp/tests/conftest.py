"""Shared set-up for gradhub-adamp's tests.

The repository runs pytest with ``--import-mode=importlib``, under which a test folder is
not on ``sys.path``; the shared helpers live in ``adamp_testkit.py`` next to this file, so
this folder is put on the path (once) for the test modules to import them.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
