"""The interfaces of the eight kinds, one module each (they import torch).

Each module documents what ``gradhub.get(name)`` returns for its kind, the example object
a spec's ``example(device, dtype, seed)`` function returns, and the result types methods
of that kind return. The conformance suite (:mod:`gradhub.testing`) checks exactly these.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

from gradhub.registry import KINDS

__all__ = ["KINDS", "bind", "evaluation_mode"]


def bind(target: Any, hparams: Mapping[str, Any], modules: tuple[Any, ...] = ()) -> Callable[..., Any]:
    """A class is instantiated with ``hparams`` (after ``modules``, for a composite layer);
    a function gets them as keyword arguments."""
    if inspect.isclass(target):
        return target(*modules, **hparams)
    return functools.partial(target, *modules, **hparams)


@contextlib.contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[None]:
    """Run in eval mode (BatchNorm on its running statistics, dropout off), then restore every
    submodule's own mode: what attacks and probes use to leave a user's model as they found it."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
