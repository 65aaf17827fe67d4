"""The claim-check runner behind `gradhub demo`."""

from __future__ import annotations

import pytest

import gradhub
from gradhub.claims import ClaimResult, claim_paths, run_claims

PAPER = {"title": "T", "authors": ["A"], "year": 2024}


def passing_claim() -> ClaimResult:
    return ClaimResult(claim="it works", criterion="x > 1", measured={"x": 2.0}, passed=True)


def raising_claim() -> ClaimResult:
    raise RuntimeError("the experiment crashed")


@pytest.fixture
def claimed_methods() -> list[str]:
    base = {"kind": "loss", "summary": "s", "paper": PAPER, "target": "torch.nn:MSELoss", "example": "m:f"}
    shared = f"{__name__}:passing_claim"
    gradhub.register({**base, "name": "claim-a", "claims": (shared,)})
    gradhub.register({**base, "name": "claim-b", "claims": (shared, f"{__name__}:raising_claim")})
    yield ["claim-a", "claim-b"]
    for name in ("claim-a", "claim-b"):
        gradhub._registry.unregister(name)


def test_shared_claims_run_once(claimed_methods: list[str]) -> None:
    assert claim_paths(claimed_methods) == {
        f"{__name__}:passing_claim": ["claim-a", "claim-b"],
        f"{__name__}:raising_claim": ["claim-b"],
    }


def test_a_crashing_claim_is_a_failed_result(claimed_methods: list[str]) -> None:
    passed, crashed = run_claims(claimed_methods)
    assert passed.passed and passed.methods == ("claim-a", "claim-b") and passed.measured == {"x": 2.0}
    assert not crashed.passed and "the experiment crashed" in crashed.details
    assert "[FAIL] claim-b" in crashed.report() and "[PASS] claim-a, claim-b" in passed.report()


# --- figures, progress and the demo report ---------------------------------------------------


def figured_claim() -> ClaimResult:
    import torch

    from gradhub.figures import Histogram, ImageGrid, ImageRow, LinePlot, Series
    from gradhub.progress import tracker

    with tracker(None, total=3, task="figured-claim") as bar:
        for step in range(3):
            bar.update(loss=torch.tensor(1.0 / (step + 1)))
    steps = torch.arange(5)
    return ClaimResult(
        claim="curves, images and histograms reach the report",
        criterion="always",
        measured={"a|b": 1.0},
        passed=True,
        details="a note",
        figures=[
            LinePlot(
                "Residuals",
                [Series("ours", steps, 0.5**steps), Series("cg", steps, 0.9**steps, "dashed")],
                yscale="log",
                vlines=[(2.0, "switch")],
            ),
            ImageGrid(
                "Reconstructions",
                [ImageRow("original", [torch.rand(8, 8), torch.rand(3, 8, 8)])],
                column_labels=["grey", "colour"],
                value_range=(0.0, 1.0),
            ),
            Histogram("Eigenvalues", {"H": torch.randn(100).tolist()}, yscale="log", vlines=[(1.5, "outlier")]),
        ],
    )


@pytest.fixture
def figured_method() -> str:
    base = {"kind": "loss", "summary": "s", "paper": PAPER, "target": "torch.nn:MSELoss", "example": "m:f"}
    gradhub.register({**base, "name": "claim-figured", "claims": (f"{__name__}:figured_claim",)})
    yield "claim-figured"
    gradhub._registry.unregister("claim-figured")


def test_report_draws_figures_with_matplotlib(figured_method: str, claimed_methods: list[str], tmp_path) -> None:
    import json

    from gradhub.report import write_report

    results = run_claims([figured_method, *claimed_methods])
    index = write_report(results, tmp_path, draw=True)
    text = index.read_text()
    assert "2 of 3 claims reproduced" in text
    assert "## claim-figured: PASS" in text and "## claim-b: FAIL" in text and "the experiment crashed" in text
    assert "| a\\|b | 1 |" in text  # table cells are escaped
    pictures = sorted((tmp_path / "figures").glob("*.png"))
    assert len(pictures) == 3
    assert all(picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for picture in pictures)
    assert all(f"](figures/{picture.name})" in text for picture in pictures)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data[0]["figures"][0]["series"][1]["y"][1] == pytest.approx(0.9)


def test_report_without_matplotlib_gives_the_data(figured_method: str, tmp_path, monkeypatch) -> None:
    import sys

    from gradhub.report import matplotlib_available, write_report

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert not matplotlib_available()
    index = write_report(run_claims([figured_method]), tmp_path)
    text = index.read_text()
    assert "matplotlib is not installed" in text and "pip install gradhub[plot]" in text
    assert not list((tmp_path / "figures").glob("*.png"))
    tables = sorted((tmp_path / "figures").glob("*.csv"))
    assert len(tables) == 3
    residuals = next(table for table in tables if "residuals" in table.name).read_text().splitlines()
    assert residuals[0] == "series,x,y" and residuals[2] == "ours,1.0,0.5"
    assert "| ours | 5 | 1 | 0.0625 | 0.0625 | 1 |" in text


def test_demo_report_from_the_cli(figured_method: str, tmp_path, capsys) -> None:
    from gradhub.cli import main

    assert main(["demo", figured_method, "--report", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert "[PASS] claim-figured" in captured.out and "report: " in captured.out
    assert "figured-claim" in captured.err  # the claim's tracker drew a progress bar
    assert (tmp_path / "out" / "index.md").exists()
    assert main(["demo", figured_method, "--quiet"]) == 0
    assert "figured-claim" not in capsys.readouterr().err


def test_single_thread_restores_the_setting() -> None:
    import torch

    from gradhub.claims import single_thread

    before = torch.get_num_threads()
    with single_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), single_thread():
        raise RuntimeError("restored even on error")
    assert torch.get_num_threads() == before


def test_every_series_gets_its_own_colour_and_markers_are_drawn_on_top() -> None:
    """A point cloud and a line are told apart (matplotlib's scatter and plot keep separate colour
    cycles, so both were C0), an explicit colour wins, and markers sit above lines and clouds."""
    from matplotlib.colors import to_hex
    from matplotlib.figure import Figure as Canvas

    from gradhub.figures import LinePlot, Series
    from gradhub.report import _draw_lines

    plot = LinePlot(
        "colours",
        [
            Series("samples", [0, 1, 2], [0, 1, 0], style="points"),
            Series("filtered", [0, 1, 2], [0, 0.5, 0]),
            Series("modes", [1], [0.5], style="markers"),
            Series("paired", [0, 2], [1, 1], style="dashed", color="C1"),
        ],
        vlines=[(1.5, "threshold")],
    )
    axes = Canvas().subplots()
    _draw_lines(plot, axes)
    cloud, markers = axes.collections
    filtered, paired, threshold = axes.lines
    assert to_hex(cloud.get_facecolor()[0]) == to_hex("C0")
    assert to_hex(filtered.get_color()) == to_hex("C1") != to_hex(cloud.get_facecolor()[0])
    assert to_hex(markers.get_facecolor()[0]) == to_hex("C2")
    assert to_hex(paired.get_color()) == to_hex("C1")
    assert to_hex(threshold.get_color()) == to_hex("C4")  # after the four series
    assert markers.get_zorder() > max(line.get_zorder() for line in axes.lines) > cloud.get_zorder()
