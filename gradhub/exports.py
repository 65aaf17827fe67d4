"""Lazy re-exports for a plugin's torch-free entry module.

A plugin's entry module must not import torch (``gradhub list`` and ``gradhub info`` read it),
yet users like ``from gradhub_my_method import MyLayer``. Give the entry module a
module-level ``__getattr__`` that imports the implementation on first access::

    __getattr__ = lazy_exports(__name__, {"MyLayer": "gradhub_my_method.layers"})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(module: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving ``names`` (attribute -> defining module) on first access."""
    table = dict(names)

    def __getattr__(name: str) -> Any:
        if name in table:
            return getattr(importlib.import_module(table[name]), name)
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
