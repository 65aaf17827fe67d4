"""gradhub: research methods for PyTorch, one versioned plugin per paper, looked up by name.

>>> import gradhub
>>> AdamP = gradhub.get("adamp")            # the optimizer class itself
>>> gradhub.spec("adamp").paper.bibtex()    # typed metadata; imports no torch
>>> gradhub.list(kind="optimizer")          # read from installed metadata alone

This module only re-exports the public API. Importing it imports neither torch, pydantic
nor pluggy; the spec models and the hook marker load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gradhub.errors import (
    ConformanceError,
    GradhubError,
    HyperparameterError,
    InvalidSpecError,
    MethodNotFoundError,
    MissingHyperparameterError,
    NameConflictError,
    PluginLoadError,
    UnknownHyperparameterError,
    UnsupportedInputError,
)
from gradhub.registry import MethodEntry, Registry

if TYPE_CHECKING:
    from gradhub.hookspecs import hookimpl
    from gradhub.hyperparameters import Hyperparameters
    from gradhub.specs import Kind, MethodSpec, Paper

__all__ = [
    "ConformanceError",
    "GradhubError",
    "HyperparameterError",
    "Hyperparameters",
    "InvalidSpecError",
    "Kind",
    "MethodEntry",
    "MethodNotFoundError",
    "MethodSpec",
    "MissingHyperparameterError",
    "NameConflictError",
    "Paper",
    "PluginLoadError",
    "UnknownHyperparameterError",
    "UnsupportedInputError",
    "__version__",
    "get",
    "hookimpl",
    "list",
    "refresh",
    "register",
    "spec",
]

_registry = Registry()
_builtin_list = list


def get(name: str) -> Any:
    """The method called ``name``: an optimizer class, a layer class, a function...

    Imports exactly one plugin's entry module, then the method's implementation.
    Raises :class:`MethodNotFoundError` for an unknown name (with close matches, or the
    ``pip install`` command of a first-party method that is not installed), and
    :class:`PluginLoadError`, :class:`InvalidSpecError` or :class:`NameConflictError`
    for a plugin that is broken or clashes with another.
    """
    return _registry.get(name)


def spec(name: str) -> MethodSpec:
    """The typed :class:`MethodSpec` of ``name``: paper, hyperparameters, capabilities.

    Imports the plugin's torch-free entry module only, never its implementation.
    """
    return _registry.spec(name)


def list(kind: str | None = None, pattern: str | None = None) -> _builtin_list[MethodEntry]:  # noqa: A001
    """Every installed method (of ``kind``; whose name matches ``pattern``), sorted by name.

    Read from package metadata alone: no plugin code is imported. ``pattern`` is a
    substring, or a glob when it contains ``*``, ``?`` or ``[``.
    """
    return _registry.entries(kind=kind, pattern=pattern)


def register(method_spec: MethodSpec | dict[str, Any]) -> MethodSpec:
    """Add a method in-process, without packaging it (notebooks, trying a plugin out)."""
    return _registry.register(method_spec)


def refresh() -> None:
    """Forget what was discovered, so newly installed plugins are seen."""
    _registry.refresh()


_LAZY = {
    "hookimpl": "gradhub.hookspecs",
    "Kind": "gradhub.specs",
    "MethodSpec": "gradhub.specs",
    "Paper": "gradhub.specs",
    "Hyperparameters": "gradhub.hyperparameters",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name == "__version__":
        from importlib.metadata import version

        return version("gradhub")
    raise AttributeError(f"module 'gradhub' has no attribute {name!r}")
