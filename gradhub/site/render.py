"""The catalog's HTML: ``index.html`` and one page per method, as plain strings.

Every piece of text that comes from a spec, a check file or a report (third-party text) goes
through :func:`escape`; the pages are complete without JavaScript (``assets/site.js`` only
filters the list and copies text), and link only to files of the site itself.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gradhub.site.catalog import Catalog, CheckOutcome, Claim, Conformance, DemoReport, Method, kinds_of

__all__ = [
    "GENERATOR",
    "capability_rows",
    "escape",
    "filter_tokens",
    "install_commands",
    "render_index",
    "render_method",
    "usage_snippet",
]

GENERATOR = "gradhub site"
"""The ``<meta name="generator">`` of every page: how a folder is recognised as a site written by gradhub."""

SUPPORT_LABELS = {"ddp": "DDP", "fsdp2": "FSDP2", "compile": "torch.compile"}
"""How the :class:`gradhub.specs.Support` capabilities are named on the pages."""

CHECK_COMMAND = "gradhub check --json > check.json && gradhub site DIR --check check.json"


def escape(value: object) -> str:
    """``value`` as HTML text or attribute value (``<``, ``>``, ``&`` and both quotes escaped)."""
    return html.escape(str(value), quote=True)


def _url(value: str | None) -> str | None:
    """An http(s) address fit for ``href``, else ``None`` (specs validate this; third parties may not)."""
    if value and value.startswith(("https://", "http://")) and not any(char.isspace() for char in value):
        return value
    return None


def _link(text: str, url: str | None) -> str:
    safe = _url(url)
    return f'<a href="{escape(safe)}">{escape(text)}</a>' if safe else escape(text)


def _page(*, title: str, root: str, body: str, version: str, description: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="{GENERATOR} {escape(version)}">
<meta name="description" content="{escape(description)}">
<title>{escape(title)}</title>
<link rel="stylesheet" href="{root}assets/site.css">
<script src="{root}assets/site.js" defer></script>
</head>
<body>
<a class="skip" href="#main">Skip to the content</a>
<header class="site">
<a class="home" href="{root}index.html">gradhub <span>method catalog</span></a>
</header>
<main id="main">
{body}
</main>
<footer class="site">
<p>Written by <code>gradhub site</code> (gradhub {escape(version)}) from the specs of the methods installed
where it ran.</p>
</footer>
</body>
</html>
"""


def _code_block(identifier: str, text: str, label: str) -> str:
    """A ``<pre>`` with a copy button (shown by the script; without it the text is there to select)."""
    return (
        f'<div class="copyable"><pre id="{identifier}"><code>{escape(text)}</code></pre>'
        f'<button type="button" class="copy" data-copy="{identifier}" hidden>Copy {escape(label)}</button>'
        f'<span class="copy-status" role="status" aria-live="polite"></span></div>'
    )


# --- capabilities -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CapabilityRow:
    name: str
    label: str
    value: str
    status: str | None
    """A :class:`~gradhub.specs.Support` status (``tested``, ``unsupported``...), else ``None``."""
    reason: str
    description: str
    free_text: bool = False
    """A description in words (the fused kernel's), not a value."""


def capability_rows(method: Method) -> list[CapabilityRow]:
    """The spec's kind-specific capabilities, as ``gradhub info`` lists them."""
    from gradhub.specs import Support

    capabilities = method.spec.capabilities
    rows = []
    for name, info in type(capabilities).model_fields.items():
        if name == "kind":
            continue
        value = getattr(capabilities, name)
        label = SUPPORT_LABELS.get(name, name)
        description = info.description or ""
        if isinstance(value, Support):
            rows.append(CapabilityRow(name, label, value.status, value.status, value.reason, description))
        elif isinstance(value, tuple):
            rows.append(CapabilityRow(name, label, ", ".join(map(str, value)) or "-", None, "", description))
        else:
            shown = "-" if value in ("", None) else str(value)
            free_text = info.annotation is str and bool(value)
            rows.append(CapabilityRow(name, label, shown, None, "", description, free_text))
    return rows


