"""Progress reporting for long-running solvers, attacks, samplers and training loops.

A method that runs for many iterations takes a keyword ``progress`` (a callback, default
``None``) and reports through :func:`tracker`::

    def solve(A, b, *, max_iter=100, progress: ProgressCallback | None = None):
        with tracker(progress, total=max_iter, task="dcdm") as bar:
            for k in range(max_iter):
                ...
                bar.update(residual=residual_norm)   # a tensor is fine

Library calls are silent by default. A caller who wants to follow along passes a
callback, which receives a :class:`ProgressEvent` per update; the CLI and ``gradhub demo``
run inside :func:`show_bars`, which makes every tracker without a callback draw a tqdm
bar. Metrics may be tensors: they are converted to floats (a host sync on CUDA) only when
somebody listens, so a silent call costs nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ProgressCallback", "ProgressEvent", "Tracker", "show_bars", "tracker"]


@dataclass(frozen=True)
class ProgressEvent:
    """One update: ``step`` units of work done out of ``total`` (None when unknown)."""

    task: str
    step: int
    total: int | None
    metrics: Mapping[str, float] = field(default_factory=dict)
    done: bool = False
    """True for the last event of a task (sent when the tracker closes)."""


ProgressCallback = Callable[[ProgressEvent], None]

_bars: contextvars.ContextVar[bool] = contextvars.ContextVar("gradhub_progress_bars", default=False)


@contextlib.contextmanager
def show_bars(enabled: bool = True) -> Iterator[None]:
    """Within this block, trackers given no callback draw a tqdm bar on stderr."""
    token = _bars.set(enabled)
    try:
        yield
    finally:
        _bars.reset(token)


class _Bar:
    """A progress callback drawing one tqdm bar (a plain line per 10% if tqdm is missing)."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._shown = 0

    def __call__(self, event: ProgressEvent) -> None:
        postfix = {name: f"{value:.3g}" for name, value in event.metrics.items()}
        if self._bar is None:
            try:
                from tqdm.auto import tqdm
            except ImportError:  # pragma: no cover - tqdm is a dependency of gradhub
                tqdm = None
            self._bar = (
                tqdm(total=event.total, desc=event.task, leave=False, file=sys.stderr, dynamic_ncols=True)
                if tqdm is not None
                else False
            )
        if self._bar is False:
            if event.done or (event.total and event.step * 10 // event.total > self._shown):
                self._shown = event.step * 10 // event.total if event.total else 0
                print(f"{event.task}: {event.step}/{event.total} {postfix}", file=sys.stderr)
            return
        self._bar.update(event.step - self._bar.n)
        if postfix:
            self._bar.set_postfix(postfix, refresh=False)
        if event.done:
            self._bar.close()


class Tracker:
    """Counts steps and forwards them to a callback; does nothing when nobody listens."""

    def __init__(self, callback: ProgressCallback | None, total: int | None, task: str) -> None:
        self.callback = callback
        self.total = total
        self.task = task
        self.step = 0
        self.metrics: dict[str, float] = {}

    @property
    def active(self) -> bool:
        """Whether somebody listens; skip computing metrics that are only for display when not."""
        return self.callback is not None

    def update(self, n: int = 1, **metrics: Any) -> None:
        """Record ``n`` more steps of work and the latest metrics (floats or 0-d tensors)."""
        self.step += n
        if self.callback is None:
            return
        self.metrics = {name: float(value) for name, value in metrics.items()}
        self.callback(ProgressEvent(self.task, self.step, self.total, dict(self.metrics)))

    def close(self) -> None:
        if self.callback is not None:
            self.callback(ProgressEvent(self.task, self.step, self.total, dict(self.metrics), done=True))
            self.callback = None

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def tracker(callback: ProgressCallback | None, *, total: int | None, task: str) -> Tracker:
    """A :class:`Tracker` for one task; with no callback, a tqdm bar inside :func:`show_bars`, else silent."""
    if callback is None and _bars.get():
        callback = _Bar()
    return Tracker(callback, total, task)
