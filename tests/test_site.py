"""`gradhub site DIR`: the static method catalog, read as HTML (the browser test drives it in Chromium)."""

from __future__ import annotations

import html
import inspect
import json
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import gradhub
from gradhub.claims import ClaimResult
from gradhub.cli import main
from gradhub.figures import LinePlot, Series
from gradhub.hyperparameters import describe_field
from gradhub.report import ReportFolderError, write_report
from gradhub.site import SITE_ENTRIES, SiteFolderError, SiteInputError, write_site
from gradhub.site.catalog import format_signature
from tests.conftest import FakePlugins

HOSTILE_URL = 'https://example.org/paper?a=1&b="><script>alert(2)</script>'
HOSTILE_SOURCE = f"""
from typing import Literal

from pydantic import Field

from gradhub.hyperparameters import Hyperparameters
from gradhub.specs import MethodSpec, Paper


class Params(Hyperparameters):
    scale: float = Field(2.5, ge=0, lt=10, description='</td></tr><script>alert("param")</script>')
    mode: Literal["<b>", "plain"] = "<b>"


PAPER = Paper(
    title="<img src=x onerror=alert(1)> Hostile Title",
    authors=("Eve <eve@example.org>", "Mallory & Co"),
    year=2024,
    venue="<b>Venue</b>",
    url={HOSTILE_URL!r},
)

HOSTILE_LOSS = MethodSpec(
    name="hostile-loss",
    kind="loss",
    summary='<script>alert("summary")</script> & "quotes"',
    paper=PAPER,
    target="torch.nn:MSELoss",
    example="builtins:print",
    tags=("hostile",),
    params=Params,
    claims=("nowhere:claim",),
    expected_failures={{"spec_valid": "<i>reason</i>"}},
)

HOSTILE_SOLVER = MethodSpec(
    name="hostile-solver",
    kind="solver",
    summary="a solver whose implementation is missing",
    paper=PAPER,
    target="gradhub_missing_module_for_tests:solve",
    example="builtins:print",
    params=Params,
)
"""
BROKEN_SOURCE = "raise ImportError('<script>alert(\"broken\")</script>')\n"


@dataclass
class Built:
    report: Path
    """A demo report folder (written by the real report writer; the catalog is in it)."""
    site: Path
    """``gradhub site`` with ``--report`` and ``--check``: figures copied."""
    check: Path
    figure: str
    """The figure's file name under ``figures/``."""


def figure_claim() -> ClaimResult:
    steps = [0, 1, 2, 3]
    return ClaimResult(
        claim="<b>AdamP</b> keeps weight norms small",
        criterion="norm (AdamP) < 0.5 x norm (Adam)",
        measured={"norm (AdamP)": 1.23, "norm (Adam)": 4.5},
        passed=True,
        methods=("adamp", "hostile-loss"),
        path="tests.test_site:figure_claim",
        figures=[LinePlot("Weight norm", [Series("AdamP", steps, [1, 1.1, 1.2, 1.3]), Series("Adam", steps, steps)])],
    )