def filter_tokens(method: Method) -> list[tuple[str, str, str]]:
    """``(group, token, label)`` for the capability filter: devices, dtypes, DDP/FSDP2/compile status
    and the kind's declared forms. Tokens hold no spaces (``device:cuda``, ``ddp:tested``)."""
    from gradhub.specs import Support

    spec = method.spec
    tokens = [("Devices", f"device:{device}", device) for device in spec.devices]
    tokens += [("Dtypes", f"dtype:{dtype}", dtype) for dtype in spec.dtypes]
    capabilities = spec.capabilities
    for name, info in type(capabilities).model_fields.items():
        value = getattr(capabilities, name)
        if name == "kind" or value is None:
            continue
        label = SUPPORT_LABELS.get(name, name)
        if isinstance(value, Support):
            tokens.append((label, f"{name}:{value.status}", f"{label}: {value.status}"))
        elif isinstance(value, bool):
            tokens.append(
                (f"{spec.kind.value} capabilities", f"{name}:{'yes' if value else 'no'}", f"{label}: {value}")
            )
        elif isinstance(value, tuple):
            tokens += [(f"{spec.kind.value} capabilities", f"{name}:{item}", f"{label}: {item}") for item in value]
        elif isinstance(value, str) and info.annotation is str:  # free text (the fused kernel's description)
            flag = "yes" if value else "no"
            tokens.append((f"{spec.kind.value} capabilities", f"{name}:{flag}", f"{label}: {flag}"))
        elif isinstance(value, str):
            tokens.append((f"{spec.kind.value} capabilities", f"{name}:{value}", f"{label}: {value}"))
    return [(group, token.replace(" ", "_"), text) for group, token, text in tokens]


# --- usage and installation -------------------------------------------------------------------


def install_commands(method: Method) -> list[tuple[str, str]]:
    """``(what, command)``: from the package index, and from a wheelhouse (``make dist``'s ``dist/``)."""
    distribution = method.distribution
    if distribution is None:
        return []
    return [
        ("From the Python package index (once the plugin is published there)", f"pip install {distribution}"),
        (
            "From a wheelhouse (make dist writes one to dist/, with a PEP 503 index at dist/simple)",
            f"pip install --index-url <wheelhouse>/simple {distribution}",
        ),
    ]


def _form(method: Method) -> str | None:
    return getattr(method.spec.capabilities, "form", None)


def usage_snippet(method: Method) -> str:
    """A few lines that get the method by name and use it the way its kind is used."""
    spec = method.spec
    var = method.callable_name
    arguments = list(method.arguments)
    kind = spec.kind.value
    lines = ["import gradhub", "", f'{var} = gradhub.get("{spec.name}")']
    is_class = method.target_type == "class"

    def call(extra: Sequence[str] = ()) -> str:
        return f"{var}({', '.join([*arguments, *extra])})"

    if kind == "optimizer":
        if arguments and arguments[0] == "params":
            arguments[0] = "model.parameters()"
        lines.append(f"optimizer = {call()}")
        if getattr(spec.capabilities, "requires_closure", False):
            lines += [
                "",
                "def closure():",
                "    optimizer.zero_grad()",
                "    loss = loss_fn(model(inputs), targets)",
                "    loss.backward()",
                "    return loss",
                "",
                "for inputs, targets in data:",
                "    optimizer.step(closure)",
            ]
        else:
            lines += [
                "for inputs, targets in data:",
                "    optimizer.zero_grad()",
                "    loss_fn(model(inputs), targets).backward()",
                "    optimizer.step()",
            ]
    elif kind == "layer":
        lines += [f"layer = {call()}", "outputs = layer(inputs)"] if is_class else [f"outputs = {call()}"]
    elif kind == "loss":
        model_form = _form(method) == "model"
        extra = ["generator=torch.Generator().manual_seed(0)"] if model_form and not is_class else []
        if extra:
            lines.insert(1, "import torch")
        if is_class:
            target_arguments = "model, x0" if model_form else "prediction, target"
            lines += [f"criterion = {call()}", f"loss = criterion({target_arguments})"]
        else:
            lines.append(f"loss = {call(extra)}")
        lines.append("loss.backward()")
    elif kind == "solver":
        lines += [f"result = {call()}", "print(result.converged, result.iterations)", "x = result.solution"]
    elif kind == "sampler":
        stochastic = getattr(spec.capabilities, "stochastic", True)
        extra = ["generator=torch.Generator().manual_seed(0)"] if stochastic else []
        if extra:
            lines.insert(1, "import torch")
        lines += [f"result = {call(extra)}", "samples = result.samples"]
    elif kind == "schedule":
        form = _form(method) or ("scheduler" if is_class else "step")
        if form in ("scheduler", "factory"):
            lines += [
                f"scheduler = {call()}",
                "for batch in data:",
                "    ...  # forward, backward",
                "    optimizer.step()",
                "    scheduler.step()",
            ]
        elif form == "noise":
            lines += [f"schedule = {call()}", "alpha, sigma = schedule.alpha(t), schedule.sigma(t)"]
        else:
            lines.append(f"value = {call()}")
    elif kind == "probe" and _form(method) == "recorder":
        lines += [
            f"recorder = {call()}",
            "for batch in data:",
            "    ...  # forward, backward, step",
            "    recorder.record()",
        ]
    else:  # attacks, function probes
        lines.append(f"result = {call()}")
    return "\n".join(lines)


