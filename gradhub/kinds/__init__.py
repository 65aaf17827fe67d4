"""The interfaces of the eight kinds, one module each (they import torch).

Each module documents what ``gradhub.get(name)`` returns for its kind, the example object
a spec's ``example(device, dtype, seed)`` function returns, and the result types methods
of that kind return. The conformance suite (:mod:`gradhub.testing`) checks exactly these.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

KINDS = ("optimizer", "layer", "loss", "solver", "attack", "sampler", "schedule", "probe")


def bind(target: Any, hparams: Mapping[str, Any], modules: tuple[Any, ...] = ()) -> Callable[..., Any]:
    """A class is instantiated with ``hparams`` (after ``modules``, for a composite layer);
    a function gets them as keyword arguments."""
    if inspect.isclass(target):
        return target(*modules, **hparams)
    return functools.partial(target, *modules, **hparams)
