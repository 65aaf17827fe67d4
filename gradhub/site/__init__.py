"""``gradhub site DIR``: a static catalog of the installed methods that works from ``file://``.

``DIR/index.html`` lists every method the registry sees (third-party plugins and in-process
registrations included) with a search box and filters by kind, tag and capability;
``DIR/methods/<name>.html`` gives one method's paper and BibTeX, call signature, hyperparameters
with defaults and bounds, devices, dtypes and capabilities, its conformance results (from a
``gradhub check --json`` file), its claim check (from a ``gradhub demo --report`` folder), a usage
snippet and the install commands. ``DIR/assets`` holds one stylesheet and one small script (no
framework, nothing fetched); the pages are complete without the script, which only filters
the list and copies text.

The site is written into a hidden folder beside ``DIR`` and moved into place when complete, and
a ``DIR`` holding anything the site did not write is never replaced (the policy of
:class:`gradhub.report.ReportFolder`). ``gradhub demo --report DIR`` writes the site into its
report folder too (:func:`write_report_site`), with that run's claims.
"""

from __future__ import annotations

import importlib.resources
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gradhub.errors import GradhubError
from gradhub.report import REPORT_ENTRIES, _folder_mode, _reason, _replace
from gradhub.site.catalog import (
    Catalog,
    Conformance,
    DemoReport,
    SiteInputError,
    collect,
    load_check,
    load_report,
)
from gradhub.site.render import GENERATOR, render_index, render_method

if TYPE_CHECKING:
    from gradhub.registry import Registry

__all__ = [
    "SITE_ENTRIES",
    "SiteFolderError",
    "SiteInputError",
    "SiteSummary",
    "foreign_content",
    "write_report_site",
    "write_site",
]

SITE_ENTRIES = frozenset({"index.html", "methods", "assets", "figures"})
"""What a site folder holds (``figures``: the demo report's figures, copied when the site is not in the report)."""
ASSETS = ("site.css", "site.js")
"""The files of ``DIR/assets``, shipped in ``gradhub/site/static``."""
FIGURE_SUFFIXES = (".png", ".csv")


class SiteFolderError(GradhubError, ValueError):
    """``gradhub site DIR`` names a folder the site cannot be written to."""

    def __init__(self, given: str | Path, reason: str) -> None:
        super().__init__(
            f"cannot write the site to {str(given)!r}: {reason}; give a new folder, an empty one or an earlier site's"
        )


@dataclass(frozen=True)
class SiteSummary:
    """What :func:`write_site` wrote."""

    index: Path
    methods: int
    broken: int
    claims: int | None
    """Claim results shown (``None``: no report given)."""
    figures: int
    checks: int | None
    """Conformance results shown (``None``: no check file given)."""