# --- the index --------------------------------------------------------------------------------


def _claim_verdict(claims: Sequence[Claim]) -> str:
    if not claims:
        return "-"
    failed = sum(not claim.passed for claim in claims)
    return "PASS" if not failed else f"FAIL ({failed} of {len(claims)})" if len(claims) > 1 else "FAIL"


def _check_summary(outcomes: Sequence[CheckOutcome]) -> str:
    if not outcomes:
        return "not run"
    counts = Counter(outcome.outcome for outcome in outcomes)
    return ", ".join(f"{counts[name]} {name}" for name in ("failed", "xpassed", "passed", "xfailed") if counts[name])


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _search_text(method: Method) -> str:
    spec = method.spec
    paper = spec.paper
    parts = [spec.name, *spec.aliases, spec.summary, paper.title, *paper.authors, paper.venue or "", str(paper.year)]
    parts += [paper.arxiv or "", *spec.tags]
    return " ".join(part for part in parts if part).lower()


def _options(values: Iterable[tuple[str, str]], counts: Counter[str]) -> str:
    return "".join(
        f'<option value="{escape(value)}">{escape(label)} ({counts[value]})</option>' for value, label in values
    )


def render_index(
    catalog: Catalog,
    report: DemoReport | None,
    conformance: Conformance | None,
    version: str,
    *,
    beside_report: bool = False,
) -> str:
    """``index.html``: every method in a table the script filters; ``beside_report`` links the report's index.md."""
    methods = catalog.methods
    kinds = kinds_of(methods)
    kind_counts = Counter(method.kind for method in methods)
    tag_counts = Counter(tag for method in methods for tag in method.spec.tags)
    token_counts: Counter[str] = Counter()
    groups: dict[str, dict[str, str]] = {}
    tokens_of = {}
    for method in methods:
        tokens = list(dict.fromkeys(filter_tokens(method)))
        tokens_of[method.name] = tokens
        for group, token, label in tokens:
            token_counts[token] += 1
            groups.setdefault(group, {})[token] = label
    plugins = {method.distribution for method in methods if method.distribution}

    local = sum(method.distribution is None for method in methods)
    origin = _count(len(plugins), "plugin") + (f" and {local} registered in-process" if local else "")
    intro = [
        f"<p>{_count(len(methods), 'method')} from {origin}. Each links to its page: the paper and BibTeX, the call "
        "signature, the hyperparameters with their defaults and bounds, what it supports, and how to install it.</p>"
    ]
    if report is not None:
        passed = sum(claim.passed for claim in report.claims)
        where = ' (<a href="index.md">index.md</a>)' if beside_report else ""
        intro.append(
            f"<p>Claims: <strong>{passed} of {len(report.claims)}</strong> reproduced in the demo report{where}.</p>"
        )
    if conformance is not None:
        total = sum(len(rows) for rows in conformance.by_method.values())
        verdict = "all passed" if conformance.ok else "some failed"
        intro.append(
            f"<p>Conformance: {total} checks from <code>{escape(conformance.source.name)}</code> ({verdict}).</p>"
        )
    else:
        intro.append(f"<p>Conformance: not run here (<code>{escape(CHECK_COMMAND)}</code>).</p>")

    kind_options = _options(((kind, kind) for kind in kinds), kind_counts)
    tag_options = _options(((tag, tag) for tag in sorted(tag_counts)), tag_counts)
    capability_options = "".join(
        f'<optgroup label="{escape(group)}">'
        + _options(sorted(members.items(), key=lambda item: item[1]), token_counts)
        + "</optgroup>"
        for group, members in groups.items()
    )
    form = f"""<form id="filters" class="filters" role="search" aria-label="Filter the methods" hidden>
<div class="field search"><label for="q">Search</label>
<input id="q" name="q" type="search" placeholder="name, summary, paper or tag" autocomplete="off"></div>
<div class="field"><label for="kind">Kind</label>
<select id="kind" name="kind"><option value="">all kinds</option>{kind_options}</select></div>
<div class="field"><label for="tag">Tag</label>
<select id="tag" name="tag"><option value="">any tag</option>{tag_options}</select></div>
<div class="field"><label for="capability">Capability</label>
<select id="capability" name="capability"><option value="">any capability</option>{capability_options}</select></div>
<div class="field"><button type="reset">Clear</button></div>
</form>"""

    headers = ["Method", "Kind", "Summary", "Paper", "Plugin"]
    if report is not None:
        headers.append("Claim")
    if conformance is not None:
        headers.append("Conformance")
    rows = []
    for method in methods:
        spec = method.spec
        paper = spec.paper
        plugin = f"{method.distribution} {method.version}" if method.distribution else "in-process"
        tokens = " ".join(token for _, token, _ in tokens_of[method.name])
        cells = [
            f'<th scope="row"><a href="methods/{escape(spec.name)}.html">{escape(spec.name)}</a></th>',
            f'<td><span class="kind kind-{escape(method.kind)}">{escape(method.kind)}</span></td>',
            f"<td>{escape(spec.summary)}</td>",
            f'<td><cite>{escape(paper.title)}</cite> <span class="muted">({paper.year})</span></td>',
            f'<td class="plugin">{escape(plugin)}</td>',
        ]
        if report is not None:
            verdict = _claim_verdict(report.of(spec.name))
            css = "pass" if verdict == "PASS" else "fail" if verdict.startswith("FAIL") else "none"
            cells.append(f'<td><span class="verdict {css}">{escape(verdict)}</span></td>')
        if conformance is not None:
            outcomes = conformance.of(spec.name)
            css = (
                "none"
                if not outcomes
                else "pass"
                if all(o.outcome in ("passed", "xfailed") for o in outcomes)
                else "fail"
            )
            cells.append(f'<td><span class="verdict {css}">{escape(_check_summary(outcomes))}</span></td>')
        rows.append(
            f'<tr data-kind="{escape(method.kind)}" data-tags="{escape(" ".join(spec.tags))}" '
            f'data-caps="{escape(tokens)}" data-search="{escape(_search_text(method))}">' + "".join(cells) + "</tr>"
        )
    table = (
        '<table id="methods" class="methods">\n<caption>Installed methods</caption>\n<thead><tr>'
        + "".join(f'<th scope="col">{escape(header)}</th>' for header in headers)
        + "</tr></thead>\n<tbody>\n"
        + "\n".join(rows)
        + "\n</tbody>\n</table>"
    )
    broken = ""
    if catalog.broken:
        items = "".join(
            f"<li><strong>{escape(item.name)}</strong> ({escape(item.kind)}, "
            f"{escape(item.distribution or 'in-process')} {escape(item.version or '')}): {escape(item.error)}</li>"
            for item in catalog.broken
        )
        broken = (
            '<section aria-labelledby="broken"><h2 id="broken">Installed but broken</h2>'
            "<p>These plugins are installed but their methods cannot be used; "
            f"<code>gradhub info NAME</code> says the same.</p><ul>{items}</ul></section>"
        )
    body = "\n".join(
        [
            "<h1>Method catalog</h1>",
            *intro,
            form,
            f'<p id="count" class="count" role="status" aria-live="polite">{_count(len(methods), "method")}</p>',
            table,
            '<p id="no-match" class="no-match" hidden>No method matches these filters.</p>',
            broken,
        ]
    )
    return _page(
        title="gradhub method catalog",
        root="",
        body=body,
        version=version,
        description=f"{len(methods)} research methods for PyTorch installed as gradhub plugins",
    )


