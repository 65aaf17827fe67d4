"""Shared set-up for gradhub-mfac's tests.

The repository runs pytest with ``--import-mode=importlib``, under which a test folder is not on
``sys.path``; ``mfac_fsdp2.py`` (imported by name in the processes the FSDP2 tests spawn) lives
next to this file, so this folder is put on the path (once).
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
