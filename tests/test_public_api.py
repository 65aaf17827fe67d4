"""The public surface: what gradhub exports, what it imports, what the first-party index says."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import gradhub
from gradhub import hookspecs
from gradhub._firstparty import FIRST_PARTY_METHODS
from gradhub.specs import json_schemas

ROOT = Path(__file__).resolve().parents[1]


def test_listing_and_specs_do_not_import_torch() -> None:
    code = (
        "import sys, gradhub; entries = gradhub.list(); spec = gradhub.spec('adamp'); "
        "print(len(entries), spec.name, 'torch' in sys.modules, 'gradhub_adamp.adamp' in sys.modules)"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert output[1:] == ["adamp", "False", "False"]
    assert int(output[0]) >= 2


def test_import_gradhub_imports_neither_torch_nor_pydantic() -> None:
    code = (
        "import sys, gradhub; gradhub.list(); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'pydantic'}))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


def test_get_returns_the_optimizer_classes() -> None:
    import torch
    from gradhub_adamp.adamp import AdamP
    from gradhub_adamp.sgdp import SGDP

    assert gradhub.get("adamp") is AdamP
    assert gradhub.get("sgdp") is SGDP
    assert issubclass(AdamP, torch.optim.Optimizer) and issubclass(SGDP, torch.optim.Optimizer)


def test_public_names_resolve() -> None:
    for name in gradhub.__all__:
        assert getattr(gradhub, name) is not None, name
    assert gradhub.__version__ == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert gradhub.MethodSpec.__module__ == "gradhub.specs"


def test_every_hook_is_documented_in_code_and_protocol() -> None:
    protocol = (ROOT / "specs" / "plugin-protocol.md").read_text()
    hooks = [value for value in vars(hookspecs).values() if hasattr(value, "gradhub_spec")]
    assert hooks, "no hook specifications found"
    for hook in hooks:
        assert hook.__doc__ and len(hook.__doc__.strip()) > 40, f"hook {hook.__name__} is undocumented"
        assert f"`{hook.__name__}(" in protocol, f"specs/plugin-protocol.md does not describe {hook.__name__}"


def _declared_entry_points() -> dict[str, str]:
    declared = {}
    for pyproject in sorted((ROOT / "plugins").glob("*/pyproject.toml")):
        slug = pyproject.parent.name
        project = tomllib.loads(pyproject.read_text())["project"]
        assert project["name"] == f"gradhub-{slug}", f"{pyproject}: the distribution must be gradhub-{slug}"
        for group, points in project.get("entry-points", {}).items():
            if group.startswith("gradhub."):
                declared.update(dict.fromkeys(points, slug))
    return declared


def test_first_party_index_matches_plugins() -> None:
    assert _declared_entry_points() == FIRST_PARTY_METHODS


@pytest.mark.parametrize("filename", sorted(json_schemas()))
def test_published_json_schema_is_current(filename: str) -> None:
    published = json.loads((ROOT / "specs" / filename).read_text())
    assert published == json_schemas()[filename], f"specs/{filename} is stale: run `make specs`"


def test_protocol_lists_the_current_checks() -> None:
    from gradhub.specs import protocol_with_checks
    from gradhub.testing._suite import checks_markdown

    text = (ROOT / "specs" / "plugin-protocol.md").read_text()
    assert protocol_with_checks(text, checks_markdown()) == text, "the tables of checks are stale: run `make specs`"


def test_protocol_documents_every_spec_field_and_capability() -> None:
    from gradhub.specs import CAPABILITIES, MethodSpec

    text = (ROOT / "specs" / "plugin-protocol.md").read_text()
    for field in MethodSpec.model_fields:
        assert f"| `{field}` |" in text, f"specs/plugin-protocol.md does not describe MethodSpec.{field}"
    for model in CAPABILITIES.values():
        for field in model.model_fields:
            assert field == "kind" or f"`{field}`" in text, f"capability {field} is undocumented"


def test_lazy_exports_import_on_first_access() -> None:
    import types

    from gradhub.exports import lazy_exports

    module = types.ModuleType("fake_entry")
    module.__getattr__ = lazy_exports("fake_entry", {"dumps": "json"})  # type: ignore[method-assign]
    import json

    assert module.__getattr__("dumps") is json.dumps
    with pytest.raises(AttributeError, match="module 'fake_entry' has no attribute 'loads'"):
        module.__getattr__("loads")
