"""The demo report: ``gradhub demo --report DIR`` writes ``DIR/index.md`` from claim results.

One section per claim check: the paper's claim, the criterion, the measured figures, the
verdict, and its figures (:mod:`gradhub.figures`). With matplotlib installed
(``pip install gradhub[plot]``) each figure is drawn to ``DIR/figures/*.png``; without it,
each figure's data is written to ``DIR/figures/*.csv`` and summarised in a table, so the
report never needs more than the core. ``DIR/results.json`` holds everything, for tools, and
``DIR/index.html`` is the method catalog (:mod:`gradhub.site`) with this run's claims on each method's page.

The report is written into a hidden folder beside ``DIR`` and moved into place only when
complete (:class:`ReportFolder`), so a failed or interrupted run never leaves an old
``index.md`` beside new figures; ``gradhub demo`` opens the folder before any claim runs, so
an unwritable ``DIR`` is reported before the work, not after.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from gradhub.claims import ClaimResult
from gradhub.errors import GradhubError
from gradhub.figures import Figure, Histogram, ImageGrid, LinePlot

__all__ = ["ReportFolder", "ReportFolderError", "matplotlib_available", "write_report"]

REPORT_ENTRIES = frozenset({"index.md", "results.json", "figures", "index.html", "methods", "assets"})
"""What a report folder holds (the report, and the catalog site beside it: ``gradhub.site.SITE_ENTRIES``);
a folder holding anything else is never replaced."""


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "figure"


def figure_stem(path: str, methods: Sequence[str], number: int, title: str) -> str:
    """The file name, less its suffix, of a claim's ``number``-th figure (1-based) under ``figures/``."""
    return f"{_slug(path or ', '.join(methods))}-{number}-{_slug(title)}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


class ReportFolderError(GradhubError, ValueError):
    """``--report DIR`` names a folder the report cannot be written to."""

    def __init__(self, given: str | Path, reason: str) -> None:
        super().__init__(
            f"cannot write the report to {str(given)!r}: {reason}; "
            "give a new folder, an empty one or an earlier report's"
        )


class ReportFolder:
    """The destination of a report, checked and staged before any claim runs.

    Opening it checks ``directory`` (not a file, writable, holding nothing but an earlier
    report) and creates a hidden staging folder beside it; :meth:`commit` writes the report
    there and moves it into place (an earlier report is moved aside first, then deleted);
    :meth:`discard` (also on leaving a ``with`` block) removes whatever was not committed.
    """

    def __init__(self, directory: str | Path) -> None:
        self.given = directory
        self.destination = Path(directory).resolve()
        self._check()
        parent = self.destination.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self.staging: Path | None = Path(tempfile.mkdtemp(prefix=f".{self.destination.name}.partial-", dir=parent))
        except OSError as error:
            raise ReportFolderError(
                directory, f"cannot create a folder in {str(parent)!r} ({_reason(error)})"
            ) from None

    def _check(self) -> None:
        target = self.destination
        existing = next(path for path in (target, *target.parents) if path.exists())
        if not existing.is_dir():
            raise ReportFolderError(
                self.given, "it is a file" if existing == target else f"{str(existing)!r} is a file"
            )
        if existing != target:
            return
        foreign = sorted(entry.name for entry in target.iterdir() if entry.name not in REPORT_ENTRIES)
        if foreign:
            raise ReportFolderError(self.given, f"it holds {foreign[0]!r}, which is not part of a gradhub report")
        from gradhub.site import foreign_content

        stray = foreign_content(target)  # an index.html or methods/ of someone else's is not the catalog's
        if stray is not None:
            raise ReportFolderError(self.given, f"it holds {stray!r}, which is not part of a gradhub report")
        if not os.access(target, os.W_OK | os.X_OK):
            raise ReportFolderError(self.given, "it is not writable")

    def commit(
        self, results: Sequence[ClaimResult], *, draw: bool | None = None, site: bool = True, check: Any = None
    ) -> Path:
        """Write the report and (``site``) the catalog beside it, move them into place and return the path of
        index.md. ``check``: conformance results for the catalog (``gradhub.site.load_check``'s)."""
        if self.staging is None:
            raise RuntimeError("this report folder was already committed or discarded")
        _write_into(results, self.staging, draw)
        if site:
            from gradhub.site import write_report_site

            write_report_site(self.staging, check=check)
        self.staging.chmod(_folder_mode(self.destination))
        _replace(self.staging, self.destination)
        self.staging = None
        return self.destination / "index.md"

    def discard(self) -> None:
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None

    def __enter__(self) -> ReportFolder:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.discard()


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__


def _folder_mode(destination: Path) -> int:
    if destination.is_dir():
        return destination.stat().st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o777 & ~umask