def write_site(
    directory: str | Path,
    *,
    report: str | Path | None = None,
    check: str | Path | None = None,
    registry: Registry | None = None,
) -> SiteSummary:
    """Write the catalog of ``registry``'s methods (default: the installed ones) into ``directory``.

    ``report``: a ``gradhub demo --report`` folder whose claims, verdicts and figures the pages show
    (its figures are linked when ``directory`` is that folder, copied otherwise). ``check``: what
    ``gradhub check --json`` printed. ``directory`` may be the report folder itself; otherwise it must
    be new, empty or an earlier site. Inputs and the folder are checked before anything is written.
    """
    destination = Path(directory).resolve()
    demo = load_report(report) if report is not None else None
    conformance = load_check(check) if check is not None else None
    in_report = demo is not None and demo.directory == destination
    _check_destination(directory, destination, in_report)
    catalog = collect(registry)
    staging = _staging(directory, destination)
    try:
        if in_report:
            for name in ("index.md", "results.json", "figures"):
                source = destination / name
                if source.is_dir():
                    shutil.copytree(source, staging / name)
                elif source.is_file():
                    shutil.copy2(source, staging / name)
        figures = write_site_into(
            staging,
            catalog,
            demo,
            conformance,
            figures_from=None if in_report or demo is None else demo.directory,
            beside_report=in_report,
        )
        staging.chmod(_folder_mode(destination))
        _replace(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return SiteSummary(
        index=destination / "index.html",
        methods=len(catalog.methods),
        broken=len(catalog.broken),
        claims=None if demo is None else len(demo.claims),
        figures=figures,
        checks=None if conformance is None else sum(len(rows) for rows in conformance.by_method.values()),
    )


def write_report_site(directory: Path, registry: Registry | None = None, check: Conformance | None = None) -> Path:
    """Write the catalog into a report folder being written (``ReportFolder.commit``'s staging folder),
    with the claims of its ``results.json``, links to its ``figures/`` and, when given, conformance
    results (:func:`load_check`); returns its index.html."""
    write_site_into(directory, collect(registry), load_report(directory), check, figures_from=None, beside_report=True)
    return directory / "index.html"


def write_site_into(
    directory: Path,
    catalog: Catalog,
    report: DemoReport | None,
    conformance: Conformance | None,
    *,
    figures_from: Path | None,
    beside_report: bool,
) -> int:
    """Write the pages and assets into ``directory`` (no checks: a folder being staged); copy the
    report's figures from ``figures_from`` when given. Returns how many figure files the pages use."""
    import gradhub

    version = gradhub.__version__
    assets = directory / "assets"
    assets.mkdir(exist_ok=True)
    static = importlib.resources.files(__name__).joinpath("static")
    for name in ASSETS:
        (assets / name).write_bytes(static.joinpath(name).read_bytes())
    pages = directory / "methods"
    pages.mkdir(exist_ok=True)
    for method in catalog.methods:
        (pages / f"{method.name}.html").write_text(render_method(method, report, conformance, version), "utf-8")
    files = report.files if report is not None else []
    if figures_from is not None:
        for file in files:
            target = directory / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(figures_from / file, target)
    index = render_index(catalog, report, conformance, version, beside_report=beside_report)
    (directory / "index.html").write_text(index, "utf-8")
    return len(files)


# --- the destination --------------------------------------------------------------------------


def _check_destination(given: str | Path, destination: Path, in_report: bool) -> None:
    existing = next(path for path in (destination, *destination.parents) if path.exists())
    if not existing.is_dir():
        raise SiteFolderError(given, "it is a file" if existing == destination else f"{str(existing)!r} is a file")
    if existing != destination:
        return
    allowed = REPORT_ENTRIES if in_report else SITE_ENTRIES
    for entry in sorted(destination.iterdir()):
        if entry.name in allowed:
            continue
        if entry.name in REPORT_ENTRIES:
            raise SiteFolderError(
                given,
                f"it holds {entry.name!r} of a gradhub demo report; to add the catalog to that report, "
                f"give --report {str(given)!r} too",
            )
        raise SiteFolderError(given, f"it holds {entry.name!r}, which is not part of a gradhub site")
    stray = foreign_content(destination)
    if stray is not None:
        raise SiteFolderError(given, f"it holds {stray!r}, which gradhub site did not write")
    if not os.access(destination, os.W_OK | os.X_OK):
        raise SiteFolderError(given, "it is not writable")


def _staging(given: str | Path, destination: Path) -> Path:
    parent = destination.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{destination.name}.partial-", dir=parent))
    except OSError as error:
        raise SiteFolderError(given, f"cannot create a folder in {str(parent)!r} ({_reason(error)})") from None


def _written_by_us(page: Path) -> bool:
    try:
        with page.open("rb") as handle:
            head = handle.read(2048)
    except OSError:
        return False
    return f'<meta name="generator" content="{GENERATOR}'.encode() in head


def foreign_content(folder: Path) -> str | None:
    """The first thing (relative path) among ``folder``'s site entries that a site or report did not write.

    Names alone do not make a folder a site: ``index.html`` and ``methods/*.html`` must be pages this
    module wrote, ``assets`` holds only its files and ``figures`` only drawn figures or their data.
    A folder where this returns something is never replaced.
    """
    index = folder / "index.html"
    if index.is_symlink() or (index.exists() and not (index.is_file() and _written_by_us(index))):
        return "index.html"
    rules = {
        "methods": lambda path: path.suffix == ".html" and _written_by_us(path),
        "assets": lambda path: path.name in ASSETS,
        "figures": lambda path: path.suffix in FIGURE_SUFFIXES,
    }
    for name, ours in rules.items():
        entry = folder / name
        if not entry.exists() and not entry.is_symlink():
            continue
        if entry.is_symlink() or not entry.is_dir():
            return name
        for child in sorted(entry.iterdir()):
            if child.is_symlink() or not child.is_file() or not ours(child):
                return f"{name}/{child.name}"
    return None
