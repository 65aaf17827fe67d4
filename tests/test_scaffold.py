"""`gradhub new`: every kind's generated package installs, passes `gradhub check` and its own tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gradhub.errors import UnsupportedInputError
from gradhub.registry import KINDS
from gradhub.scaffold import create_plugin


def _fill_in_placeholders(package: Path) -> None:
    """What the author does first: the paper's authors and the method's summary replace the template's."""
    entry = next(package.glob("gradhub_*/__init__.py"))
    text = entry.read_text()
    assert 'authors=("Replace Me",)' in text and "(a template: replace" in text
    text = text.replace('authors=("Replace Me",)', 'authors=("Ada Lovelace",)')
    entry.write_text(re.sub(r" \(a template: replace [^)]*\)", "", text))


def test_generated_plugins_install_and_pass(tmp_path: Path) -> None:
    packages = [create_plugin(f"new-{kind}", kind, tmp_path / "src") for kind in KINDS]
    for package in packages:
        _fill_in_placeholders(package)
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(site)]
        + [str(package) for package in packages],
        check=True,
        capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    names = [f"new-{kind}" for kind in KINDS]
    listed = subprocess.run([sys.executable, "-m", "gradhub", "list"], env=env, capture_output=True, text=True)
    for name, kind in zip(names, KINDS):
        assert any(line.split()[:3] == [name, kind, f"gradhub-{name}"] for line in listed.stdout.splitlines()), name
    command = [sys.executable, "-m", "gradhub", "check", *names]
    checked = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-2000:]
    total, passed = re.fullmatch(r"(\d+) checks: (\d+) passed", checked.stdout.splitlines()[-1]).groups()
    assert total == passed and int(total) > 60
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--import-mode=importlib"]
        + [str(package / "tests") for package in packages],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=900,
    )
    assert tests.returncode == 0, tests.stdout[-3000:]


def test_generated_layout(tmp_path: Path) -> None:
    root = create_plugin("my_method", "optimizer", tmp_path)
    assert root.name == "gradhub-my-method"
    assert sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()) == [
        "CHANGELOG.md",
        "README.md",
        "gradhub_my_method/__init__.py",
        "gradhub_my_method/method.py",
        "pyproject.toml",
        "tests/test_conformance.py",
        "tests/test_method.py",
    ]
    pyproject = (root / "pyproject.toml").read_text()
    assert '[project.entry-points."gradhub.optimizer"]\nmy_method = "gradhub_my_method"' in pyproject
    assert 'name = "gradhub-my-method"' in pyproject and "gradhub>=0.2,<0.3" in pyproject
    method = (root / "gradhub_my_method" / "method.py").read_text()
    assert "class MyMethod(ElementwiseOptimizer):" in method and "spec = MY_METHOD" in method
    entry = (root / "gradhub_my_method" / "__init__.py").read_text()
    assert 'MY_METHOD = MethodSpec(\n    name="my_method",' in entry
    # Declared once: the name is written in the spec and the entry point, nowhere else in the package.
    written = [path for path in root.rglob("*.py") if '"my_method"' in path.read_text()]
    assert [path.name for path in written] == ["__init__.py"]
    assert entry.count('"my_method"') == 1


@pytest.mark.parametrize(("slug", "kind"), [("Bad", "layer"), ("class", "layer"), ("ok", "regularizer")])
def test_bad_arguments(tmp_path: Path, slug: str, kind: str) -> None:
    with pytest.raises(UnsupportedInputError, match="gradhub new"):
        create_plugin(slug, kind, tmp_path)


def test_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    create_plugin("taken", "loss", tmp_path)
    with pytest.raises(UnsupportedInputError, match="must not exist or be empty"):
        create_plugin("taken", "loss", tmp_path)


def test_the_template_placeholders_fail_spec_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As generated, the spec names "Replace Me" and a template summary: spec_valid says to replace them."""
    import importlib

    import gradhub.testing
    from gradhub.errors import ConformanceError

    root = create_plugin("placeholder-kept", "loss", tmp_path)
    monkeypatch.syspath_prepend(str(root))
    module = importlib.import_module("gradhub_placeholder_kept")
    try:
        (spec_valid,) = [check for check in gradhub.testing.checks(module.PLACEHOLDER_KEPT) if check.id == "spec_valid"]
        with pytest.raises(ConformanceError, match=r"template's placeholder authors \('Replace Me',\) and summary"):
            spec_valid()
    finally:
        for name in [name for name in sys.modules if name.startswith("gradhub_placeholder_kept")]:
            del sys.modules[name]
