"""Progress reporting (gradhub.progress) and declarative figures (gradhub.figures)."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
import torch

from gradhub.figures import Histogram, ImageGrid, ImageRow, LinePlot, Series, as_floats
from gradhub.progress import ProgressEvent, show_bars, tracker


class Unreadable:
    """A metric that must not be read: converting it raises (it stands for a CUDA host sync)."""

    def __float__(self) -> float:
        raise AssertionError("a metric was converted although nobody listens")


def test_silent_without_a_callback(capsys) -> None:
    with tracker(None, total=4, task="t") as bar:
        assert not bar.active
        for _ in range(4):
            bar.update(loss=Unreadable())
    assert bar.step == 4
    assert capsys.readouterr() == ("", "")


def test_callback_receives_counted_steps_and_one_final_event() -> None:
    events: list[ProgressEvent] = []
    with tracker(events.append, total=3, task="solve") as bar:
        assert bar.active
        bar.update(residual=torch.tensor(0.5))
        bar.update(2, residual=0.25)
    assert [(e.step, e.done) for e in events] == [(1, False), (3, False), (3, True)]
    assert events[0] == ProgressEvent("solve", 1, 3, {"residual": 0.5})
    assert isinstance(events[0].metrics["residual"], float) and events[-1].metrics == {"residual": 0.25}


def test_show_bars_draws_on_stderr_and_is_scoped(capsys) -> None:
    with show_bars():
        with tracker(None, total=2, task="sampling") as bar:
            assert bar.active
            bar.update(loss=1.0)
            bar.update(loss=0.5)
        with show_bars(False):
            assert not tracker(None, total=1, task="x").active
    assert not tracker(None, total=1, task="x").active
    captured = capsys.readouterr()
    assert captured.out == "" and "sampling" in captured.err


def test_an_explicit_callback_wins_over_bars(capsys) -> None:
    events: list[ProgressEvent] = []
    with show_bars(), tracker(events.append, total=1, task="t") as bar:
        bar.update()
    assert len(events) == 2 and capsys.readouterr().err == ""


def test_figures_store_plain_floats_and_serialise() -> None:
    series = Series("s", torch.arange(3), torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64))
    assert series.x == [0.0, 1.0, 2.0] and series.y == [1.0, 2.0, 4.0]
    grid = ImageGrid("g", [ImageRow("r", [torch.ones(2, 2)])])
    assert grid.rows[0].images[0] == [[1.0, 1.0], [1.0, 1.0]]
    plot = LinePlot("p", [series], vlines=[(1.0, "here")])
    json.dumps([plot.to_dict(), grid.to_dict(), Histogram("h", {"a": [1, 2]}).to_dict()])
    assert asdict(plot)["kind"] == "lines"
    assert as_floats(torch.tensor(2)) == 2.0


def test_figures_reject_inconsistent_data() -> None:
    with pytest.raises(ValueError, match="series 'bad': 3 x values but 2 y values"):
        Series("bad", [0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match="non-finite"):
        Histogram("h", {"a": [1.0, float("nan")]})
