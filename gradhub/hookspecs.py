"""The hooks of gradhub. This file is the contract; each docstring is its doc.

Methods are not declared through a hook: an entry module's module-level ``MethodSpec``
objects are read directly (plugin protocol 2, ``specs/plugin-protocol.md``), one module per
lookup. A hook is for what is broadcast to many plugins and gathered: today, the conformance
checks. The suite's pluggy ``PluginManager`` (project ``"gradhub"``) holds the core's checks and
every installed *check pack*: a module named by an entry point in the group ``gradhub.checks``
that implements the hooks below with the :data:`hookimpl` marker. Every implementation is
called, and the suite runs the union.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from gradhub.testing._suite import CheckDefinition

PROJECT = "gradhub"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def gradhub_conformance_checks() -> list[CheckDefinition]:
    """Return conformance checks to add to the suite, made with ``gradhub.testing.conformance_check``.

    Each check is chosen per method by its kinds and its ``applies(spec)`` predicate (read the spec's
    capabilities, never its name), so a pack can check a capability of its own across every method
    that declares it. ``gradhub.testing.checks_in(globals())`` returns a module's marked checks. A
    check id must be new for each of its kinds; a duplicate stops the suite with an error.
    """
