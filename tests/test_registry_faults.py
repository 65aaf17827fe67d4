"""A plugin cannot take the host down, and listing never waits on a slow plugin twice (issue 11)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import gradhub
from gradhub.errors import MethodNotFoundError, PluginLoadError
from gradhub.registry import ListingCache
from tests.conftest import SPEC_MODULE, FakePlugins, spec_source


def _counting_module(counter: Path, body: str, prelude: str = "") -> str:
    """An entry module that appends a line to ``counter`` each time it is imported."""
    return f"{prelude}\nwith open({str(counter)!r}, 'a') as _f:\n    _f.write('imported\\n')\n" + SPEC_MODULE.format(
        specs=body
    )


@pytest.mark.parametrize("fault", ["raise SystemExit(3)", "raise GeneratorExit()", "import os; os.sys.exit(0)"])
def test_an_entry_module_that_exits_is_recorded_not_fatal(fake_plugins: FakePlugins, fault: str) -> None:
    module = fake_plugins.module_name("exits")
    fake_plugins.distribution("gradhub-exits", {"gradhub.loss": {"quits": module}}, {module: fault + "\n"})
    fake_plugins.plugin("gradhub-fine", {"fine": None})
    registry = fake_plugins.registry()
    registry.load_all()
    rows = {row.name: row for row in registry.entries()}
    assert ("could not be loaded" in rows["quits"].error and "SystemExit" in rows["quits"].error) or "Exit" in rows[
        "quits"
    ].error
    assert rows["fine"].error is None
    with pytest.raises(PluginLoadError, match=r"'quits' from gradhub-exits 1.0 could not be loaded"):
        registry.get("quits")


def test_keyboard_interrupt_in_a_plugin_is_not_swallowed(fake_plugins: FakePlugins) -> None:
    module = fake_plugins.module_name("interrupts")
    fake_plugins.distribution(
        "gradhub-interrupts", {"gradhub.loss": {"stops": module}}, {module: "raise KeyboardInterrupt\n"}
    )
    with pytest.raises(KeyboardInterrupt):
        fake_plugins.registry().spec("stops")


def test_a_slow_plugin_costs_one_cold_list(fake_plugins: FakePlugins, tmp_path: Path) -> None:
    """The second listing reads the cache: the entry module is not imported again."""
    counter = tmp_path / "imports.txt"
    module = fake_plugins.module_name("slow")
    source = _counting_module(counter, spec_source("slowpoke"), prelude="import time\ntime.sleep(0.5)")
    fake_plugins.distribution("gradhub-slow", {"gradhub.optimizer": {"slowpoke": module}}, {module: source})
    start = time.perf_counter()
    fake_plugins.registry().load_all()
    cold = time.perf_counter() - start
    assert cold >= 0.5 and counter.read_text().count("imported") == 1
    import sys

    sys.modules.pop(module, None)
    registry = fake_plugins.registry()
    registry.load_all()
    assert counter.read_text().count("imported") == 1, "a warm listing imported the entry module again"
    (row,) = [row for row in registry.entries() if row.name == "slowpoke"]
    assert row.summary and row.error is None  # the cached summary is shown
    assert module not in sys.modules


def test_the_cache_follows_an_edited_entry_module(fake_plugins: FakePlugins, tmp_path: Path) -> None:
    import sys

    module = fake_plugins.plugin("gradhub-edited", {"edited": None})
    fake_plugins.registry().load_all()
    path = tmp_path / f"{module}.py"
    path.write_text(path.read_text() + "\n# edited\n")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    sys.modules.pop(module, None)
    registry = fake_plugins.registry()
    registry.load_all()
    assert module in sys.modules, "an edited entry module must be read again"


def test_a_mistyped_get_with_a_warm_cache_imports_no_plugin(fake_plugins: FakePlugins, tmp_path: Path) -> None:
    import sys

    counter = tmp_path / "imports.txt"
    module = fake_plugins.module_name("counted")
    source = _counting_module(counter, spec_source("adamq-like"))
    fake_plugins.distribution("gradhub-counted", {"gradhub.optimizer": {"adamq-like": module}}, {module: source})
    fake_plugins.registry().load_all()
    sys.modules.pop(module, None)
    with pytest.raises(MethodNotFoundError, match=r"Did you mean 'adamq-like'"):
        fake_plugins.registry().get("adamq-lik")
    assert counter.read_text().count("imported") == 1
    assert module not in sys.modules


def test_the_cache_is_one_json_file_and_can_be_turned_off(
    fake_plugins: FakePlugins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_plugins.plugin("gradhub-cached", {"cached": None})
    fake_plugins.registry().load_all()
    stored = json.loads((tmp_path / "cache" / "listing.json").read_text())
    assert stored["version"] == ListingCache.VERSION and len(stored["distributions"]) == 1
    monkeypatch.setenv("GRADHUB_CACHE_DIR", "off")
    assert ListingCache.location() is None


def test_gradhub_list_of_the_real_environment_still_imports_no_torch() -> None:
    import subprocess
    import sys

    code = "import sys, gradhub; gradhub._registry.load_all(); gradhub.list(); print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr
    assert gradhub.list()