# --- a method's page --------------------------------------------------------------------------


def _paper_section(method: Method) -> str:
    paper = method.spec.paper
    published = ", ".join(part for part in (paper.venue or "preprint", str(paper.year)) if part)
    links = []
    if paper.arxiv:
        links.append(f'arXiv <a href="https://arxiv.org/abs/{escape(paper.arxiv)}">{escape(paper.arxiv)}</a>')
    arxiv_page = f"https://arxiv.org/abs/{paper.arxiv}" if paper.arxiv else None
    if _url(paper.url) and paper.url != arxiv_page:
        links.append(_link("paper", paper.url))
    if _url(paper.code):
        links.append(_link("official code", paper.code))
    title = _link(paper.title, paper.url or arxiv_page)
    return f"""<section aria-labelledby="paper"><h2 id="paper">Paper</h2>
<p class="paper"><cite>{title}</cite></p>
<dl class="facts">
<dt>Authors</dt><dd>{escape(", ".join(paper.authors))}</dd>
<dt>Published</dt><dd>{escape(published)}</dd>
{f"<dt>Links</dt><dd>{' · '.join(links)}</dd>" if links else ""}
</dl>
<h3 id="bibtex-heading">BibTeX</h3>
{_code_block("bibtex", paper.bibtex(), "BibTeX")}
</section>"""


