"""entry_module_torch_free, run the only way it can run: on methods of an installed distribution.

The check imports the plugin's entry module (named by its entry point) in a fresh
interpreter. So this file installs a real distribution for the session: a ``*.dist-info``
folder with ``entry_points.txt`` on ``sys.path`` (and on ``PYTHONPATH`` for the
subprocess), declaring one method of every kind in a torch-free entry module and one in
an entry module that imports torch. Fresh interpreters are slow (importing torch takes
about a second), so the sixteen checks run once, concurrently, in a module fixture.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from gradhub_suite_broken import TORCH_IMPORTING_ENTRY_MODULES, TorchImportingEntryModule
from gradhub_suite_methods import GOOD_METHODS

import gradhub
import gradhub.testing
from gradhub.kinds import KINDS
from gradhub.specs import MethodSpec
from gradhub.testing._suite import CheckResult, run_check

CHECK = "entry_module_torch_free"
DISTRIBUTION = "gradhub-suite-fixture"

ENTRY_MODULE = '''"""A plugin's entry module: specs only{why}."""
{imports}
from gradhub.specs import MethodSpec, Paper

PAPER = Paper(title="Conformance-suite fixture", authors=("gradhub contributors",), year=2025)

{specs}
'''


def clean_name(kind: str) -> str:
    return f"suite-entry-torch-free-{kind}"


def good_spec(kind: str) -> MethodSpec:
    return next(spec for spec in GOOD_METHODS if spec.kind.value == kind)


def spec_source(name: str, kind: str) -> str:
    """A module-level spec (plugin protocol 2) reusing the good method of ``kind``'s target and example."""
    good = good_spec(kind)
    return (
        f"{name.upper().replace('-', '_')} = MethodSpec(name={name!r}, kind={kind!r}, summary='fixture', paper=PAPER, "
        f"target={good.target!r}, example={good.example!r}, capabilities={good.capabilities.model_dump()!r})"
    )


def entry_module(specs: dict[str, str], imports_torch: bool) -> str:
    return ENTRY_MODULE.format(
        why=", but it imports torch" if imports_torch else "",
        imports="import torch  # the mistake: the implementation's import, in the entry module\n"
        if imports_torch
        else "",
        specs="\n".join(spec_source(name, kind) for name, kind in specs.items()),
    )


def install(root: Path, modules: dict[str, dict[str, str]], sources: dict[str, str]) -> None:
    """Write a distribution whose entry points map method names to entry modules, and the modules."""
    info = root / f"{DISTRIBUTION.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {DISTRIBUTION}\nVersion: 1.0\n")
    groups: dict[str, list[str]] = {}
    for module, methods in modules.items():
        for name, kind in methods.items():
            groups.setdefault(f"gradhub.{kind}", []).append(f"{name} = {module}")
    (info / "entry_points.txt").write_text("".join(f"[{g}]\n" + "\n".join(lines) + "\n" for g, lines in groups.items()))
    for module, source in sources.items():
        (root / f"{module}.py").write_text(source)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], CheckResult]]:
    """Install the fixture distribution, run its 16 entry-module checks, uninstall; results by method name."""
    root = tmp_path_factory.mktemp("site")
    suffix = uuid.uuid4().hex[:8]
    clean_module, torch_module = f"suite_entry_clean_{suffix}", f"suite_entry_torch_{suffix}"
    clean = {clean_name(kind): kind for kind in KINDS}
    importing = {entry.name: entry.kind for entry in TORCH_IMPORTING_ENTRY_MODULES}
    install(
        root,
        {clean_module: clean, torch_module: importing},
        {clean_module: entry_module(clean, imports_torch=False), torch_module: entry_module(importing, True)},
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(root))
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
        patch.delenv("GRADHUB_STRICT", raising=False)
        patch.delenv("GRADHUB_DISABLE_PLUGINS", raising=False)
        gradhub.refresh()
        try:
            checks = {
                name: [check for check in gradhub.testing.checks(name) if check.id == CHECK]
                for name in [*clean, *importing]
            }
            assert all(len(found) == 1 for found in checks.values()), checks
            with ThreadPoolExecutor(max_workers=4) as pool:
                results = dict(zip(checks, pool.map(run_check, [found[0] for found in checks.values()])))
        finally:
            for module in (clean_module, torch_module):
                sys.modules.pop(module, None)
    gradhub.refresh()  # after sys.path is restored: the fixture distribution is forgotten
    yield results.__getitem__


@pytest.mark.parametrize("kind", KINDS)
def test_torch_free_entry_module_passes(kind: str, installed: Callable[[str], CheckResult]) -> None:
    result = installed(clean_name(kind))
    assert result.outcome == "passed", result.message


@pytest.mark.parametrize("entry", TORCH_IMPORTING_ENTRY_MODULES, ids=lambda entry: entry.kind)
def test_entry_module_importing_torch_fails(
    entry: TorchImportingEntryModule, installed: Callable[[str], CheckResult]
) -> None:
    result = installed(entry.name)
    assert result.outcome == "failed"
    assert result.message is not None
    assert result.message.startswith(f"{entry.name}: ")
    assert entry.message in result.message


def test_fixture_distribution_is_gone_afterwards(installed: Callable[[str], CheckResult]) -> None:
    assert not [entry for entry in gradhub.list() if entry.distribution == DISTRIBUTION]


def test_not_generated_for_in_process_registrations(register: Callable[[MethodSpec], str]) -> None:
    """An in-process method has no entry module to import: the check does not apply (it is not faked)."""
    name = register(GOOD_METHODS[0])
    assert CHECK not in {check.id for check in gradhub.testing.checks(name)}
