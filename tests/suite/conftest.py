"""Load the fixture methods under stable module names, and keep the registry clean between tests.

Specs name their targets by import path (``"module:attribute"``), so the good methods
(``methods.py``), their broken variants (``broken.py``) and the protocol-1 fixtures
(``legacy.py``) must be importable under a fixed name whatever pytest's import mode: they are
loaded here as ``gradhub_suite_methods``, ``gradhub_suite_broken`` and ``gradhub_suite_legacy``,
names nothing else uses.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

import gradhub
from gradhub.specs import MethodSpec

HERE = Path(__file__).parent


def _load(module_name: str, filename: str) -> ModuleType:
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, HERE / filename)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


_load("gradhub_suite_methods", "methods.py")
_load("gradhub_suite_broken", "broken.py")  # after the methods it imports
_load("gradhub_suite_legacy", "legacy.py")


@pytest.fixture
def register() -> Iterator[Callable[[MethodSpec], str]]:
    """Register specs in-process for one test; every one is unregistered afterwards."""
    names: list[str] = []

    def register_spec(spec: MethodSpec) -> str:
        names.append(gradhub.register(spec).name)
        return names[-1]

    yield register_spec
    for name in names:
        gradhub._registry.unregister(name)
    leaked = {entry.name for entry in gradhub.list()} & set(names)
    assert not leaked, f"still registered after the test: {sorted(leaked)}"
