"""The ``gradhub`` command: ``list``, ``info``, ``check``, ``new``, ``demo`` and ``site``.

``list`` and ``info`` read metadata and the plugins' torch-free entry modules only, so
they answer quickly; ``check`` and ``demo`` import torch and the implementations.

Exit codes: 0 done (every check or claim passed), 1 something failed or did not run,
2 a usage error (an unknown name, device, kind or folder), 130 interrupted (Ctrl-C).
Every refusal is one line on stderr naming what was given and what is allowed.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradhub
from gradhub.errors import GradhubError
from gradhub.registry import KINDS

if TYPE_CHECKING:
    from gradhub.testing._suite import Check

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """A command refuses or fails: ``main`` prints its one-line message and returns ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def _print_table(rows: list[list[str]], headers: list[str]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    for row in [headers, ["-" * width for width in widths], *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


def command_list(args: argparse.Namespace) -> int:
    gradhub._registry.load_all()
    entries = gradhub.list(kind=args.kind, pattern=args.pattern)
    if args.json:
        print(json.dumps([entry.__dict__ for entry in entries], indent=2))
        return 0
    if not entries:
        print(_nothing_listed(args.kind, args.pattern))
        return 0
    rows = []
    for entry in entries:
        plugin = entry.distribution or "(in-process)"
        summary = f"BROKEN: {entry.error}" if entry.error else entry.summary or ""
        rows.append([entry.name, entry.kind, plugin, entry.version or "", textwrap.shorten(summary, 90)])
    _print_table(rows, ["name", "kind", "plugin", "version", "summary"])
    broken = [entry for entry in entries if entry.error]
    if broken:
        print(f"\n{len(broken)} broken; `gradhub info NAME` says why.")
    return 0


def _nothing_listed(kind: str | None, pattern: str | None) -> str:
    """Why ``gradhub list`` shows nothing: nothing installed, nothing of the kind, or no match."""
    if not gradhub.list():
        return "no methods installed"
    if not pattern:
        return f"no methods installed of kind {kind}"
    line = f"no methods match {pattern!r}" + (f" (of kind {kind})" if kind else "")
    others = gradhub.list(pattern=pattern) if kind else []
    if others:
        shown = ", ".join(f"{entry.name} ({entry.kind})" for entry in others[:5])
        line += f"; of other kinds: {shown}" + (", ..." if len(others) > 5 else "")
    return line


def _hyperparameter_rows(model: Any) -> list[list[str]]:
    from gradhub.hyperparameters import describe_field

    rows = []
    for name, field in model.model_fields.items():
        default = "(required)" if field.is_required() else repr(field.default)
        rows.append([name, default, describe_field(model, name), field.description or ""])
    return rows


def command_info(args: argparse.Namespace) -> int:
    spec = gradhub.spec(args.name)
    entry = next((e for e in gradhub.list() if e.name == spec.name), None)
    paper = spec.paper
    print(f"{spec.name} ({spec.kind.value}): {spec.summary}")
    if entry is not None and entry.distribution:
        print(f"plugin:    {entry.distribution} {entry.version}")
    print(f"target:    {spec.target}")
    if spec.aliases:
        print(f"aliases:   {', '.join(spec.aliases)}")
    print(f"\npaper:     {paper.title}")
    print(f"authors:   {', '.join(paper.authors)}")
    print(f"published: {paper.venue or 'preprint'} {paper.year}" + (f", arXiv {paper.arxiv}" if paper.arxiv else ""))
    for label, url in (("url", paper.url), ("code", paper.code)):
        if url:
            print(f"{label + ':':<10} {url}")
    print("\nhyperparameters:")
    rows = _hyperparameter_rows(spec.params)
    if rows:
        _print_table(rows, ["name", "default", "allowed", "meaning"])
    else:
        print("  (none)")
    print(f"\ndevices:   {', '.join(spec.devices)}")
    print(f"dtypes:    {', '.join(spec.dtypes)}")
    capabilities = {name: getattr(spec.capabilities, name) for name in type(spec.capabilities).model_fields}
    capabilities.pop("kind", None)
    if capabilities:
        print("capabilities:")
        for key, value in capabilities.items():
            print(f"  {key}: {value if value != '' else '-'}")
    if getattr(spec.capabilities, "fused", ""):
        from gradhub.kernels.native import toolchain

        ok, description = toolchain()
        verdict = "can compile here" if ok else "cannot compile here; fused=True will fall back"
        print(f"fused kernel toolchain: {verdict} ({description})")
    if spec.expected_failures:
        print("expected conformance failures:")
        for check_id, reason in spec.expected_failures.items():
            print(f"  {check_id}: {reason}")
    if spec.claims:
        print(f"claim checks: {', '.join(spec.claims)}  (gradhub demo {spec.name})")
    print(f"\n{paper.bibtex()}")
    return 0


def known_devices() -> tuple[str, ...]:
    """The device types a spec may declare (``MethodSpec.devices``)."""
    from typing import get_args

    from gradhub.specs import MethodSpec

    annotation = MethodSpec.model_fields["devices"].annotation
    literal = get_args(annotation)[0] if get_args(annotation) else None
    return tuple(str(device) for device in get_args(literal)) or ("cpu", "cuda", "mps", "xpu")


def device_available(device: str) -> bool:
    """Whether torch can run on ``device`` (a name from :func:`known_devices`) on this machine."""
    import torch

    if device == "cpu":
        return True
    backend = torch.backends.mps if device == "mps" else getattr(torch, device, None)
    is_available = getattr(backend, "is_available", None)
    return bool(is_available is not None and is_available())


def _requested_devices(given: list[str] | None, skip_unavailable: bool) -> list[str] | None:
    """``--device`` values, checked and de-duplicated; unavailable ones refused or skipped."""
    if given is None:
        return None
    known = known_devices()
    for device in given:
        if device not in known:
            close = difflib.get_close_matches(device, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise CommandError(f"unknown --device {device!r}{hint}; devices are: {', '.join(known)}", EXIT_USAGE)
    requested = list(dict.fromkeys(given))
    usable = [device for device in requested if device_available(device)]
    for device in requested:
        if device not in usable:
            if not skip_unavailable:
                raise CommandError(f"{device} is not available on this machine (--skip-unavailable skips it)")
            print(f"gradhub: {device} is not available on this machine; skipped", file=sys.stderr)
    if not usable:
        raise CommandError(f"no checks ran: no requested device is available on this machine ({', '.join(requested)})")
    return usable


def _uncovered(selected: list[Check], devices: list[str] | None, named: bool) -> str | None:
    """Why a run would not check what was asked: no check at all, or none on a requested device."""
    if not selected:
        return "no checks ran: no methods installed"
    specs = {check.spec.name: check.spec for check in selected}
    ran = {(check.spec.name, device) for check in selected if check.device for device in check.device.split("+")}
    for device in devices or []:
        missing = [spec for spec in specs.values() if (spec.name, device) not in ran]
        if missing and named:
            reasons = "; ".join(f"{spec.name} supports {', '.join(spec.devices)} only" for spec in missing)
            return f"no checks ran on {device}: {reasons}"
        if len(missing) == len(specs):
            return f"no checks ran on {device}: no installed method supports it"
    return None


def command_check(args: argparse.Namespace) -> int:
    devices = _requested_devices(args.device, args.skip_unavailable)

    from gradhub.testing import checks
    from gradhub.testing._suite import Report, run_check

    selected = checks(*args.names, devices=devices)
    problem = _uncovered(selected, devices, named=bool(args.names))
    if problem:
        raise CommandError(problem)
    report = Report()
    for check in selected:
        result = run_check(check)
        report.results.append(result)
        if not args.json:
            print(f"{result.outcome.upper():8s} {check.name}  ({result.seconds:.2f} s)")
            if not result.ok and result.message:
                print(textwrap.indent(result.message, "         "))
    if args.json:
        print(report.to_json())
    else:
        print("\n" + report.summary().splitlines()[0])
    return 0 if report.ok else 1


def _already_installed(slug: str) -> str | None:
    """Why ``slug`` would clash: an installed method or distribution of that name (metadata only)."""
    import importlib.metadata

    names = {slug.lower(), slug.lower().replace("-", "_"), slug.lower().replace("_", "-")}
    for entry in gradhub.list():
        if entry.name in names:
            origin = f"{entry.distribution} {entry.version}" if entry.distribution else "registered in-process"
            return f"{slug!r} is already the name of an installed method ({origin}); installing both is a name conflict"
    distribution = "gradhub-" + slug.lower().replace("_", "-")
    try:
        version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    return f"{distribution} {version} is already installed; installing the new package replaces it"


def command_new(args: argparse.Namespace) -> int:
    from gradhub.scaffold import create_plugin

    try:
        root = create_plugin(args.slug, args.kind, args.dir)
    except OSError as error:
        raise CommandError(f"gradhub new: cannot write {str(error.filename)!r}: {error.strerror or error}") from None
    clash = _already_installed(args.slug)
    if clash:
        print(f"gradhub: warning: {clash}", file=sys.stderr)
    print(f"created {root}")
    print(
        "next:\n"
        f"  pip install -e {root}\n"
        f"  gradhub check {args.slug.replace('_', '-')}\n"
        f"  pytest {root}/tests\n"
        "then replace the example method with yours; CONTRIBUTING.md walks through it."
    )
    return 0


def command_demo(args: argparse.Namespace) -> int:
    from gradhub.claims import run_claims
    from gradhub.progress import show_bars
    from gradhub.report import ReportFolder, matplotlib_available

    if (args.check or args.no_site) and not args.report:
        raise CommandError(
            "--check and --no-site go with --report DIR (they are about the catalog written there)", EXIT_USAGE
        )
    check = None
    if args.check and not args.no_site:
        from gradhub.site.catalog import load_check

        check = load_check(args.check)  # read before any claim runs: a bad file costs no work
    with contextlib.ExitStack() as stack:
        # Checked and staged before any claim runs: an unwritable DIR costs no work.
        folder = stack.enter_context(ReportFolder(args.report)) if args.report else None
        names = args.names or [entry.name for entry in gradhub.list() if entry.error is None]
        with show_bars(not args.quiet):
            results = run_claims(names, on_result=lambda result: print(result.report() + "\n", flush=True))
        if not results:
            print("no claim checks among: " + ", ".join(names))
            return 0
        failed = [result for result in results if not result.passed]
        print(f"{len(results) - len(failed)} of {len(results)} claims reproduced")
        if folder is None:
            return 1 if failed else 0
        try:
            index = folder.commit(results, site=not args.no_site, check=check)
        except OSError as error:
            raise CommandError(f"cannot write the report to {args.report!r}: {error.strerror or error}") from None
        figures = "with figures" if matplotlib_available() else "figures as data (pip install gradhub[plot] to draw)"
        print(f"report: {index} ({figures})")
        if not args.no_site:
            print(f"catalog: {index.with_name('index.html')}")
    return 1 if failed else 0


def command_site(args: argparse.Namespace) -> int:
    from gradhub.site import write_site

    try:
        written = write_site(args.dir, report=args.report, check=args.check)
    except OSError as error:
        raise CommandError(f"cannot write the site to {args.dir!r}: {error.strerror or error}") from None
    print(f"site: {written.index}")
    broken = f"; {written.broken} broken, listed on the index" if written.broken else ""
    print(f"  {written.methods} method pages in {written.index.parent / 'methods'}{broken}")
    if written.claims is None:
        print("  claims: none given (--report DIR: a `gradhub demo --report DIR` folder)")
    else:
        shown = "linked" if Path(args.report).resolve() == written.index.parent else "copied"
        print(f"  claims: {written.claims} from {args.report} ({written.figures} figure files {shown})")
    if written.checks is None:
        print("  conformance: not run here (--check FILE: the output of `gradhub check --json > FILE`)")
    else:
        print(f"  conformance: {written.checks} checks from {args.check}")
    print(f"open {written.index.as_uri()}")
    return 0


def version_lines() -> list[str]:
    """``gradhub --version``: the core's version, then each plugin distribution's (metadata only)."""
    import importlib.metadata

    from gradhub.registry import canonical_distribution

    plugins: dict[str, str] = {}
    for distribution in importlib.metadata.distributions():
        name = canonical_distribution(distribution.metadata["Name"] or "")
        groups = {entry_point.group for entry_point in distribution.entry_points}
        if name and name != "gradhub" and name not in plugins and any(g.startswith("gradhub.") for g in groups):
            plugins[name] = distribution.version
    lines = [f"gradhub {gradhub.__version__}"]
    lines += [f"{name} {version}" for name, version in sorted(plugins.items())] or ["(no plugins installed)"]
    return lines


class _VersionAction(argparse.Action):
    """``--version``: print :func:`version_lines` and exit, before any command is required."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **options: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **options)

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print("\n".join(version_lines()))
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gradhub", description="Research methods for PyTorch, by name.")
    parser.add_argument("--version", action=_VersionAction, help="gradhub's version and its plugins'")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = commands.add_parser("list", help="installed methods (broken plugins flagged)")
    listing.add_argument("--kind", choices=KINDS)
    listing.add_argument("pattern", nargs="?", help="substring or glob of method names")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=command_list)

    info = commands.add_parser("info", help="paper, BibTeX, hyperparameters and capabilities of a method")
    info.add_argument("name")
    info.set_defaults(handler=command_info)

    check = commands.add_parser("check", help="run the conformance suite (all installed methods by default)")
    check.add_argument("names", nargs="*")
    check.add_argument("--device", action="append", help="only this device: cpu, cuda, mps or xpu (repeatable)")
    check.add_argument("--skip-unavailable", action="store_true", help="skip a --device this machine lacks")
    check.add_argument("--json", action="store_true")
    check.set_defaults(handler=command_check)

    new = commands.add_parser("new", help="scaffold a plugin package that passes `gradhub check`")
    new.add_argument("slug", help="plugin slug: distribution gradhub-SLUG, method SLUG")
    new.add_argument("--kind", required=True, choices=KINDS)
    new.add_argument("--dir", default=".", help="parent folder (default: here)")
    new.set_defaults(handler=command_new)

    demo = commands.add_parser("demo", help="run the installed plugins' claim checks on synthetic data")
    demo.add_argument("names", nargs="*")
    demo.add_argument("--report", metavar="DIR", help="also write DIR/index.md with tables and figures")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.add_argument("--check", metavar="FILE", help="conformance results for the catalog: `gradhub check --json`")
    demo.add_argument("--no-site", action="store_true", help="the report only, without the catalog (index.html)")
    demo.set_defaults(handler=command_demo)

    site = commands.add_parser("site", help="write a static HTML catalog of the installed methods into DIR")
    site.add_argument("dir", metavar="DIR", help="a new folder, an empty one, an earlier site's or the --report folder")
    site.add_argument("--report", metavar="REPORT_DIR", help="a `gradhub demo --report` folder: claims and figures")
    site.add_argument("--check", metavar="FILE", help="conformance results: the output of `gradhub check --json`")
    site.set_defaults(handler=command_site)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.handler(args))
    except CommandError as error:
        print(f"gradhub: error: {error}", file=sys.stderr)
        return error.code
    except GradhubError as error:
        print(f"gradhub: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("gradhub: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `gradhub list | head`: the reader left; say nothing more (Python docs, "Note on SIGPIPE").
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
