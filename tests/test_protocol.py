"""Plugin protocol 2: a method declared once, defaults from the model, public core API only, no import cycle."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import sys
from pathlib import Path

import pytest

import gradhub
import gradhub.testing
from gradhub.registry import KINDS
from gradhub.specs import first_party_index, render_first_party

ROOT = Path(__file__).resolve().parents[1]
LION = Path(__file__).with_name("protocol") / "lion.py"


def _load_lion():
    if "gradhub_lion_fixture" not in sys.modules:
        spec = importlib.util.spec_from_file_location("gradhub_lion_fixture", LION)
        module = importlib.util.module_from_spec(spec)
        sys.modules["gradhub_lion_fixture"] = module
        spec.loader.exec_module(module)
    return sys.modules["gradhub_lion_fixture"]


def test_a_complete_optimizer_takes_under_40_lines_and_passes_the_suite() -> None:
    """One model, the math as path functions, one spec, the class: the suite passes it."""
    code_lines = [line for line in LION.read_text().splitlines() if line.strip()]
    assert len(code_lines) <= 40, f"the Lion fixture grew to {len(code_lines)} non-blank lines"
    lion = _load_lion()
    gradhub.register(lion.LION)
    try:
        report = gradhub.testing.check(lion.LION, raise_on_failure=False)
    finally:
        gradhub._registry.unregister(lion.LION.name)
    assert report.ok, report.summary()
    assert len(report.results) >= 15
    signature = inspect.signature(lion.Lion)
    assert str(signature) == (
        "(params, lr: float = 0.0001, betas: tuple[float, float] = (0.9, 0.99), weight_decay: float = 0.0, "
        "*, foreach: bool | None = None)"
    )
    assert signature.parameters["foreach"].kind is inspect.Parameter.KEYWORD_ONLY
    assert "betas (default (0.9, 0.99))" in lion.Lion.__doc__


def test_the_lion_fixture_steps_like_the_paper() -> None:
    """Algorithm 2 by hand on one tensor: both paths agree with it to round-off."""
    import torch

    lion = _load_lion()
    for foreach in (False, True):
        weight = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64))
        optimizer = lion.Lion([weight], lr=0.1, betas=(0.9, 0.99), weight_decay=0.1, foreach=foreach)
        expected, momentum = weight.detach().clone(), torch.zeros(3, dtype=torch.float64)
        for gradient in ([0.3, -0.2, 0.0], [-1.0, 0.5, 2.0]):
            grad = torch.tensor(gradient, dtype=torch.float64)
            weight.grad = grad.clone()
            optimizer.step()
            expected = expected * (1 - 0.1 * 0.1) - 0.1 * torch.sign(0.9 * momentum + 0.1 * grad)
            momentum = 0.99 * momentum + 0.01 * grad
            torch.testing.assert_close(weight.detach(), expected, rtol=0, atol=1e-15)


def test_a_bad_hyperparameter_set_later_is_caught_before_the_step() -> None:
    import torch

    lion = _load_lion()
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = lion.Lion([weight])
    weight.grad = torch.ones(3)
    optimizer.step()
    before = weight.detach().clone()
    optimizer.param_groups[0]["lr"] = -1.0
    with pytest.raises(gradhub.HyperparameterError, match=r"lion-fixture: invalid lr=-1.0"):
        optimizer.step()
    assert torch.equal(weight.detach(), before)


def test_first_party_index_is_generated_from_plugins() -> None:
    """`make specs` writes gradhub/_firstparty.py from plugins/*/pyproject.toml; it must be current."""
    expected = render_first_party(first_party_index(ROOT / "plugins"))
    actual = (ROOT / "gradhub" / "_firstparty.py").read_text()
    assert actual == expected, "gradhub/_firstparty.py is stale: run `make specs`"


def _python_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*.py") if ".venv" not in path.parts)


def _private_core_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "gradhub":
            parts = node.module.split(".")
            if any(part.startswith("_") for part in parts):
                found.append(f"{path}:{node.lineno} from {node.module} import ...")
            found += [
                f"{path}:{node.lineno} from {node.module} import {alias.name}"
                for alias in node.names
                if alias.name.startswith("_")
            ]
        elif isinstance(node, ast.Import):
            found += [
                f"{path}:{node.lineno} import {alias.name}"
                for alias in node.names
                if alias.name.split(".")[0] == "gradhub" and any(p.startswith("_") for p in alias.name.split("."))
            ]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            value = node.value
            if isinstance(value, ast.Name) and value.id == "gradhub":
                found.append(f"{path}:{node.lineno} gradhub.{node.attr}")
    return found


def test_plugins_use_only_public_core_api() -> None:
    """A plugin (package, tests, claims) imports no private core module or name."""
    found = [line for path in _python_files(ROOT / "plugins") for line in _private_core_imports(path)]
    assert not found, "plugins use private core names:\n" + "\n".join(found)


def _module_imports(path: Path, module: str, known: set[str]) -> set[str]:
    """Core modules imported at module level (not under TYPE_CHECKING, not inside functions)."""
    tree = ast.parse(path.read_text())
    imported: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.If):
                test = ast.unparse(node.test)
                if "TYPE_CHECKING" not in test and "__main__" not in test:
                    visit(node.body)
                    visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names if alias.name in known)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    candidate = f"{node.module}.{alias.name}"
                    imported.add(candidate if candidate in known else node.module)

    visit(tree.body)
    return {name for name in imported if name in known and name != module}


def test_core_modules_import_no_cycle() -> None:
    core = ROOT / "gradhub"
    modules = {}
    for path in _python_files(core):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph = {name: _module_imports(path, name, set(modules)) for name, path in modules.items()}
    # A module importing its own package's __init__ (``import gradhub``) is the normal package shape.
    for name in graph:
        graph[name] = {target for target in graph[name] if not name.startswith(target + ".")}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def walk(node: str, stack: list[str]) -> bool:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycle.extend([*stack[stack.index(target) :], target] if target in stack else [node, target])
                return True
            if target not in state and walk(target, [*stack, target]):
                return True
        state[node] = 2
        return False

    for start in sorted(graph):
        if start not in state and walk(start, [start]):
            break
    assert not cycle, "import cycle in the core: " + " -> ".join(cycle)


def test_kinds_are_defined_once() -> None:
    """gradhub.registry.KINDS is the one list; the enum and the kinds package derive from it."""
    from gradhub import kinds
    from gradhub.specs import Kind

    assert kinds.KINDS is KINDS
    assert [kind.value for kind in Kind] == list(KINDS)
    literal = '"optimizer", "layer", "loss", "solver", "attack", "sampler", "schedule", "probe"'
    holders = [path for path in _python_files(ROOT / "gradhub") if literal in path.read_text()]
    assert [path.name for path in holders] == ["registry.py"]


def _string_literals(path: Path) -> list[str]:
    """Every string constant in the file (``__all__`` entries too: derive them from the objects)."""
    return [
        node.value
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def test_each_first_party_method_name_is_written_once_in_its_package() -> None:
    """One `name=` in the spec; implementations, targets, examples and messages derive it."""
    index = first_party_index(ROOT / "plugins")
    repeated = {}
    for name, slug in index.items():
        package = next((ROOT / "plugins" / slug).glob("gradhub_*"))
        count = sum(literal == name for path in _python_files(package) for literal in _string_literals(path))
        if count != 1:
            repeated[name] = count
    assert not repeated, f"method names written more (or less) than once as a string in their package: {repeated}"


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_has_an_entry_point_group_in_the_docs(kind: str) -> None:
    assert f"gradhub.{kind}" in (ROOT / "specs" / "plugin-protocol.md").read_text()


PACK = '''
import gradhub
from gradhub.testing import checks_in, conformance_check


@conformance_check("optimizer", dtypes="none", per_device=False, when="it declares a foreach path",
                   applies=lambda spec: spec.capabilities.supports_foreach)
def check_pack_says_foreach(spec, device, dtype):
    """A check from a check pack: it sees every optimizer that declares foreach."""
    SEEN.append(spec.name)


SEEN = []


@gradhub.hookimpl
def gradhub_conformance_checks():
    return checks_in(globals())
'''


def test_check_packs_are_gathered_through_the_pluggy_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed `gradhub.checks` entry point adds its checks to the suite, beside the core's."""
    from gradhub.testing import _suite

    (tmp_path / "fake_check_pack.py").write_text(PACK)
    info = tmp_path / "fake_check_pack-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-check-pack\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[gradhub.checks]\nfake = fake_check_pack\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _suite.reload_checks()
    try:
        ids = [definition.id for definition in _suite.definitions("optimizer")]
        assert "pack_says_foreach" in ids and "resume_exact" in ids
        assert "pack_says_foreach" not in [definition.id for definition in _suite.definitions("loss")]
        lion = _load_lion()
        gradhub.register(lion.LION)
        try:
            report = gradhub.testing.check(lion.LION, raise_on_failure=False)
        finally:
            gradhub._registry.unregister(lion.LION.name)
        assert report.ok, report.summary()
        assert [lion.LION.name] == sys.modules["fake_check_pack"].SEEN
    finally:
        monkeypatch.undo()
        sys.modules.pop("fake_check_pack", None)
        _suite.reload_checks()
    assert "pack_says_foreach" not in [definition.id for definition in _suite.definitions("optimizer")]


def test_a_legacy_protocol_1_entry_module_still_loads_with_a_warning(tmp_path: Path) -> None:
    """An entry module with only a register_methods hook is read through it, with a DeprecationWarning."""
    from gradhub.registry import Registry

    (tmp_path / "legacy_plugin.py").write_text(
        "from gradhub.specs import MethodSpec, Paper\n"
        "def register_methods(register):\n"
        "    register(MethodSpec(name='legacy-one', kind='loss', summary='s', paper=Paper(title='T', "
        "authors=('A B',), year=2020), target='legacy_plugin:f', example='legacy_plugin:e'))\n"
    )
    info = tmp_path / "legacy_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: legacy-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[gradhub.loss]\nlegacy-one = legacy_plugin\n")
    sys.path.insert(0, str(tmp_path))
    try:
        registry = Registry(path=[str(tmp_path)])
        with pytest.warns(DeprecationWarning, match="protocol 1"):
            spec = registry.spec("legacy-one")
        assert spec.kind.value == "loss"
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("legacy_plugin", None)


def test_code_cites_papers_not_a_document_outside_the_repository() -> None:
    """Comments and docstrings cite paper sections and equations or the official code, never "the brief"."""
    found = [
        f"{path}:{number}"
        for folder in ("gradhub", "plugins", "tests")
        for path in _python_files(ROOT / folder)
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "brief" in line.lower() and path.name != "test_protocol.py"
    ]
    assert not found, "cites the brief: " + ", ".join(found)