def _install_section(method: Method) -> str:
    commands = install_commands(method)
    if not commands:
        content = "<p>Registered in-process with <code>gradhub.register()</code>: there is no package to install.</p>"
    else:
        content = "\n".join(
            f"<p>{escape(what)}:</p>\n{_code_block(f'install-{number}', command, 'command')}"
            for number, (what, command) in enumerate(commands, 1)
        )
    return f'<section aria-labelledby="install"><h2 id="install">Install</h2>\n{content}\n</section>'


def _usage_section(method: Method) -> str:
    return f"""<section aria-labelledby="usage"><h2 id="usage">Usage</h2>
{_code_block("snippet", usage_snippet(method), "snippet")}
<h3 id="signature">Call signature</h3>
<pre class="signature"><code>{escape(method.signature)}</code></pre>
<p class="note">{_signature_source(method)}; <code>gradhub info {escape(method.name)}</code> prints the same
hyperparameters.</p>
</section>"""


def _signature_source(method: Method) -> str:
    if method.target_type is None:
        return escape(method.signature_source[:1].upper() + method.signature_source[1:])
    return f"From <code>{escape(method.signature_source)}</code>"


def _hyperparameter_section(method: Method) -> str:
    if not method.hyperparameters:
        table = "<p>None.</p>"
    else:
        rows = "\n".join(
            f'<tr><th scope="row"><code>{escape(row.name)}</code></th><td>{_default(row.default, row.required)}</td>'
            f"<td>{escape(row.allowed)}</td><td>{escape(row.meaning)}</td></tr>"
            for row in method.hyperparameters
        )
        table = (
            '<table id="hyperparameters-table" class="hyperparameters">\n'
            f"<caption>Hyperparameters of {escape(method.name)}, with defaults and bounds</caption>\n"
            '<thead><tr><th scope="col">Name</th><th scope="col">Default</th><th scope="col">Allowed</th>'
            f'<th scope="col">Meaning</th></tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>'
        )
    inert = ""
    if method.spec.inert:
        items = "".join(
            f"<li><code>{escape(name)}</code>: {escape(reason)}</li>" for name, reason in method.spec.inert.items()
        )
        inert = f"<p>Declared without effect on the conformance example:</p><ul>{items}</ul>"
    return (
        '<section aria-labelledby="hyperparameters"><h2 id="hyperparameters">Hyperparameters</h2>\n'
        f"{table}\n{inert}</section>"
    )


def _default(text: str, required: bool) -> str:
    return "<em>required</em>" if required else f"<code>{escape(text)}</code>"


def _status(status: str | None, value: str, free_text: bool = False) -> str:
    if status is None:
        return escape(value) if free_text else f"<code>{escape(value)}</code>"
    return f'<span class="status status-{escape(status)}">{escape(status)}</span>'