def _replace(staging: Path, destination: Path) -> None:
    """Move ``staging`` to ``destination``; an earlier report there is moved aside, then deleted."""
    if not destination.exists() or not any(destination.iterdir()):
        try:
            os.replace(staging, destination)  # one rename (POSIX replaces an empty folder too)
            return
        except OSError:
            if not destination.exists():
                raise
    aside = destination.with_name(f".{destination.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(destination, aside)
    try:
        os.rename(staging, destination)
    except OSError:
        os.rename(aside, destination)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def write_report(results: Sequence[ClaimResult], directory: str | Path, *, draw: bool | None = None) -> Path:
    """Write the report for ``results`` into ``directory`` and return the path of its index.md.

    ``draw`` forces figures on (True: matplotlib required) or off (False: data tables);
    None draws when matplotlib is importable. The folder is replaced as a whole, once the
    report is complete (see :class:`ReportFolder`).
    """
    with ReportFolder(directory) as folder:
        return folder.commit(results, draw=draw)


def _write_into(results: Sequence[ClaimResult], directory: Path, draw: bool | None) -> Path:
    figures_dir = directory / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    if draw is None:
        draw = matplotlib_available()
    passed = sum(result.passed for result in results)
    lines = [
        "# gradhub demo report",
        "",
        f"{passed} of {len(results)} claims reproduced. Each section gives the paper's claim, the criterion a "
        "wrong implementation fails, what was measured on synthetic data, and the figures.",
        "" if draw else "matplotlib is not installed (`pip install gradhub[plot]`): figures are given as data tables.",
        "",
        "| methods | verdict | seconds | claim check |",
        "|---|---|---|---|",
    ]
    for result in results:
        anchor = _slug(result.path or ", ".join(result.methods))
        verdict = "PASS" if result.passed else "**FAIL**"
        lines.append(
            f"| [{', '.join(result.methods)}](#{anchor}) | {verdict} | {result.seconds:.1f} | `{result.path}` |"
        )
    for result in results:
        lines += _section(result, figures_dir, draw)
    index = directory / "index.md"
    index.write_text("\n".join(lines) + "\n")
    (directory / "results.json").write_text(json.dumps([_as_json(result) for result in results], indent=1))
    return index


def _as_json(result: ClaimResult) -> dict[str, Any]:
    return {
        "methods": list(result.methods),
        "path": result.path,
        "claim": result.claim,
        "criterion": result.criterion,
        "measured": result.measured,
        "passed": result.passed,
        "seconds": result.seconds,
        "details": result.details,
        "figures": [figure.to_dict() for figure in result.figures],
    }


def _section(result: ClaimResult, figures_dir: Path, draw: bool) -> list[str]:
    anchor = _slug(result.path or ", ".join(result.methods))
    verdict = "PASS" if result.passed else "FAIL"
    lines = [
        "",
        f'<a id="{anchor}"></a>',
        "",
        f"## {', '.join(result.methods)}: {verdict}",
        "",
        f"`{result.path}` ({result.seconds:.1f} s)",
        "",
        f"**Claim.** {result.claim}",
        "",
        f"**Criterion.** {result.criterion}",
        "",
    ]
    if result.measured:
        lines += ["| measured | value |", "|---|---|"]
        lines += [f"| {_cell(name)} | {value:.4g} |" for name, value in result.measured.items()]
        lines.append("")
    if result.details:
        lines += ["```", result.details.rstrip(), "```", ""]
    for number, figure in enumerate(result.figures, 1):
        stem = figure_stem(result.path, result.methods, number, figure.title)
        if draw:
            path = figures_dir / f"{stem}.png"
            _draw(figure, path)
            lines += [f"![{figure.title}](figures/{path.name})", ""]
        else:
            lines += _figure_table(figure, figures_dir / f"{stem}.csv")
    return lines


# --- without matplotlib: the data ----------------------------------------------------------


def _figure_table(figure: Figure, path: Path) -> list[str]:
    lines = [f"**{figure.title}** (data: [`figures/{path.name}`](figures/{path.name}))", ""]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        if isinstance(figure, LinePlot):
            writer.writerow(["series", figure.xlabel or "x", figure.ylabel or "y"])
            lines += ["| series | points | first | last | min | max |", "|---|---|---|---|---|---|"]
            for series in figure.series:
                writer.writerows([series.label, x, y] for x, y in zip(series.x, series.y))
                ys = series.y or [float("nan")]
                lines.append(
                    f"| {_cell(series.label)} | {len(series.y)} | {ys[0]:.4g} | {ys[-1]:.4g} | "
                    f"{min(ys):.4g} | {max(ys):.4g} |"
                )
        elif isinstance(figure, Histogram):
            writer.writerow(["series", figure.xlabel or "value"])
            lines += ["| series | values | min | median | max |", "|---|---|---|---|---|"]
            for label, values in figure.values.items():
                writer.writerows([label, value] for value in values)
                ordered = sorted(values) or [float("nan")]
                lines.append(
                    f"| {_cell(label)} | {len(values)} | {ordered[0]:.4g} | {ordered[len(ordered) // 2]:.4g} | "
                    f"{ordered[-1]:.4g} |"
                )
        else:
            writer.writerow(["row", "column", "flattened values"])
            lines += ["| row | images |", "|---|---|"]
            for row in figure.rows:
                for column, image in enumerate(row.images):
                    writer.writerow([row.label, column, *_flatten(image)])
                lines.append(f"| {_cell(row.label)} | {len(row.images)} |")
    return [*lines, ""]


def _flatten(values: Any) -> list[float]:
    if isinstance(values, list):
        return [item for value in values for item in _flatten(value)]
    return [values]


# --- with matplotlib: the drawing ----------------------------------------------------------


def _draw(figure: Figure, path: Path) -> None:
    from matplotlib.figure import Figure as Canvas

    if isinstance(figure, ImageGrid):
        canvas = _draw_images(figure, Canvas)
    else:
        canvas = Canvas(figsize=(6.4, 4.2), layout="constrained")
        axes = canvas.subplots()
        if isinstance(figure, LinePlot):
            _draw_lines(figure, axes)
        else:
            _draw_histogram(figure, axes)
        axes.set_title(_wrap(figure.title))
    canvas.savefig(path, dpi=110)


def _wrap(title: str, width: int = 60) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(title, width)) or title