def check_file(path: Path) -> Path:
    """What `gradhub check --json` prints, from the suite's own objects: two real checks, one made-up failure."""
    from gradhub.testing import checks
    from gradhub.testing._suite import CheckResult, Report, run_check

    real = [check for check in checks("adamp") if check.id in ("spec_valid", "entry_module_torch_free")]
    hostile = next(check for check in checks("hostile-loss") if check.id == "spec_valid")
    report = Report([run_check(check) for check in real])
    report.results.append(CheckResult(hostile, "failed", '<script>alert("check")</script>', 0.25))
    path.write_text(report.to_json())
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """The installed methods plus a third-party plugin full of hostile text and a broken one, in one catalog."""
    root = tmp_path_factory.mktemp("plugins")
    plugins = FakePlugins(root)
    hostile = plugins.module_name("acme_hostile")
    plugins.distribution(
        "acme-hostile",
        {"gradhub.loss": {"hostile-loss": hostile}, "gradhub.solver": {"hostile-solver": hostile}},
        {hostile: HOSTILE_SOURCE},
        version="9.9.1",
    )
    broken = plugins.module_name("acme_broken")
    plugins.distribution("acme-broken", {"gradhub.probe": {"broken-probe": broken}}, {broken: BROKEN_SOURCE})
    sys.path.insert(0, str(root))
    gradhub.refresh()
    gradhub.register(
        {
            "name": "inprocess-probe",
            "kind": "probe",
            "summary": "a probe registered in a notebook",
            "paper": {"title": "Notebook Paper", "authors": ["N. Otebook"], "year": 2025},
            "target": "builtins:len",
            "example": "builtins:print",
        }
    )
    try:
        work = tmp_path_factory.mktemp("site")
        write_report([figure_claim()], work / "report", draw=True)
        check = check_file(work / "check.json")
        write_site(work / "site", report=work / "report", check=check)
        (figure,) = (path.name for path in (work / "report" / "figures").iterdir())
        yield Built(work / "report", work / "site", check, figure)
    finally:
        gradhub._registry.unregister("inprocess-probe")
        sys.path.remove(str(root))
        for module in plugins.modules:
            sys.modules.pop(module, None)
        gradhub.refresh()


# --- reading the pages ------------------------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
BLOCK = {"div", "pre", "table", "ul", "ol", "dl", "section", "article", "figure", "form", "p", "h1", "h2", "h3"}


class Page(HTMLParser):
    """A strict reading of a page: tags closed in order, ids, attributes, and the text of table cells."""

    def __init__(self, path: Path) -> None:
        super().__init__(convert_charrefs=True)
        self.path = path
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.ids: Counter[str] = Counter()
        self.tables: dict[str, list[list[str]]] = {}
        self.title = ""
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.text_parts: list[str] = []
        self.feed(path.read_text(encoding="utf-8"))
        self.close()
        if self.stack:
            self.problems.append(f"never closed: {self.stack}")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        self.elements.append((tag, attributes))
        if "id" in attributes:
            self.ids[attributes["id"]] += 1
        if tag in BLOCK and "p" in self.stack:
            self.problems.append(f"<{tag}> inside <p>")
        if tag == "table":
            self._table = attributes.get("id", f"table-{len(self.tables)}")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self.stack and self.stack[-1] == "title":
            self.title += data
        self.text_parts.append(data)

    @property
    def text(self) -> str:
        return " ".join("".join(self.text_parts).split())

    def all(self, tag: str) -> list[dict[str, str]]:
        return [attributes for name, attributes in self.elements if name == tag]


def method_names() -> set[str]:
    return {entry.name for entry in gradhub.list() if entry.error is None}


def pages(folder: Path) -> list[Path]:
    return [folder / "index.html", *sorted((folder / "methods").glob("*.html"))]


# --- what the catalog holds -------------------------------------------------------------------


def test_every_installed_method_has_a_page_linked_from_the_index(built: Built) -> None:
    names = method_names()
    assert {"adamp", "sgdp", "hostile-loss", "hostile-solver", "inprocess-probe"} <= names
    assert "broken-probe" not in names
    for folder in (built.site, built.report):
        assert {path.stem for path in (folder / "methods").glob("*.html")} == names
        index = Page(folder / "index.html")
        rows = index.tables["methods"]
        assert sorted(row[0] for row in rows[1:]) == sorted(names)
        links = {attributes["href"] for attributes in index.all("a")}
        assert {f"methods/{name}.html" for name in names} <= links
    assert {path.name for path in built.site.iterdir()} == SITE_ENTRIES


def test_a_third_party_plugin_is_in_the_catalog(built: Built) -> None:
    index = Page(built.site / "index.html")
    row = next(row for row in index.tables["methods"] if row[0] == "hostile-loss")
    assert row[1] == "loss" and row[4] == "acme-hostile 9.9.1"
    page = Page(built.site / "methods" / "hostile-loss.html")
    assert "pip install acme-hostile" in page.text
    assert "pip install --index-url <wheelhouse>/simple acme-hostile" in page.text
    local = next(row for row in index.tables["methods"] if row[0] == "inprocess-probe")
    assert local[4] == "in-process" and "and 1 registered in-process" in index.text
    assert "Registered in-process with gradhub.register()" in Page(built.site / "methods" / "inprocess-probe.html").text
    broken = index.text.split("Installed but broken", 1)[1]
    assert "broken-probe (probe, acme-broken 1.0): method 'broken-probe' from acme-broken 1.0 could not" in broken