def _capability_section(method: Method) -> str:
    spec = method.spec
    rows = [
        f'<tr><th scope="row">devices</th><td>{escape(", ".join(spec.devices))}</td>'
        "<td>where it runs (the conformance suite checks each one available)</td></tr>",
        f'<tr><th scope="row">dtypes</th><td>{escape(", ".join(spec.dtypes))}</td>'
        "<td>floating-point types it supports</td></tr>",
    ]
    for row in capability_rows(method):
        reason = f'<p class="reason">{escape(row.reason)}</p>' if row.reason else ""
        value = _status(row.status, row.value, row.free_text)
        rows.append(
            f'<tr><th scope="row">{escape(row.label)}</th><td>{value}{reason}</td>'
            f"<td>{escape(row.description)}</td></tr>"
        )
    table = (
        '<table id="capabilities-table" class="capabilities">\n<caption>What it supports</caption>\n'
        '<thead><tr><th scope="col">Capability</th><th scope="col">Value</th><th scope="col">Meaning</th></tr>'
        "</thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"
    )
    expected = ""
    if spec.expected_failures:
        items = "".join(
            f"<li><code>{escape(check)}</code>: {escape(reason)}</li>"
            for check, reason in spec.expected_failures.items()
        )
        expected = f"<h3>Expected conformance failures</h3><ul>{items}</ul>"
    return (
        '<section aria-labelledby="capabilities"><h2 id="capabilities">Devices, dtypes and capabilities</h2>\n'
        f"{table}\n{expected}</section>"
    )


def _conformance_section(method: Method, conformance: Conformance | None) -> str:
    command = f"gradhub check {method.name}"
    heading = '<section aria-labelledby="conformance"><h2 id="conformance">Conformance</h2>\n'
    outcomes = conformance.of(method.name) if conformance is not None else ()
    if not outcomes:
        where = f"not in <code>{escape(conformance.source.name)}</code>" if conformance is not None else "not run here"
        return (
            f"{heading}<p>The conformance suite: {where}. Run it with <code>{escape(command)}</code> "
            f"(<code>{escape(CHECK_COMMAND)}</code> puts the results on these pages).</p></section>"
        )
    assert conformance is not None
    rows = []
    for outcome in outcomes:
        note = outcome.message or outcome.expected_failure or ""
        seconds = "" if outcome.seconds != outcome.seconds else f"{outcome.seconds:.2f}"
        rows.append(
            f'<tr class="outcome-{escape(outcome.outcome)}"><th scope="row"><code>{escape(outcome.name)}</code></th>'
            f'<td><span class="status status-{escape(outcome.outcome)}">{escape(outcome.outcome)}</span></td>'
            f"<td>{seconds}</td><td>{f'<pre>{escape(note)}</pre>' if note else ''}</td></tr>"
        )
    return (
        f"{heading}<p>{escape(_check_summary(outcomes))}, from <code>{escape(conformance.source.name)}</code> "
        f"(<code>{escape(command)} --json</code>).</p>\n"
        '<table id="checks-table" class="checks">\n<caption>Conformance checks</caption>\n'
        '<thead><tr><th scope="col">Check</th><th scope="col">Outcome</th><th scope="col">Seconds</th>'
        '<th scope="col">Message</th></tr></thead>\n<tbody>\n' + "\n".join(rows) + "\n</tbody>\n</table>\n</section>"
    )