def _draw_lines(figure: LinePlot, axes: Any) -> None:
    # One colour per series by its position (scatter and plot keep separate colour cycles in
    # matplotlib, so a cloud and a line would otherwise both be C0); markers above everything.
    for index, series in enumerate(figure.series):
        color = series.color or f"C{index % 10}"
        if series.style == "points":
            axes.scatter(series.x, series.y, s=6, alpha=0.6, color=color, label=series.label, zorder=1)
        elif series.style == "markers":
            axes.scatter(
                series.x, series.y, s=60, color=color, edgecolors="black", linewidths=0.8, label=series.label, zorder=4
            )
        elif series.style == "step":
            axes.step(series.x, series.y, where="post", color=color, label=series.label, zorder=2)
        else:
            style = "--" if series.style == "dashed" else "-"
            axes.plot(series.x, series.y, style, color=color, label=series.label, zorder=2)
    axes.set_xscale(figure.xscale)
    axes.set_yscale(figure.yscale)
    axes.set_xlabel(figure.xlabel)
    axes.set_ylabel(figure.ylabel)
    _vlines(axes, figure.vlines, first_color=len(figure.series))
    if any(series.label for series in figure.series):
        axes.legend(fontsize="small")
    axes.grid(alpha=0.3)


def _draw_histogram(figure: Histogram, axes: Any) -> None:
    for label, values in figure.values.items():
        axes.hist(values, bins=figure.bins, alpha=0.55, label=label)
    axes.set_yscale(figure.yscale)
    axes.set_xlabel(figure.xlabel)
    axes.set_ylabel(figure.ylabel)
    _vlines(axes, figure.vlines)
    if len(figure.values) > 1 or figure.vlines:
        axes.legend(fontsize="small")


def _vlines(axes: Any, vlines: list[tuple[float, str]], first_color: int = 3) -> None:
    """Dotted vertical markers, coloured after the series already drawn."""
    for number, (x, label) in enumerate(vlines):
        axes.axvline(x, color=f"C{(first_color + number) % 10}", linestyle=":", linewidth=1.2, label=label or None)


def _draw_images(figure: ImageGrid, canvas_type: Any) -> Any:
    import numpy as np

    columns = max(len(row.images) for row in figure.rows)
    canvas = canvas_type(figsize=(1.3 * columns + 1.2, 1.3 * len(figure.rows) + 0.6), layout="constrained")
    grid = np.atleast_2d(canvas.subplots(len(figure.rows), columns, squeeze=False))
    low, high = figure.value_range if figure.value_range else (None, None)
    for r, row in enumerate(figure.rows):
        for c in range(columns):
            axes = grid[r, c]
            axes.set_xticks([])
            axes.set_yticks([])
            if c < len(row.images):
                image = np.asarray(row.images[c], dtype=float)
                if image.ndim == 3 and image.shape[0] in (1, 3):
                    image = np.moveaxis(image, 0, -1)
                if image.ndim == 3 and image.shape[-1] == 1:
                    image = image[..., 0]
                if image.ndim == 3 and low is not None:
                    image = np.clip((image - low) / (high - low), 0, 1)
                axes.imshow(image, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
            else:
                axes.axis("off")
            if c == 0:
                axes.set_ylabel(row.label, fontsize="small")
            if r == 0 and c < len(figure.column_labels):
                axes.set_title(figure.column_labels[c], fontsize="small")
    canvas.suptitle(_wrap(figure.title, 80))
    return canvas