def test_text_from_specs_is_escaped(built: Built) -> None:
    for folder in (built.site, built.report):
        for path in [*pages(folder)]:
            page = Page(path)
            scripts = page.all("script")
            sources = [attributes.get("src", "") for attributes in scripts]
            assert [source.rsplit("/", 2)[-2:] for source in sources] == [["assets", "site.js"]], path
            assert not [name for _, attributes in page.elements for name in attributes if name.startswith("on")], path
            assert not [attributes for attributes in page.all("img") if attributes["src"] == "x"], path
            assert not {"b", "i"} & {tag for tag, _ in page.elements}, path
    page = Page(built.site / "methods" / "hostile-loss.html")
    raw = (built.site / "methods" / "hostile-loss.html").read_text()
    assert "&lt;script&gt;alert(&quot;summary&quot;)&lt;/script&gt; &amp; &quot;quotes&quot;" in raw
    assert '<script>alert("summary")</script> & "quotes"' in page.text  # what a reader sees
    assert "<img src=x onerror=alert(1)> Hostile Title" in page.text
    assert "Eve <eve@example.org>, Mallory & Co" in page.text and "<b>Venue</b>, 2024" in page.text
    assert HOSTILE_URL in [attributes.get("href") for attributes in page.all("a")]  # the attribute round-trips
    assert '<script>alert("check")</script>' in page.text and "<i>reason</i>" in page.text
    index = Page(built.site / "index.html")
    row = next(
        attributes for tag, attributes in index.elements if tag == "tr" and "hostile" in attributes.get("data-tags", "")
    )
    assert '<script>alert("summary")</script>' in row["data-search"]


def test_pages_are_well_formed_accessible_and_link_only_to_their_own_files(built: Built) -> None:
    for folder in (built.site, built.report):
        parsed = {path.resolve(): Page(path) for path in pages(folder)}
        for path in pages(folder):
            page = parsed[path.resolve()]
            assert page.problems == [], (path, page.problems[:3])
            assert [name for name, count in page.ids.items() if count > 1] == [], path
            assert page.all("html")[0].get("lang") == "en" and page.title.strip(), path
            labels = {attributes.get("for") for attributes in page.all("label")}
            controls = [attributes["id"] for tag, attributes in page.elements if tag in ("input", "select")]
            assert all(control in labels for control in controls), path
            assert all(attributes.get("alt") for attributes in page.all("img")), path
            for tag, attribute in (("a", "href"), ("img", "src"), ("link", "href"), ("script", "src")):
                for attributes in page.all(tag):
                    target = attributes[attribute]
                    if urlsplit(target).scheme in ("http", "https"):
                        continue
                    file, _, anchor = target.partition("#")
                    assert not urlsplit(target).scheme, (path, target)
                    resolved = (path.parent / file).resolve() if file else path
                    assert resolved.is_file(), (path, target)
                    assert resolved.is_relative_to(folder.resolve()), (path, target)
                    if anchor:
                        assert anchor in parsed[resolved].ids, (path, target)


def test_the_hyperparameter_table_is_the_spec_s_defaults_and_bounds(built: Built) -> None:
    for name in method_names():
        spec = gradhub.spec(name)
        table = Page(built.site / "methods" / f"{name}.html").tables.get("hyperparameters-table", [])
        expected = []
        for field_name, field in spec.params.model_fields.items():
            default = "required" if field.is_required() else repr(field.get_default(call_default_factory=True))
            expected.append([field_name, default, describe_field(spec.params, field_name), field.description or ""])
        assert table[1:] == [[" ".join(cell.split()) for cell in row] for row in expected], name
    adamp = Page(built.site / "methods" / "adamp.html").tables["hyperparameters-table"]
    assert adamp[2][:3] == ["betas", "(0.9, 0.999)", "a tuple of 2 (finite numbers, each >= 0 and < 1)"]
    assert Page(built.site / "methods" / "sgdp.html").tables["hyperparameters-table"][1][:2] == ["lr", "required"]
    hostile = Page(built.site / "methods" / "hostile-loss.html").tables["hyperparameters-table"]
    assert hostile[1:] == [
        ["scale", "2.5", "a finite number >= 0 and < 10", '</td></tr><script>alert("param")</script>'],
        ["mode", "'<b>'", "one of '<b>', 'plain'", ""],
    ]


