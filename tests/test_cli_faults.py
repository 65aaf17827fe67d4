"""The CLI never lies: each fault gives one line naming what was given and an honest exit code."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import gradhub
from gradhub.claims import ClaimResult
from gradhub.cli import main
from tests.conftest import FakePlugins, spec_fields

PAPER = {"title": "A Paper", "authors": ("A. Author",), "year": 2024}
Capture = pytest.CaptureFixture[str]


@pytest.fixture
def only_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine has a CPU and nothing else, whatever it really has."""
    monkeypatch.setattr("gradhub.cli.device_available", lambda device: device == "cpu")


@pytest.fixture
def instant_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every check passes at once; returns the names of those run."""
    from gradhub.testing._suite import Check, CheckResult

    ran: list[str] = []

    def run_check(check: Check) -> CheckResult:
        ran.append(check.name)
        return CheckResult(check, "passed", None, 0.0)

    monkeypatch.setattr("gradhub.testing._suite.run_check", run_check)
    return ran


@pytest.fixture
def fake_claims(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """``run_claims`` reports one passing claim, with no figures; returns the names it was asked for."""
    calls: list[list[str]] = []

    def run_claims(names: list[str], on_result: Callable[[ClaimResult], None] | None = None) -> list[ClaimResult]:
        calls.append(list(names))
        return [ClaimResult("claim", "criterion", {"x": 1.0}, passed=True, methods=("adamp",), path="p:q")]

    monkeypatch.setattr("gradhub.claims.run_claims", run_claims)
    return calls


# --- gradhub check --device ------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "hint"), [("cdua", " (did you mean 'cuda'?)"), ("tpu", " (did you mean 'xpu'?)"), ("meta", "")]
)
def test_check_refuses_an_unknown_device(capsys: Capture, device: str, hint: str) -> None:
    assert main(["check", "diffgrad", "--device", device]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"gradhub: error: unknown --device {device!r}{hint}; devices are: cpu, cuda, mps, xpu\n"


def test_check_refuses_an_unavailable_device(capsys: Capture, only_cpu: None, instant_checks: list[str]) -> None:
    assert main(["check", "diffgrad", "--device", "cuda"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and instant_checks == []
    assert captured.err == "gradhub: error: cuda is not available on this machine (--skip-unavailable skips it)\n"


def test_device_available_asks_torch() -> None:
    import torch

    from gradhub.cli import device_available

    assert device_available("cpu") and device_available("cuda") == torch.cuda.is_available()


def test_skip_unavailable_runs_the_rest(capsys: Capture, only_cpu: None, instant_checks: list[str]) -> None:
    assert main(["check", "sgdp", "--device", "cpu", "--device", "cuda", "--skip-unavailable"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "gradhub: cuda is not available on this machine; skipped\n"
    assert captured.out.splitlines()[-1] == f"{len(instant_checks)} checks: {len(instant_checks)} passed"
    assert any("-cpu-" in name for name in instant_checks) and not any("cuda" in name for name in instant_checks)


def test_skipping_every_device_is_not_a_pass(capsys: Capture, only_cpu: None, instant_checks: list[str]) -> None:
    assert main(["check", "sgdp", "--device", "cuda", "--skip-unavailable", "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and instant_checks == []
    assert captured.err == (
        "gradhub: cuda is not available on this machine; skipped\n"
        "gradhub: error: no checks ran: no requested device is available on this machine (cuda)\n"
    )


@pytest.fixture
def cuda_only() -> Iterator[str]:
    gradhub.register({**spec_fields("cuda-only-method"), "paper": PAPER, "devices": ("cuda",)})
    yield "cuda-only-method"
    gradhub._registry.unregister("cuda-only-method")


def test_no_check_on_a_requested_device_is_not_a_pass(
    capsys: Capture, cuda_only: str, instant_checks: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gradhub.cli.device_available", lambda device: True)
    assert main(["check", cuda_only, "--device", "cpu"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and instant_checks == []
    assert captured.err == "gradhub: error: no checks ran on cpu: cuda-only-method supports cuda only\n"


def test_no_installed_method_on_a_device_is_not_a_pass(
    capsys: Capture, instant_checks: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gradhub.cli.device_available", lambda device: True)
    monkeypatch.setattr("gradhub.testing._all_installed", lambda: ["sgdp"])
    assert main(["check", "--device", "xpu"]) == 1
    assert capsys.readouterr().err == "gradhub: error: no checks ran on xpu: no installed method supports it\n"


def test_no_methods_is_not_a_pass(capsys: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gradhub.testing._all_installed", lambda: [])
    assert main(["check"]) == 1
    assert capsys.readouterr().err == "gradhub: error: no checks ran: no methods installed\n"


# --- gradhub list ----------------------------------------------------------------------


def test_list_says_the_pattern_matched_nothing(capsys: Capture) -> None:
    assert main(["list", "--kind", "loss", "zzz-nothing"]) == 0
    assert capsys.readouterr().out == "no methods match 'zzz-nothing' (of kind loss)\n"
    assert main(["list", "--kind", "loss", "adam"]) == 0
    assert capsys.readouterr().out.startswith(
        "no methods match 'adam' (of kind loss); of other kinds: adamp (optimizer)"
    )


def test_list_says_nothing_is_installed(capsys: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gradhub.list", lambda kind=None, pattern=None: [])
    assert main(["list", "--kind", "loss", "adam"]) == 0
    assert capsys.readouterr().out == "no methods installed\n"


# --- gradhub --version -----------------------------------------------------------------


def test_version_lists_the_plugins_without_importing_them(fake_plugins: FakePlugins) -> None:
    module = fake_plugins.plugin("gradhub-versioned", {"versioned": None}, version="1.2.3")
    probe = (
        "import sys\nfrom gradhub.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit as exit:\n"
        "    print('exit', exit.code)\n"
        f"print('imported', 'torch' in sys.modules, {module!r} in sys.modules)\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(fake_plugins.root), os.environ.get("PYTHONPATH")])),
    }
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    lines = completed.stdout.splitlines()
    assert lines[0] == f"gradhub {importlib.metadata.version('gradhub')}", completed.stderr
    assert f"gradhub-adamp {importlib.metadata.version('gradhub-adamp')}" in lines
    assert "gradhub-versioned 1.2.3" in lines
    assert lines[1:-2] == sorted(lines[1:-2])
    assert lines[-2:] == ["exit 0", "imported False False"]


# --- Ctrl-C ----------------------------------------------------------------------------


def interrupt(*args: object, **kwargs: object) -> None:
    raise KeyboardInterrupt


def test_ctrl_c_in_demo_exits_130_quietly(capsys: Capture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("gradhub.claims.run_claims", interrupt)
    assert main(["demo", "adamp", "--report", str(tmp_path / "out")]) == 130
    assert capsys.readouterr().err == "gradhub: interrupted\n"
    assert list(tmp_path.iterdir()) == []  # the staged report was removed


def test_ctrl_c_in_check_exits_130_quietly(capsys: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gradhub.testing._suite.run_check", interrupt)
    assert main(["check", "sgdp", "--device", "cpu"]) == 130
    assert capsys.readouterr().err == "gradhub: interrupted\n"


# --- gradhub demo --report -------------------------------------------------------------


def refused(folder: object, reason: str) -> str:
    return (
        f"gradhub: error: cannot write the report to {str(folder)!r}: {reason}; "
        "give a new folder, an empty one or an earlier report's\n"
    )


def test_report_to_a_file_is_refused_before_any_claim(
    capsys: Capture, fake_claims: list[list[str]], tmp_path: Path
) -> None:
    (tmp_path / "taken").write_text("mine")
    assert main(["demo", "adamp", "--report", str(tmp_path / "taken")]) == 2
    assert capsys.readouterr().err == refused(tmp_path / "taken", "it is a file")
    assert main(["demo", "adamp", "--report", str(tmp_path / "taken" / "out")]) == 2
    assert capsys.readouterr().err == refused(tmp_path / "taken" / "out", f"{str(tmp_path / 'taken')!r} is a file")
    assert fake_claims == [] and (tmp_path / "taken").read_text() == "mine"


def test_report_into_a_folder_of_other_files_is_refused(
    capsys: Capture, fake_claims: list[list[str]], tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["demo", "adamp", "--report", str(tmp_path)]) == 2
    assert capsys.readouterr().err == refused(tmp_path, "it holds 'notes.txt', which is not part of a gradhub report")
    assert fake_claims == [] and (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions that bind the user")
def test_report_in_an_unwritable_folder_is_refused(
    capsys: Capture, fake_claims: list[list[str]], tmp_path: Path
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        assert main(["demo", "adamp", "--report", str(locked / "out")]) == 2
    finally:
        locked.chmod(0o700)
    assert capsys.readouterr().err == refused(
        locked / "out", f"cannot create a folder in {str(locked)!r} (Permission denied)"
    )
    assert fake_claims == []


def test_report_where_nothing_can_be_created_is_refused(
    capsys: Capture, fake_claims: list[list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(**kwargs: object) -> str:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("gradhub.report.tempfile.mkdtemp", denied)
    assert main(["demo", "adamp", "--report", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == refused(
        tmp_path / "out", f"cannot create a folder in {str(tmp_path)!r} (Permission denied)"
    )
    assert fake_claims == []


def test_report_replaces_an_earlier_one_whole(capsys: Capture, fake_claims: list[list[str]], tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "figures").mkdir(parents=True)
    (out / "index.md").write_text("old")
    (out / "figures" / "old.png").write_bytes(b"old")
    assert main(["demo", "adamp", "--report", str(out), "--quiet"]) == 0
    report, catalog = capsys.readouterr().out.splitlines()[-2:]
    assert report.startswith(f"report: {out / 'index.md'} (") and catalog == f"catalog: {out / 'index.html'}"
    assert "1 of 1 claims reproduced" in (out / "index.md").read_text()
    assert json.loads((out / "results.json").read_text())[0]["claim"] == "claim"
    assert list((out / "figures").iterdir()) == []
    assert [path.name for path in tmp_path.iterdir()] == ["out"]  # nothing staged or set aside is left


def test_a_failed_write_keeps_the_earlier_report(
    capsys: Capture, fake_claims: list[list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "index.md").write_text("old")

    def disk_full(results: object, directory: Path, draw: object) -> Path:
        (directory / "index.md").write_text("half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("gradhub.report._write_into", disk_full)
    assert main(["demo", "adamp", "--report", str(out), "--quiet"]) == 1
    assert (
        capsys.readouterr().err == f"gradhub: error: cannot write the report to {str(out)!r}: No space left on device\n"
    )
    assert (out / "index.md").read_text() == "old"
    assert [path.name for path in tmp_path.iterdir()] == ["out"]


# --- gradhub new -----------------------------------------------------------------------


def test_new_refuses_a_file_in_the_way(capsys: Capture, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("mine")
    assert main(["new", "fresh", "--kind", "loss", "--dir", str(tmp_path / "afile")]) == 2
    target = tmp_path / "afile" / "gradhub-fresh"
    assert capsys.readouterr().err == (
        f"gradhub: error: gradhub new: unsupported target folder: {target} ({tmp_path / 'afile'} is a file); "
        "choose another --dir\n"
    )
    (tmp_path / "gradhub-fresh").write_text("mine")
    assert main(["new", "fresh", "--kind", "loss", "--dir", str(tmp_path)]) == 2
    assert "(" + str(tmp_path / "gradhub-fresh") + " is a file)" in capsys.readouterr().err


def test_new_warns_about_an_installed_name(capsys: Capture, tmp_path: Path) -> None:
    adamp = next(entry for entry in gradhub.list() if entry.name == "adamp")
    assert main(["new", "adamp", "--kind", "optimizer", "--dir", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert captured.err == (
        f"gradhub: warning: 'adamp' is already the name of an installed method "
        f"({adamp.distribution} {adamp.version}); installing both is a name conflict\n"
    )
    assert captured.out.startswith(f"created {tmp_path / 'gradhub-adamp'}\n")
    assert re.search(r"adamp", (tmp_path / "gradhub-adamp" / "pyproject.toml").read_text())
