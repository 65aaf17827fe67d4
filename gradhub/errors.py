"""The exceptions gradhub raises.

Every user-facing error is a :class:`GradhubError`, and also an instance of the builtin
exception a caller would naturally catch (``ValueError`` for a bad value, ``TypeError``
for an unknown keyword, ``LookupError`` for a missing name, ``ImportError`` for a plugin
that does not load). Messages name the method, the parameter, the value and what is
allowed, so that the message alone tells the user what to change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "ConformanceError",
    "GradhubError",
    "HyperparameterError",
    "InvalidSpecError",
    "MethodNotFoundError",
    "MissingHyperparameterError",
    "NameConflictError",
    "PluginLoadError",
    "UnknownHyperparameterError",
    "UnsupportedInputError",
    "show_value",
]


def show_value(value: Any) -> str:
    """``repr(value)``, shortened: a tensor or array by its shape and dtype, long sequences elided."""
    import reprlib

    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "dtype") and getattr(value, "ndim", 0) > 0:
        return f"{type(value).__name__}(shape={tuple(shape)}, dtype={value.dtype})"
    shortener = reprlib.Repr()
    shortener.maxlist = shortener.maxtuple = shortener.maxset = shortener.maxdict = 6
    shortener.maxstring = shortener.maxother = 80
    return shortener.repr(value)


class GradhubError(Exception):
    """Base class of every error gradhub raises on purpose."""


class HyperparameterError(GradhubError, ValueError):
    """A hyperparameter has a value the method does not accept."""

    def __init__(self, method: str, parameter: str, value: Any, allowed: str) -> None:
        self.method = method
        self.parameter = parameter
        self.value = value
        self.allowed = allowed
        super().__init__(f"{method}: invalid {parameter}={show_value(value)}; {parameter} must be {allowed}")


class UnknownHyperparameterError(HyperparameterError, TypeError):
    """A keyword the method does not take."""

    def __init__(self, method: str, parameter: str, value: Any, accepted: Sequence[str]) -> None:
        from difflib import get_close_matches

        close = get_close_matches(parameter, accepted, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        GradhubError.__init__(
            self,
            f"{method}: unknown hyperparameter {parameter}={show_value(value)}{hint}; "
            f"{method} accepts: {', '.join(accepted)}",
        )
        self.method = method
        self.parameter = parameter
        self.value = value
        self.allowed = f"one of {', '.join(accepted)}"


class MissingHyperparameterError(HyperparameterError, TypeError):
    """A hyperparameter without a default was not given."""

    def __init__(self, method: str, parameter: str, description: str = "") -> None:
        GradhubError.__init__(
            self,
            f"{method}: missing required hyperparameter {parameter!r} (it has no default"
            + (f"; {parameter} must be {description}" if description else "")
            + ")",
        )
        self.method = method
        self.parameter = parameter
        self.value = None
        self.allowed = description


class UnsupportedInputError(GradhubError, ValueError):
    """An input (a tensor, a gradient, a model) that the method cannot work with."""

    def __init__(self, method: str, what: str, value: Any, allowed: str) -> None:
        self.method = method
        self.what = what
        self.value = value
        self.allowed = allowed
        super().__init__(f"{method}: unsupported {what}: {value}; {allowed}")


class MethodNotFoundError(GradhubError, LookupError):
    """No installed plugin provides the requested method name."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(message)

    def __str__(self) -> str:  # LookupError subclasses would otherwise repr-quote
        return str(self.args[0])


class PluginLoadError(GradhubError, ImportError):
    """A plugin's entry module failed to import or its hook failed."""


class InvalidSpecError(GradhubError, ValueError):
    """A plugin handed the registry a specification that does not validate."""


class NameConflictError(GradhubError, LookupError):
    """Two distributions (or a distribution and an in-process registration) claim one name."""

    def __str__(self) -> str:
        return str(self.args[0])


class ConformanceError(GradhubError, AssertionError):
    """A method failed a conformance check; the message says which convention it broke."""