def test_signature_usage_and_capabilities(built: Built) -> None:
    adamp = Page(built.site / "methods" / "adamp.html")
    signature = format_signature("AdamP", inspect.signature(gradhub.get("adamp")))
    assert " ".join(signature.split()) in adamp.text
    assert 'AdamP = gradhub.get("adamp") optimizer = AdamP(model.parameters())' in adamp.text
    capabilities = {row[0]: row[1] for row in adamp.tables["capabilities-table"][1:]}
    spec = gradhub.spec("adamp")
    assert capabilities["devices"] == ", ".join(spec.devices) and capabilities["dtypes"] == ", ".join(spec.dtypes)
    assert capabilities["DDP"].startswith(spec.capabilities.ddp.status)
    assert capabilities["FSDP2"].startswith(spec.capabilities.fsdp2.status)
    assert capabilities["torch.compile"].startswith(spec.capabilities.compile.status)
    unsupported = 0
    for name in method_names():  # every unsupported setting says why
        spec = gradhub.spec(name)
        cells = {row[0]: row[1] for row in Page(built.site / "methods" / f"{name}.html").tables["capabilities-table"]}
        for field, label in (("ddp", "DDP"), ("fsdp2", "FSDP2"), ("compile", "torch.compile")):
            support = getattr(spec.capabilities, field, None)
            if support is not None and support.status == "unsupported":
                unsupported += 1
                assert cells[label].startswith("unsupported"), (name, field)
                assert cells[label].endswith(" ".join(support.reason.split())), (name, field)
    assert unsupported >= 1
    assert "SGDP(model.parameters(), lr=...)" in Page(built.site / "methods" / "sgdp.html").text
    solver = Page(built.site / "methods" / "hostile-solver.html").text
    assert "solve(scale: float = 2.5, mode: Literal['<b>', 'plain'] = '<b>')" in solver
    assert "did not import here (PluginLoadError:" in solver
    for name in method_names():  # every usage snippet is Python
        page = Page(built.site / "methods" / f"{name}.html")
        snippet = next(attributes for attributes in page.all("pre") if attributes.get("id") == "snippet")
        source = (built.site / "methods" / f"{name}.html").read_text()
        code = source.split('<pre id="snippet"><code>', 1)[1].split("</code></pre>", 1)[0]
        compile(html.unescape(code), f"{name} snippet", "exec")
        assert snippet


def test_conformance_results_come_from_the_check_file(built: Built) -> None:
    report = json.loads(built.check.read_text())
    adamp_rows = [row for row in report["results"] if row["method"] == "adamp"]
    assert len(adamp_rows) == 2 and all(row["outcome"] == "passed" for row in adamp_rows)
    adamp = Page(built.site / "methods" / "adamp.html")
    checks = adamp.tables["checks-table"]
    assert [row[:2] for row in checks[1:]] == [[row["name"], "passed"] for row in adamp_rows]
    assert "2 passed, from check.json" in adamp.text
    hostile = Page(built.site / "methods" / "hostile-loss.html").tables["checks-table"]
    assert hostile[1][:2] == ["spec_valid[hostile-loss]", "failed"]
    assert "not in check.json" in Page(built.site / "methods" / "sgdp.html").text
    index = Page(built.site / "index.html").tables["methods"]
    assert index[0][-1] == "Conformance"
    by_name = {row[0]: row[-1] for row in index[1:]}
    assert by_name["adamp"] == "2 passed" and by_name["hostile-loss"] == "1 failed" and by_name["sgdp"] == "not run"
    # without a check file: not run here, and the command that runs it
    plain = Page(built.report / "methods" / "adamp.html").text
    assert "The conformance suite: not run here. Run it with gradhub check adamp" in plain


