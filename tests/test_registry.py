"""The registry: discovery from metadata, lazy loading, failures recorded and raised where they belong."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable

import pytest

from gradhub.errors import (
    InvalidSpecError,
    MethodNotFoundError,
    NameConflictError,
    PluginLoadError,
)
from tests.conftest import LEGACY_SPEC_MODULE, SPEC_MODULE, FakePlugins, legacy_spec_source, spec_source

RAISES_ON_IMPORT = "raise ImportError('boom: a dependency is missing')\n"


def test_listing_reads_metadata_only(fake_plugins: FakePlugins, imported: Callable[[str], bool]) -> None:
    module = fake_plugins.module_name("explodes")
    fake_plugins.distribution(
        "gradhub-explodes", {"gradhub.optimizer": {"explodes": module}}, {module: RAISES_ON_IMPORT}
    )
    good = fake_plugins.plugin("gradhub-good", {"goodopt": None})
    entries = fake_plugins.registry().entries()
    assert [(e.name, e.kind, e.distribution, e.version, e.error) for e in entries] == [
        ("explodes", "optimizer", "gradhub-explodes", "1.0", None),
        ("goodopt", "optimizer", "gradhub-good", "1.0", None),
    ]
    assert not imported(module) and not imported(good)


def test_spec_loads_exactly_one_entry_module(fake_plugins: FakePlugins, imported: Callable[[str], bool]) -> None:
    first = fake_plugins.plugin("gradhub-first", {"firstopt": None})
    second = fake_plugins.plugin("gradhub-second", {"secondopt": None})
    registry = fake_plugins.registry()
    spec = registry.spec("firstopt")
    assert spec.name == "firstopt" and spec.summary == "firstopt summary"
    assert imported(first) and not imported(second)
    entry = next(e for e in registry.entries() if e.name == "firstopt")
    assert entry.summary == "firstopt summary"


def test_get_returns_the_target(fake_plugins: FakePlugins) -> None:
    import torch

    fake_plugins.plugin("gradhub-sgd", {"plain-sgd": "torch.optim:SGD"})
    registry = fake_plugins.registry()
    assert registry.get("plain-sgd") is torch.optim.SGD
    assert registry.get("PLAIN-SGD ") is torch.optim.SGD  # names are case- and space-insensitive


def test_import_failure_is_recorded_and_raised_only_for_its_names(fake_plugins: FakePlugins) -> None:
    module = fake_plugins.module_name("broken")
    fake_plugins.distribution(
        "gradhub-broken", {"gradhub.optimizer": {"brokenopt": module}}, {module: RAISES_ON_IMPORT}, version="2.5"
    )
    fake_plugins.plugin("gradhub-fine", {"fineopt": None})
    registry = fake_plugins.registry()
    registry.load_all()
    error = next(e for e in registry.entries() if e.name == "brokenopt").error
    assert error is not None and "gradhub-broken 2.5" in error and "boom" in error
    assert "GRADHUB_DISABLE_PLUGINS=gradhub-broken" in error and "pip install --force-reinstall" in error
    with pytest.raises(PluginLoadError, match="boom") as raised:
        registry.get("brokenopt")
    assert isinstance(raised.value, ImportError)
    assert isinstance(raised.value.__cause__, ImportError)
    assert registry.spec("fineopt").name == "fineopt"


def test_invalid_spec_fails_the_import_with_the_field(fake_plugins: FakePlugins) -> None:
    """A module-level spec is validated when it is built: an invalid one fails its module's import, reported
    as an invalid spec naming the field."""
    module = fake_plugins.module_name("invalid")
    bad = spec_source("badspec", target="no colon")
    fake_plugins.distribution(
        "gradhub-invalid", {"gradhub.optimizer": {"badspec": module}}, {module: SPEC_MODULE.format(specs=bad)}
    )
    with pytest.raises(InvalidSpecError, match=r"builds an invalid spec \(target: String should match") as raised:
        fake_plugins.registry().get("badspec")
    assert "gradhub-invalid 1.0" in str(raised.value)


def test_spec_of_the_wrong_kind_is_invalid(fake_plugins: FakePlugins) -> None:
    module = fake_plugins.module_name("wrongkind")
    body = spec_source("wrongkind", kind="layer")
    fake_plugins.distribution(
        "gradhub-wrongkind", {"gradhub.optimizer": {"wrongkind": module}}, {module: SPEC_MODULE.format(specs=body)}
    )
    with pytest.raises(InvalidSpecError, match=r"declares 'wrongkind' as an optimizer .* defines a layer"):
        fake_plugins.registry().spec("wrongkind")


def test_entry_module_without_the_spec(fake_plugins: FakePlugins) -> None:
    module = fake_plugins.module_name("nospec")
    fake_plugins.distribution("gradhub-nospec", {"gradhub.optimizer": {"nospec": module}}, {module: "X = 1\n"})
    with pytest.raises(InvalidSpecError, match=r"defines no such method\. The module must define a MethodSpec"):
        fake_plugins.registry().spec("nospec")


def test_specs_listed_twice_are_read_once(fake_plugins: FakePlugins) -> None:
    """Handles and a ``SPECS`` tuple built from them name the same objects: no duplicate, no warning."""
    module = fake_plugins.module_name("tupled")
    body = "\n".join([spec_source("firstopt"), spec_source("secondopt"), "SPECS = (FIRSTOPT, SECONDOPT)"])
    fake_plugins.distribution(
        "gradhub-tupled",
        {"gradhub.optimizer": {"firstopt": module, "secondopt": module}},
        {module: SPEC_MODULE.format(specs=body)},
    )
    registry = fake_plugins.registry()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [registry.spec(name).name for name in ("firstopt", "secondopt")] == ["firstopt", "secondopt"]


def test_protocol_1_entry_module_is_read_through_its_hook_with_a_warning(fake_plugins: FakePlugins) -> None:
    """An entry module with only ``register_methods`` (plugin protocol 1) still works, deprecated."""
    import torch

    module = fake_plugins.plugin("gradhub-legacy", {"legacyopt": "torch.optim:SGD"}, legacy=True)
    registry = fake_plugins.registry()
    with pytest.warns(
        DeprecationWarning,
        match=rf"{module} \(gradhub-legacy 1.0\) declares its methods through a register_methods hook",
    ):
        spec = registry.spec("legacyopt")
    assert (spec.name, spec.kind.value, spec.summary) == ("legacyopt", "optimizer", "legacyopt summary")
    assert registry.get("legacyopt") is torch.optim.SGD


def test_protocol_1_invalid_spec_is_reported_with_the_field(fake_plugins: FakePlugins) -> None:
    module = fake_plugins.module_name("invalid")
    bad = legacy_spec_source("badspec", target="no colon")
    fake_plugins.distribution(
        "gradhub-invalid", {"gradhub.optimizer": {"badspec": module}}, {module: LEGACY_SPEC_MODULE.format(specs=bad)}
    )
    with pytest.warns(DeprecationWarning), pytest.raises(InvalidSpecError, match="target") as raised:
        fake_plugins.registry().get("badspec")
    assert "gradhub-invalid 1.0" in str(raised.value)


def test_protocol_1_hook_with_a_wrong_signature_is_a_load_error(fake_plugins: FakePlugins) -> None:
    module = fake_plugins.module_name("badhook")
    source = "import gradhub\n\n@gradhub.hookimpl\ndef register_methods(register, extra):\n    pass\n"
    fake_plugins.distribution("gradhub-badhook", {"gradhub.optimizer": {"badhook": module}}, {module: source})
    with (
        pytest.warns(DeprecationWarning),
        pytest.raises(PluginLoadError, match=r"register_methods\(\) missing 1 required positional argument: 'extra'"),
    ):
        fake_plugins.registry().spec("badhook")


def test_entry_point_value_must_be_a_module(fake_plugins: FakePlugins) -> None:
    fake_plugins.distribution("gradhub-attr", {"gradhub.optimizer": {"attr": "some.module:thing"}}, {})
    with pytest.raises(InvalidSpecError, match="must be a module path"):
        fake_plugins.registry().spec("attr")


def test_name_conflict_is_seen_from_metadata(fake_plugins: FakePlugins, imported: Callable[[str], bool]) -> None:
    one = fake_plugins.plugin("gradhub-one", {"shared": None, "onlyone": None})
    two = fake_plugins.plugin("gradhub-two", {"shared": None}, version="3.0")
    registry = fake_plugins.registry()
    error = next(e for e in registry.entries() if e.name == "shared").error
    assert error is not None and "gradhub-one 1.0" in error and "gradhub-two 3.0" in error
    assert not imported(one) and not imported(two)
    with pytest.raises(NameConflictError, match="GRADHUB_DISABLE_PLUGINS"):
        registry.get("shared")
    assert registry.spec("onlyone").name == "onlyone"


def test_strict_mode_raises_at_discovery(fake_plugins: FakePlugins, monkeypatch: pytest.MonkeyPatch) -> None:
    module = fake_plugins.module_name("strict")
    fake_plugins.distribution(
        "gradhub-strict", {"gradhub.optimizer": {"strictopt": module}}, {module: RAISES_ON_IMPORT}
    )
    monkeypatch.setenv("GRADHUB_STRICT", "1")
    with pytest.raises(PluginLoadError, match="boom"):
        fake_plugins.registry().entries()


def test_strict_mode_raises_for_conflicts(fake_plugins: FakePlugins, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_plugins.plugin("gradhub-one", {"shared": None})
    fake_plugins.plugin("gradhub-two", {"shared": None})
    monkeypatch.setenv("GRADHUB_STRICT", "1")
    with pytest.raises(NameConflictError):
        fake_plugins.registry().entries()


def test_disabled_distributions_are_skipped(fake_plugins: FakePlugins, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_plugins.plugin("gradhub-one", {"shared": None})
    fake_plugins.plugin("gradhub-two", {"shared": None, "twoonly": None})
    monkeypatch.setenv("GRADHUB_DISABLE_PLUGINS", "Gradhub_Two, other")
    registry = fake_plugins.registry()
    assert [e.name for e in registry.entries()] == ["shared"]
    assert registry.spec("shared").name == "shared"  # the conflict is gone with gradhub-two
    with pytest.raises(MethodNotFoundError, match="GRADHUB_DISABLE_PLUGINS disables"):
        registry.get("twoonly")


def test_unknown_name_suggests_close_matches(fake_plugins: FakePlugins) -> None:
    fake_plugins.plugin("gradhub-x", {"lookahead": None})
    with pytest.raises(MethodNotFoundError, match="Did you mean 'lookahead'") as raised:
        fake_plugins.registry().get("lookahed")
    assert isinstance(raised.value, LookupError)
    assert str(raised.value).startswith("no method named 'lookahed'")


def test_first_party_method_not_installed_says_how_to_install(fake_plugins: FakePlugins) -> None:
    with pytest.raises(MethodNotFoundError, match="pip install gradhub-adamp"):
        fake_plugins.registry().get("sgdp")


def test_aliases_resolve(fake_plugins: FakePlugins) -> None:
    module = fake_plugins.module_name("aliased")
    body = spec_source("aliased", aliases=("also-known-as",))
    fake_plugins.distribution(
        "gradhub-aliased", {"gradhub.optimizer": {"aliased": module}}, {module: SPEC_MODULE.format(specs=body)}
    )
    assert fake_plugins.registry().spec("also-known-as").name == "aliased"


def test_refresh_sees_new_plugins(fake_plugins: FakePlugins) -> None:
    registry = fake_plugins.registry()
    assert registry.entries() == []
    fake_plugins.plugin("gradhub-late", {"lateopt": None})
    assert registry.entries() == []  # cached
    registry.refresh()
    assert [e.name for e in registry.entries()] == ["lateopt"]


def test_concurrent_lookups_load_the_module_once(fake_plugins: FakePlugins) -> None:
    module = fake_plugins.module_name("counted")
    counter = fake_plugins.module_name("counter")
    body = SPEC_MODULE.format(specs=spec_source("countedopt"))
    fake_plugins.distribution(
        "gradhub-counted",
        {"gradhub.optimizer": {"countedopt": module}},
        {counter: "imports = []\n", module: f"import {counter}\n{counter}.imports.append(1)\n{body}"},
    )
    registry = fake_plugins.registry()
    results: list[object] = []
    errors: list[BaseException] = []

    def look_up() -> None:
        try:
            results.append(registry.get("countedopt"))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=look_up) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    import importlib

    assert not errors
    assert len(results) == 8 and all(result is results[0] for result in results)
    assert importlib.import_module(counter).imports == [1]


def test_in_process_registration(fake_plugins: FakePlugins) -> None:
    from gradhub.specs import MethodSpec

    fake_plugins.plugin("gradhub-installed", {"taken": None})
    registry = fake_plugins.registry()
    paper = {"title": "T", "authors": ["A"], "year": 2024}
    local = {"name": "mine", "kind": "loss", "summary": "s", "paper": paper, "target": "torch.nn:MSELoss"}
    local["example"] = "m:f"
    spec = registry.register(local)
    assert isinstance(spec, MethodSpec)
    assert registry.spec("mine") is spec
    row = next(e for e in registry.entries() if e.name == "mine")
    assert (row.distribution, row.version, row.error) == (None, None, None)
    replaced = registry.register({**local, "summary": "again"})
    assert registry.spec("mine") is replaced
    with pytest.raises(NameConflictError, match="already provided by gradhub-installed"):
        registry.register({**local, "name": "taken"})
    registry.unregister("mine")
    with pytest.raises(MethodNotFoundError):
        registry.spec("mine")


def test_undeclared_specs_warn(fake_plugins: FakePlugins) -> None:
    module = fake_plugins.module_name("extra")
    body = spec_source("declared") + "\n" + spec_source("undeclared")
    fake_plugins.distribution(
        "gradhub-extra", {"gradhub.optimizer": {"declared": module}}, {module: SPEC_MODULE.format(specs=body)}
    )
    with pytest.warns(UserWarning, match="undeclared"):
        fake_plugins.registry().spec("declared")


def test_list_filters(fake_plugins: FakePlugins) -> None:
    fake_plugins.plugin("gradhub-a", {"adam-like": None, "sgd-like": None})
    fake_plugins.plugin("gradhub-b", {"some-loss": None}, kind="loss")
    registry = fake_plugins.registry()
    assert [e.name for e in registry.entries(kind="loss")] == ["some-loss"]
    assert [e.name for e in registry.entries(pattern="like")] == ["adam-like", "sgd-like"]
    assert [e.name for e in registry.entries(pattern="*-like")] == ["adam-like", "sgd-like"]
    assert [e.name for e in registry.entries(pattern="s?d*")] == ["sgd-like"]
    with pytest.raises(ValueError, match="unknown kind 'optimiser'"):
        registry.entries(kind="optimiser")
