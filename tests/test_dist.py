"""Packaging: what `make dist` builds installs into a clean virtualenv from its index alone.

`tools/dist.py` builds the core and a plugin (wheel and sdist, `twine check`ed), downloads
their dependencies' wheels, and writes a PEP 503 index. A new virtualenv that holds only torch
2.13.0 (and torch's own dependencies) then installs `gradhub-adamp` from that index with pip's
configuration, environment and cache switched off, so nothing but the index can supply a
package, and `gradhub check adamp` runs there, outside the checkout.

torch is not copied into the new environment: its files (and its dependencies') from this
environment are put on the new one's path through a `.pth` file, which pip sees as installed.
That is what a user has after installing the torch build of their choice, without 700 MB of
copying per test run.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import re
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_PYPROJECTS = sorted((ROOT / "plugins").glob("*/pyproject.toml"))


def _project(pyproject: Path) -> dict:
    return tomllib.loads(pyproject.read_text())["project"]


CORE_VERSION = Version(_project(ROOT / "pyproject.toml")["version"])


@pytest.mark.parametrize("pyproject", PLUGIN_PYPROJECTS, ids=lambda path: path.parent.name)
def test_each_plugin_declares_a_core_range_that_holds_this_core(pyproject: Path) -> None:
    """`gradhub>=X.Y,<X.(Y+1)`: the core this checkout ships satisfies it, and the range stops at
    the next minor version (0.x minors may break plugins; see CONTRIBUTING, "Publishing")."""
    requirements = [Requirement(text) for text in _project(pyproject)["dependencies"]]
    core = [requirement for requirement in requirements if requirement.name == "gradhub"]
    assert len(core) == 1, f"{pyproject}: declare gradhub exactly once, got {core}"
    specifier = core[0].specifier
    assert CORE_VERSION in specifier, f"{pyproject}: gradhub {CORE_VERSION} does not satisfy {specifier}"
    floor = Version(f"{CORE_VERSION.major}.{CORE_VERSION.minor}")
    ceiling = Version(f"{CORE_VERSION.major}.{CORE_VERSION.minor + 1}")
    assert specifier == SpecifierSet(f">={floor},<{ceiling}"), f"{pyproject}: expected gradhub>={floor},<{ceiling}"


def test_the_scaffold_declares_the_same_core_range(tmp_path: Path) -> None:
    from gradhub.scaffold import create_plugin

    folder = create_plugin("range-probe", "optimizer", tmp_path)
    core = [Requirement(text) for text in _project(folder / "pyproject.toml")["dependencies"]]
    (requirement,) = [requirement for requirement in core if requirement.name == "gradhub"]
    assert CORE_VERSION in requirement.specifier
    assert Version(f"{CORE_VERSION.major}.{CORE_VERSION.minor + 1}") not in requirement.specifier


def _with_dependencies(name: str, seen: dict[str, metadata.Distribution]) -> None:
    """``name``'s distribution and its runtime dependencies' (markers evaluated here)."""
    key = re.sub(r"[-_.]+", "-", name).lower()
    if key in seen:
        return
    distribution = metadata.distribution(name)
    seen[key] = distribution
    environment = default_environment()
    for text in distribution.requires or []:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({**environment, "extra": ""}):
            _with_dependencies(requirement.name, seen)


def _torch_only_path(folder: Path) -> Path:
    """A folder of links to torch and its dependencies' files (packages and metadata), nothing else."""
    folder.mkdir()
    distributions: dict[str, metadata.Distribution] = {}
    _with_dependencies("torch", distributions)
    for distribution in distributions.values():
        site = Path(distribution.locate_file(""))
        tops = {Path(str(file)).parts[0] for file in distribution.files or []}
        for top in tops:
            source = site / top
            if top == ".." or not source.exists() or (folder / top).exists():
                continue
            (folder / top).symlink_to(source, target_is_directory=source.is_dir())
    return folder


def _clean_environment() -> dict[str, str]:
    """No pip configuration, no PYTHONPATH: only the index on the command line supplies packages."""
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("PIP_") and key != "PYTHONPATH"
    }
    environment["PIP_CONFIG_FILE"] = os.devnull
    return environment


def _run(command: list[str], cwd: Path, timeout: float) -> str:
    completed = subprocess.run(
        command, cwd=cwd, env=_clean_environment(), capture_output=True, text=True, timeout=timeout
    )
    assert completed.returncode == 0, (
        f"{command} exited {completed.returncode}:\n{completed.stdout}\n{completed.stderr}"
    )
    return completed.stdout


def test_a_clean_virtualenv_installs_gradhub_adamp_from_the_wheelhouse_alone(tmp_path: Path) -> None:
    wheelhouse = tmp_path / "dist"
    _run(
        [sys.executable, str(ROOT / "tools" / "dist.py"), "--out", str(wheelhouse), "gradhub", "gradhub-adamp"],
        tmp_path,
        600,
    )
    index = wheelhouse / "simple"
    assert (index / "gradhub-adamp" / "index.html").is_file() and (index / "pydantic" / "index.html").is_file()
    assert not list(wheelhouse.glob("torch-*")), "the wheelhouse must leave torch to the user"

    environment = tmp_path / "clean"
    venv.EnvBuilder(with_pip=True).create(environment)
    python = environment / "bin" / "python"
    site = Path(
        _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp_path, 60).strip()
    )
    # venv's bundled setuptools would shadow the (newer) one torch requires, which comes with torch below.
    _run([str(python), "-m", "pip", "uninstall", "--isolated", "--yes", "--quiet", "setuptools"], tmp_path, 120)
    (site / "torch-only.pth").write_text(str(_torch_only_path(tmp_path / "torch-only")) + "\n")
    before = _run([str(python), "-m", "pip", "list", "--format=freeze"], tmp_path, 120)
    assert "torch==2.13.0" in before and "gradhub" not in before and "pydantic" not in before

    _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--isolated",
            "--no-cache-dir",
            "--index-url",
            index.as_uri(),
            "gradhub-adamp",
        ],
        tmp_path,
        300,
    )
    after = _run([str(python), "-m", "pip", "list", "--format=freeze"], tmp_path, 120)
    assert "gradhub==" in after and "gradhub-adamp==" in after

    where = _run(
        [
            str(python),
            "-c",
            "import gradhub, gradhub_adamp; print(gradhub.__file__); print(gradhub.get('adamp').__name__)",
        ],
        tmp_path,
        120,
    ).split()
    assert Path(where[0]).is_relative_to(environment), f"imported the checkout's gradhub: {where[0]}"
    assert where[1] == "AdamP"
    report = _run([str(environment / "bin" / "gradhub"), "check", "adamp"], tmp_path, 600)
    summary = re.search(r"^(\d+) checks: (\d+) passed$", report, re.MULTILINE)
    assert summary and summary[1] == summary[2] and int(summary[1]) >= 20, report
