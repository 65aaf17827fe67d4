"""Fixtures for the core's tests: fake installed plugins built as real dist-info folders."""

from __future__ import annotations

import os
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gradhub.registry import Registry

SPEC_MODULE = """
from gradhub.specs import MethodSpec, Paper

PAPER = Paper(title="A Paper", authors=("A. Author",), year=2024)

{specs}
"""
"""A plugin protocol 2 entry module: module-level specs, read by the registry without a hook."""

LEGACY_SPEC_MODULE = """
import gradhub

PAPER = dict(title="A Paper", authors=("A. Author",), year=2024)
SPECS = [
{specs}
]


@gradhub.hookimpl
def register_methods(register):
    for spec in SPECS:
        register(dict(paper=PAPER, **spec))
"""
"""A protocol 1 entry module: spec dicts handed over through ``register_methods`` (still read, deprecated)."""


def spec_fields(name: str, kind: str = "optimizer", target: str = "torch.optim:SGD", **extra: object) -> dict:
    return dict(name=name, kind=kind, summary=f"{name} summary", target=target, example="builtins:print", **extra)


def spec_source(name: str, kind: str = "optimizer", target: str = "torch.optim:SGD", **extra: object) -> str:
    """Source of one module-level spec, ``NAME = MethodSpec(...)``, for a fake entry module."""
    handle = name.upper().replace("-", "_")
    return f"{handle} = MethodSpec(paper=PAPER, **{spec_fields(name, kind, target, **extra)!r})"


def legacy_spec_source(name: str, kind: str = "optimizer", target: str = "torch.optim:SGD", **extra: object) -> str:
    """Source of one spec dict in :data:`LEGACY_SPEC_MODULE`'s ``SPECS`` list."""
    return f"    {spec_fields(name, kind, target, **extra)!r},"


class FakePlugins:
    """Writes distributions (dist-info with entry points) and their modules into one folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: list[str] = []

    def module_name(self, stem: str) -> str:
        name = f"{stem}_{uuid.uuid4().hex[:8]}"
        self.modules.append(name)
        return name

    def distribution(
        self, name: str, entry_points: dict[str, dict[str, str]], modules: dict[str, str], version: str = "1.0"
    ) -> None:
        info = self.root / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        lines = []
        for group, points in entry_points.items():
            lines.append(f"[{group}]")
            lines += [f"{key} = {value}" for key, value in points.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        for module, source in modules.items():
            (self.root / f"{module}.py").write_text(textwrap.dedent(source))

    def plugin(
        self,
        distribution: str,
        specs: dict[str, str | None],
        kind: str = "optimizer",
        version: str = "1.0",
        legacy: bool = False,
    ) -> str:
        """A working plugin whose entry module defines one spec per name; returns the module name.

        ``legacy``: the entry module hands its specs over through a protocol-1 ``register_methods`` hook.
        """
        module = self.module_name(distribution.replace("-", "_"))
        source, template = (legacy_spec_source, LEGACY_SPEC_MODULE) if legacy else (spec_source, SPEC_MODULE)
        body = "\n".join(source(name, kind, **({"target": target} if target else {})) for name, target in specs.items())
        self.distribution(
            distribution,
            {f"gradhub.{kind}": dict.fromkeys(specs, module)},
            {module: template.format(specs=body)},
            version,
        )
        return module

    def registry(self) -> Registry:
        return Registry(path=[str(self.root)])


# The listing cache of the whole test session lives in a folder of its own, never in the user's ~/.cache.
os.environ.setdefault("GRADHUB_CACHE_DIR", tempfile.mkdtemp(prefix="gradhub-test-cache-"))


@pytest.fixture
def fake_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePlugins]:
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("GRADHUB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("GRADHUB_STRICT", raising=False)
    monkeypatch.delenv("GRADHUB_DISABLE_PLUGINS", raising=False)
    plugins = FakePlugins(tmp_path)
    yield plugins
    for module in plugins.modules:
        sys.modules.pop(module, None)


@pytest.fixture
def imported() -> Callable[[str], bool]:
    return lambda module: module in sys.modules