def test_claims_and_figures_come_from_the_report(built: Built) -> None:
    for folder in (built.site, built.report):
        page = Page(folder / "methods" / "adamp.html")
        assert "PASS tests.test_site:figure_claim" in page.text
        assert "Claim. <b>AdamP</b> keeps weight norms small" in page.text
        assert page.tables["measured-1"][1:] == [["norm (AdamP)", "1.23"], ["norm (Adam)", "4.5"]]
        (image,) = page.all("img")
        assert image["src"] == f"../figures/{built.figure}" and image["alt"] == "Weight norm"
        assert (folder / "figures" / built.figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        index = Page(folder / "index.html")
        assert {row[0]: row[5] for row in index.tables["methods"][1:]}["adamp"] == "PASS"
        assert "Claims: 1 of 1 reproduced in the demo report" in index.text
    assert "(index.md)" in Page(built.report / "index.html").text
    assert "(index.md)" not in Page(built.site / "index.html").text
    sgdp = Page(built.site / "methods" / "sgdp.html").text
    assert "not in the demo report given. Run it with gradhub demo sgdp" in sgdp


# --- where it is written ----------------------------------------------------------------------


def test_demo_report_writes_the_catalog_beside_index_md(
    built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("gradhub.claims.run_claims", lambda names, on_result=None: [figure_claim()])
    assert main(["demo", "adamp", "--report", str(tmp_path / "out"), "--quiet"]) == 0
    assert {path.name for path in (tmp_path / "out").iterdir()} == {
        "index.md",
        "results.json",
        "figures",
        "index.html",
        "methods",
        "assets",
    }
    assert "tests.test_site:figure_claim" in (tmp_path / "out" / "methods" / "adamp.html").read_text()
    # a second run replaces the report and its catalog as a whole
    assert main(["demo", "adamp", "--report", str(tmp_path / "out"), "--quiet"]) == 0
    assert [path.name for path in tmp_path.iterdir()] == ["out"]


def test_demo_takes_conformance_results_or_leaves_the_catalog_out(
    built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gradhub demo --check FILE` shows the results on the pages; `--no-site` writes the report alone
    (what `make figures` writes into each plugin's demo folder); both need --report."""
    monkeypatch.setattr("gradhub.claims.run_claims", lambda names, on_result=None: [figure_claim()])
    out = tmp_path / "out"
    assert main(["demo", "adamp", "--report", str(out), "--quiet", "--check", str(built.check)]) == 0
    assert f"catalog: {out / 'index.html'}" in capsys.readouterr().out
    assert "Conformance: not run here" not in (out / "index.html").read_text()
    bare = tmp_path / "bare"
    assert main(["demo", "adamp", "--report", str(bare), "--quiet", "--no-site"]) == 0
    assert {path.name for path in bare.iterdir()} == {"index.md", "results.json", "figures"}
    assert main(["demo", "adamp", "--quiet", "--check", str(built.check)]) == 2
    assert "--check and --no-site go with --report DIR" in capsys.readouterr().err
    assert main(["demo", "adamp", "--report", str(tmp_path / "x"), "--check", str(tmp_path / "missing.json")]) == 2
    assert not (tmp_path / "x").exists()


def test_the_site_can_be_written_into_its_report_folder(built: Built, tmp_path: Path) -> None:
    report = tmp_path / "report"
    shutil.copytree(built.report, report)
    before = {name: (report / name).read_bytes() for name in ("index.md", "results.json")}
    figures = sorted(path.name for path in (report / "figures").iterdir())
    written = write_site(report, report=report, check=built.check)
    assert written.index == report / "index.html" and written.checks == 3 and written.claims == 1
    assert {name: (report / name).read_bytes() for name in before} == before
    assert sorted(path.name for path in (report / "figures").iterdir()) == figures
    assert "2 passed, from check.json" in Page(report / "methods" / "adamp.html").text
    assert [path.name for path in tmp_path.iterdir()] == ["report"]


def refused(capsys: pytest.CaptureFixture[str], folder: Path, reason: str, thing: str = "site") -> None:
    assert capsys.readouterr().err == (
        f"gradhub: error: cannot write the {thing} to {str(folder)!r}: {reason}; "
        f"give a new folder, an empty one or an earlier {thing}'s\n"
    )


def test_a_folder_of_other_files_is_never_overwritten(
    built: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    assert main(["site", str(mine)]) == 2
    refused(capsys, mine, "it holds 'notes.txt', which is not part of a gradhub site")
    (mine / "notes.txt").unlink()
    (mine / "index.html").write_text("<!DOCTYPE html><title>my home page</title>")
    assert main(["site", str(mine)]) == 2
    refused(capsys, mine, "it holds 'index.html', which gradhub site did not write")
    assert main(["demo", "adamp", "--report", str(mine)]) == 2
    refused(capsys, mine, "it holds 'index.html', which is not part of a gradhub report", "report")
    assert (mine / "index.html").read_text() == "<!DOCTYPE html><title>my home page</title>"
    # a report folder is not a site unless it is given as --report too
    assert main(["site", str(built.report)]) == 2
    refused(
        capsys,
        built.report,
        f"it holds 'index.md' of a gradhub demo report; to add the catalog to that report, give --report "
        f"{str(built.report)!r} too",
    )
    (tmp_path / "afile").write_text("x")
    with pytest.raises(SiteFolderError, match="it is a file"):
        write_site(tmp_path / "afile")
    with pytest.raises(ReportFolderError):
        write_report([], mine)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["afile", "mine"]


def test_an_earlier_site_is_replaced_whole(built: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    shutil.copytree(built.site, out)
    stale = out / "methods" / "removed-method.html"
    shutil.copy(out / "methods" / "adamp.html", stale)
    assert main(["site", str(out)]) == 0
    assert not stale.exists() and not (out / "figures").exists()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"site: {out / 'index.html'}"
    assert lines[1] == f"  {len(method_names())} method pages in {out / 'methods'}; 1 broken, listed on the index"
    assert lines[2:4] == [
        "  claims: none given (--report DIR: a `gradhub demo --report DIR` folder)",
        "  conformance: not run here (--check FILE: the output of `gradhub check --json > FILE`)",
    ]
    assert lines[4] == f"open {(out / 'index.html').as_uri()}"
    assert [path.name for path in tmp_path.iterdir()] == ["out"]


def test_unreadable_inputs_are_refused_naming_the_option(
    built: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    missing = tmp_path / "check.json"
    assert main(["site", str(out), "--check", str(missing)]) == 2
    assert capsys.readouterr().err == (
        f"gradhub: error: cannot read --check {str(missing)!r}: there is no such file; "
        "write one with `gradhub check --json > FILE`\n"
    )
    missing.write_text("PASSED spec_valid[adamp]\n")
    assert main(["site", str(out), "--check", str(missing)]) == 2
    assert "it is not the JSON `gradhub check --json` prints (line 1: Expecting value)" in capsys.readouterr().err
    missing.write_text(json.dumps({"ok": True, "results": [{"method": "adamp", "name": "x", "outcome": "won"}]}))
    with pytest.raises(SiteInputError, match=r"results\[0\] has outcome 'won'; outcomes are: passed, failed"):
        write_site(out, check=missing)
    assert main(["site", str(out), "--report", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"gradhub: error: cannot read --report {str(tmp_path)!r}: it holds no results.json, so it is not a "
        "`gradhub demo --report` folder\n"
    )
    assert not out.exists()


def test_the_cli_says_what_it_wrote(built: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "catalog"
    assert main(["site", str(out), "--report", str(built.report), "--check", str(built.check)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == f"  claims: 1 from {built.report} (1 figure files copied)"
    assert lines[3] == f"  conformance: 3 checks from {built.check}"
    assert (out / "figures" / built.figure).is_file()


def test_gradhub_list_does_not_import_the_site() -> None:
    code = (
        "import sys\nfrom gradhub.cli import main\nmain(['list'])\n"
        "print('SITE', 'gradhub.site' in sys.modules, 'gradhub.report' in sys.modules)"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.splitlines()[-1] == "SITE False False"