def _claim_section(method: Method, report: DemoReport | None, root: str) -> str:
    heading = '<section aria-labelledby="claims"><h2 id="claims">Claim check</h2>\n'
    declared = method.spec.claims
    if not declared:
        return f"{heading}<p>This method declares no claim check.</p></section>"
    claims = report.of(method.name) if report is not None else ()
    if not claims:
        where = "not in the demo report given" if report is not None else "not run here"
        paths = ", ".join(f"<code>{escape(path)}</code>" for path in declared)
        return (
            f"{heading}<p>Declared: {paths}; {where}. Run it with <code>gradhub demo {escape(method.name)}</code> "
            f"(<code>gradhub demo {escape(method.name)} --report DIR</code> writes the catalog with its "
            "results into DIR).</p></section>"
        )
    parts = [heading]
    for number, claim in enumerate(claims, 1):
        verdict = "PASS" if claim.passed else "FAIL"
        css = "pass" if claim.passed else "fail"
        measured = "".join(
            f'<tr><th scope="row">{escape(name)}</th><td>{escape(format(value, ".4g"))}</td></tr>'
            for name, value in claim.measured.items()
        )
        parts.append(
            f'<article class="claim"><h3><span class="verdict {css}">{verdict}</span> '
            f"<code>{escape(claim.path)}</code></h3>\n"
            f'<p class="muted">{escape(", ".join(claim.methods))} · {claim.seconds:.1f} s</p>\n'
            f"<p><strong>Claim.</strong> {escape(claim.claim)}</p>\n"
            f"<p><strong>Criterion.</strong> {escape(claim.criterion)}</p>\n"
        )
        if measured:
            parts.append(
                f'<table id="measured-{number}" class="measured"><caption>Measured</caption>'
                '<thead><tr><th scope="col">Figure</th><th scope="col">Value</th></tr></thead>'
                f"<tbody>{measured}</tbody></table>\n"
            )
        if claim.details:
            parts.append(f"<pre>{escape(claim.details.rstrip())}</pre>\n")
        for figure in claim.figures:
            if figure.file is None:
                parts.append(f"<p>Figure “{escape(figure.title)}”: not in the report folder.</p>\n")
            elif figure.is_image:
                parts.append(
                    f'<figure><img src="{root}{escape(figure.file)}" alt="{escape(figure.title)}">'
                    f"<figcaption>{escape(figure.title)}</figcaption></figure>\n"
                )
            else:
                parts.append(
                    f'<p>Figure “{escape(figure.title)}”: <a href="{root}{escape(figure.file)}">its data (CSV)</a> '
                    "(matplotlib was not installed when the report was written).</p>\n"
                )
        parts.append("</article>\n")
    parts.append("</section>")
    return "".join(parts)


def render_method(method: Method, report: DemoReport | None, conformance: Conformance | None, version: str) -> str:
    spec = method.spec
    plugin = (
        f"{escape(method.distribution)} {escape(method.version or '')}"
        if method.distribution
        else "registered in-process"
    )
    facts = [
        f"<dt>Kind</dt><dd>{escape(method.kind)}</dd>",
        f"<dt>Plugin</dt><dd>{plugin}</dd>",
        f"<dt>Target</dt><dd><code>{escape(spec.target)}</code></dd>",
    ]
    if spec.aliases:
        facts.append(f"<dt>Aliases</dt><dd>{escape(', '.join(spec.aliases))}</dd>")
    if spec.tags:
        facts.append(f"<dt>Tags</dt><dd>{escape(', '.join(spec.tags))}</dd>")
    contents = [
        ("paper", "Paper"),
        ("install", "Install"),
        ("usage", "Usage"),
        ("hyperparameters", "Hyperparameters"),
        ("capabilities", "Capabilities"),
        ("conformance", "Conformance"),
        ("claims", "Claim check"),
    ]
    body = "\n".join(
        [
            '<nav class="crumbs" aria-label="Breadcrumb"><a href="../index.html">All methods</a> '
            f'<span aria-hidden="true">›</span> <span aria-current="page">{escape(spec.name)}</span></nav>',
            f'<h1><span class="name">{escape(spec.name)}</span> '
            f'<span class="kind kind-{escape(method.kind)}">{escape(method.kind)}</span></h1>',
            f'<p class="summary">{escape(spec.summary)}</p>',
            f'<dl class="facts">{"".join(facts)}</dl>',
            '<nav class="contents" aria-label="On this page"><ul>'
            + "".join(f'<li><a href="#{anchor}">{label}</a></li>' for anchor, label in contents)
            + "</ul></nav>",
            _paper_section(method),
            _install_section(method),
            _usage_section(method),
            _hyperparameter_section(method),
            _capability_section(method),
            _conformance_section(method, conformance),
            _claim_section(method, report, "../"),
        ]
    )
    return _page(
        title=f"{spec.name} ({method.kind}) — gradhub",
        root="../",
        body=body,
        version=version,
        description=spec.summary,
    )
