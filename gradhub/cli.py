"""The ``gradhub`` command: ``list``, ``info``, ``check``, ``new`` and ``demo``.

``list`` and ``info`` read metadata and the plugins' torch-free entry modules only, so
they answer quickly; ``check`` and ``demo`` import torch and the implementations.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

import gradhub
from gradhub.errors import GradhubError
from gradhub.registry import KINDS


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
        print("no methods installed" + (f" of kind {args.kind}" if args.kind else ""))
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


def command_check(args: argparse.Namespace) -> int:
    from gradhub.testing import checks
    from gradhub.testing._suite import Report, run_check

    selected = checks(*args.names, devices=args.device)
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


def command_new(args: argparse.Namespace) -> int:
    from gradhub.scaffold import create_plugin

    root = create_plugin(args.slug, args.kind, args.dir)
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

    names = args.names or [entry.name for entry in gradhub.list() if entry.error is None]
    with show_bars(not args.quiet):
        results = run_claims(names, on_result=lambda result: print(result.report() + "\n", flush=True))
    if not results:
        print("no claim checks among: " + ", ".join(names))
        return 0
    failed = [result for result in results if not result.passed]
    print(f"{len(results) - len(failed)} of {len(results)} claims reproduced")
    if args.report:
        from gradhub.report import matplotlib_available, write_report

        index = write_report(results, args.report)
        figures = "with figures" if matplotlib_available() else "figures as data (pip install gradhub[plot] to draw)"
        print(f"report: {index} ({figures})")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gradhub", description="Research methods for PyTorch, by name.")
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
    check.add_argument("--device", action="append", help="only this device (repeatable)")
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
    demo.set_defaults(handler=command_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except GradhubError as error:
        print(f"gradhub: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `gradhub list | head`: the reader left; say nothing more (Python docs, "Note on SIGPIPE").
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
