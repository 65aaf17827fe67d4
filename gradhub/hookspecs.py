"""The hooks a gradhub plugin implements. This file is the contract; each docstring is its doc.

A plugin's entry module (the value of its entry points) implements the hooks below with
the :data:`hookimpl` marker. The registry imports an entry module only when one of its
methods is first asked for, registers it with a pluggy ``PluginManager`` under the
project name ``"gradhub"``, and calls its hooks. Entry modules must not import torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from gradhub.specs import MethodSpec

PROJECT = "gradhub"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_methods(register: Callable[[MethodSpec], None]) -> None:
    """Hand the registry this plugin's methods by calling ``register(spec)`` once per method.

    Every name the distribution declares as an entry point that names this module must be
    registered here, with the kind of its entry-point group; ``register`` validates each spec
    and raises ``InvalidSpecError`` for one that does not validate. Build the specs from
    torch-free code only: this hook runs when a user lists or inspects methods.
    """
