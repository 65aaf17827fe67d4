"""The gradhub command: list, info, check, demo (new is in test_scaffold.py)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gradhub.cli import main
from tests.conftest import FakePlugins

RAISES_ON_IMPORT = "raise ImportError('boom: a dependency is missing')\n"


def run_gradhub(*args: str, extra_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra_path), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "gradhub", *args], capture_output=True, text=True, env=env)


ADAMP_VERSION = importlib.metadata.version("gradhub-adamp")


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "kind", "plugin", "version", "summary"]
    adamp = next(line for line in lines if line.startswith("adamp "))
    assert adamp.split()[:4] == ["adamp", "optimizer", "gradhub-adamp", ADAMP_VERSION]


def test_list_json_and_kind(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--kind", "optimizer", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    adamp = next(row for row in rows if row["name"] == "adamp")
    assert adamp["distribution"] == "gradhub-adamp" and adamp["error"] is None and adamp["summary"]
    assert main(["list", "--kind", "probe", "--json"]) == 0
    assert all(row["kind"] == "probe" for row in json.loads(capsys.readouterr().out))


def test_list_flags_broken_plugins(fake_plugins: FakePlugins) -> None:
    module = fake_plugins.module_name("broken")
    fake_plugins.distribution("gradhub-broken", {"gradhub.loss": {"brokenloss": module}}, {module: RAISES_ON_IMPORT})
    completed = run_gradhub("list", extra_path=fake_plugins.root)
    assert completed.returncode == 0, completed.stderr
    line = next(line for line in completed.stdout.splitlines() if line.startswith("brokenloss"))
    assert "BROKEN" in line and "gradhub-broken" in line
    assert "1 broken" in completed.stdout
    completed = run_gradhub("info", "brokenloss", extra_path=fake_plugins.root)
    assert completed.returncode == 2 and "boom" in completed.stderr and "GRADHUB_DISABLE_PLUGINS" in completed.stderr


def test_info(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "adamp"]) == 0
    out = capsys.readouterr().out
    for expected in (
        "adamp (optimizer):",
        f"plugin:    gradhub-adamp {ADAMP_VERSION}",
        "arXiv 2006.08217",
        "@inproceedings{heo2021adamp,",
        "wd_ratio      0.1",
        "supports_foreach: True",
        "dtypes:    float32, float64, bfloat16",
    ):
        assert expected in out, expected
    assert "betas         (0.9, 0.999)  a tuple of 2 (finite numbers, each >= 0 and < 1)" in out


def test_unknown_name_exits_2_with_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "adamq"]) == 2
    assert "Did you mean 'adamp'" in capsys.readouterr().err


def test_check_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "sgdp", "--device", "cpu", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    names = {result["name"] for result in report["results"]}
    assert {"resume_exact[sgdp-cpu-float32]", "foreach_matches_single[sgdp-cpu-float64]", "spec_valid[sgdp]"} <= names


def test_check_fails_with_exit_1(fake_plugins: FakePlugins) -> None:
    module = fake_plugins.plugin("gradhub-wrong", {"wrongtarget": "builtins:len"})
    completed = run_gradhub("check", "wrongtarget", extra_path=fake_plugins.root)
    assert completed.returncode == 1
    assert "FAILED   spec_valid[wrongtarget]" in completed.stdout
    assert "its target 'builtins:len' is <built-in function len>; an optimizer target must be" in completed.stdout
    assert module


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("gradhub")
    completed = subprocess.run([str(script), "list", "adam"], capture_output=True, text=True)
    assert completed.returncode == 0 and "adamp" in completed.stdout and "sgdp" not in completed.stdout


def test_demo_reports_claims(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from gradhub.claims import ClaimResult

    calls = []

    def fake_run_claims(names: list[str], on_result=None) -> list[ClaimResult]:
        calls.append(list(names))
        result = ClaimResult("c", "k", {"x": 1.0}, passed=False, methods=("adamp",), path="p:q")
        on_result(result)
        return [result]

    monkeypatch.setattr("gradhub.claims.run_claims", fake_run_claims)
    assert main(["demo", "adamp"]) == 1
    assert calls == [["adamp"]]
    out = capsys.readouterr().out
    assert "[FAIL] adamp" in out and "0 of 1 claims reproduced" in out


def test_list_into_a_closed_pipe_is_quiet() -> None:
    """`gradhub list | head -1`: no BrokenPipeError traceback when the reader leaves early.

    ``true`` exits without reading, long before gradhub has started, so every write hits a
    closed pipe.
    """
    completed = subprocess.run(
        ["bash", "-c", f"{sys.executable} -m gradhub list | true"], capture_output=True, text=True
    )
    assert "Traceback" not in completed.stderr and "BrokenPipe" not in completed.stderr, completed.stderr
