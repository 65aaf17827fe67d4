"""What the catalog shows: every method the registry sees, its conformance results and its claims.

:func:`collect` reads the registry (installed plugins, third-party ones included, and in-process
registrations), :func:`load_check` a ``gradhub check --json`` file and :func:`load_report` a
``gradhub demo --report`` folder. Nothing here writes HTML (:mod:`gradhub.site.render` does).
"""

from __future__ import annotations

import inspect
import json
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gradhub.errors import GradhubError

if TYPE_CHECKING:
    from gradhub.registry import Registry
    from gradhub.specs import MethodSpec

__all__ = [
    "Broken",
    "Catalog",
    "CheckOutcome",
    "Claim",
    "ClaimFigure",
    "Conformance",
    "DemoReport",
    "Hyperparameter",
    "Method",
    "SiteInputError",
    "collect",
    "format_signature",
    "load_check",
    "load_report",
]

OUTCOMES = ("passed", "failed", "xfailed", "xpassed")
"""What ``gradhub check --json`` calls the outcome of a check (``gradhub.testing._suite.Outcome``)."""


class SiteInputError(GradhubError, ValueError):
    """``--check FILE`` or ``--report DIR`` names something the site cannot read."""

    def __init__(self, option: str, given: str | Path, reason: str) -> None:
        self.option = option
        self.given = given
        super().__init__(f"cannot read {option} {str(given)!r}: {reason}")


# --- the methods ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hyperparameter:
    """One row of a method's hyperparameter table, as ``gradhub info`` prints it."""

    name: str
    default: str
    """``repr`` of the default, or ``(required)``."""
    allowed: str
    """The bounds in words (:func:`gradhub.hyperparameters.describe_field`)."""
    meaning: str
    required: bool


@dataclass(frozen=True)
class Method:
    """A method that loads: its spec, where it comes from and how it is called."""

    spec: MethodSpec
    distribution: str | None
    """``None`` for a method registered in-process."""
    version: str | None
    signature: str
    """``Name(param, ...)`` as :func:`inspect.signature` gives it (or as the hyperparameter model implies)."""
    signature_source: str
    """Where :attr:`signature` comes from, in words."""
    target_type: Literal["class", "function"] | None
    """What ``gradhub.get`` returns; ``None`` when the implementation could not be imported here."""
    arguments: tuple[str, ...]
    """The required arguments of the call, as a usage snippet writes them (``X``, ``lr=...``)."""
    hyperparameters: tuple[Hyperparameter, ...]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> str:
        return self.spec.kind.value

    @property
    def callable_name(self) -> str:
        """The target's own name (``AdamP`` for ``gradhub_adamp.optim:AdamP``), for snippets."""
        name = self.spec.target.rpartition(":")[2].rpartition(".")[2]
        return name if name.isidentifier() else "method"


@dataclass(frozen=True)
class Broken:
    """An installed method that cannot be used: its plugin failed to load or clashes with another."""

    name: str
    kind: str
    distribution: str | None
    version: str | None
    error: str


@dataclass(frozen=True)
class Catalog:
    methods: tuple[Method, ...]
    broken: tuple[Broken, ...]


def collect(registry: Registry | None = None) -> Catalog:
    """Every method ``registry`` (default: the one behind :func:`gradhub.list`) sees, sorted by name.

    Each method's implementation is imported (as ``gradhub check`` does) for its call signature; a
    method whose implementation does not import here still gets its page, with the signature its
    hyperparameter model implies and the reason.
    """
    if registry is None:
        import gradhub

        registry = gradhub._registry
    registry.load_all()
    methods: list[Method] = []
    broken: list[Broken] = []
    for entry in registry.entries():
        if entry.error:
            broken.append(Broken(entry.name, entry.kind, entry.distribution, entry.version, entry.error))
            continue
        try:
            spec = registry.spec(entry.name)
        except GradhubError as error:
            broken.append(Broken(entry.name, entry.kind, entry.distribution, entry.version, str(error)))
            continue
        methods.append(_method(spec, entry.distribution, entry.version, registry))
    return Catalog(tuple(methods), tuple(broken))


def _method(spec: MethodSpec, distribution: str | None, version: str | None, registry: Registry) -> Method:
    from gradhub.hyperparameters import hyperparameter_signature

    name = spec.target.rpartition(":")[2].rpartition(".")[2]
    target_type: Literal["class", "function"] | None
    try:
        target = registry.get(spec.name)
        signature = inspect.signature(target)
    except Exception as error:  # a plugin whose implementation does not import here still gets its page
        signature = hyperparameter_signature(spec.params)
        reason = textwrap.shorten(f"{type(error).__name__}: {error}", 300)
        source = f"implied by the hyperparameter model: the implementation {spec.target} did not import here ({reason})"
        target_type = None
    else:
        source = f"inspect.signature(gradhub.get({spec.name!r}))"  # the words the page shows as code
        target_type = "class" if inspect.isclass(target) else "function"
    return Method(
        spec=spec,
        distribution=distribution,
        version=version,
        signature=format_signature(name, signature),
        signature_source=source,
        target_type=target_type,
        arguments=_required_arguments(signature, set(spec.params.model_fields)) if target_type else ("...",),
        hyperparameters=_hyperparameters(spec),
    )


def _hyperparameters(spec: MethodSpec) -> tuple[Hyperparameter, ...]:
    from gradhub.hyperparameters import describe_field, field_default

    rows = []
    for name, info in spec.params.model_fields.items():
        default = field_default(spec.params, name)
        required = default is inspect.Parameter.empty
        rows.append(
            Hyperparameter(
                name=name,
                default="(required)" if required else repr(default),
                allowed=describe_field(spec.params, name),
                meaning=info.description or "",
                required=required,
            )
        )
    return tuple(rows)


def _required_arguments(signature: inspect.Signature, hyperparameters: set[str]) -> tuple[str, ...]:
    """The arguments a call must give: inputs by their names, required hyperparameters as ``name=...``."""
    arguments = []
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            arguments.append(f"*{parameter.name}")
            continue
        if parameter.default is not inspect.Parameter.empty:
            continue
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY or (
            parameter.name in hyperparameters and parameter.kind is not inspect.Parameter.POSITIONAL_ONLY
        ):
            arguments.append(f"{parameter.name}=...")
        elif parameter.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            arguments.append(parameter.name)
    return tuple(arguments)


def format_signature(name: str, signature: inspect.Signature, width: int = 88) -> str:
    """``name`` and ``signature`` as ``str(signature)`` writes them: on one line when it fits in
    ``width`` characters, else one parameter per line (with the ``/`` and ``*`` markers kept)."""
    line = f"{name}{signature}"
    if len(line) <= width:
        return line
    parts: list[str] = []
    previous = None
    for parameter in signature.parameters.values():
        kind = parameter.kind
        if previous is inspect.Parameter.POSITIONAL_ONLY and kind is not inspect.Parameter.POSITIONAL_ONLY:
            parts.append("/")
        if kind is inspect.Parameter.KEYWORD_ONLY and previous not in (
            inspect.Parameter.KEYWORD_ONLY,
            inspect.Parameter.VAR_POSITIONAL,
        ):
            parts.append("*")
        parts.append(str(parameter))
        previous = kind
    if previous is inspect.Parameter.POSITIONAL_ONLY:
        parts.append("/")
    returns = str(signature.replace(parameters=[])).removeprefix("()")
    body = "".join(f"    {part},\n" for part in parts)
    return f"{name}(\n{body}){returns}"


# --- conformance: a `gradhub check --json` file -----------------------------------------------


@dataclass(frozen=True)
class CheckOutcome:
    """One check of ``gradhub check --json`` (``CheckResult.to_dict``)."""

    name: str
    """``resume_exact[adamp-cpu-float32]``"""
    check: str
    device: str | None
    dtype: str | None
    outcome: str
    message: str | None
    expected_failure: str | None
    seconds: float


@dataclass(frozen=True)
class Conformance:
    """The results of one ``gradhub check --json`` run, by method."""

    source: Path
    ok: bool
    by_method: dict[str, tuple[CheckOutcome, ...]]

    def of(self, name: str) -> tuple[CheckOutcome, ...]:
        return self.by_method.get(name, ())


def load_check(path: str | Path) -> Conformance:
    """Read what ``gradhub check --json`` printed (``gradhub check --json > FILE``)."""
    option = "--check"
    text = _read_text(option, path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise SiteInputError(
            option, path, f"it is not the JSON `gradhub check --json` prints (line {error.lineno}: {error.msg})"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise SiteInputError(
            option, path, 'it is JSON but not what `gradhub check --json` prints (an object with "ok" and "results")'
        )
    by_method: dict[str, list[CheckOutcome]] = {}
    for number, row in enumerate(data["results"]):
        where = f"results[{number}]"
        if not isinstance(row, dict):
            raise SiteInputError(option, path, f"{where} is not an object")
        method, name, outcome = row.get("method"), row.get("name"), row.get("outcome")
        if not isinstance(method, str) or not isinstance(name, str):
            raise SiteInputError(option, path, f'{where} has no "method" and "name" strings')
        if outcome not in OUTCOMES:
            raise SiteInputError(option, path, f"{where} has outcome {outcome!r}; outcomes are: {', '.join(OUTCOMES)}")
        seconds = row.get("seconds")
        by_method.setdefault(method, []).append(
            CheckOutcome(
                name=name,
                check=str(row.get("check") or name.partition("[")[0]),
                device=_optional_text(row.get("device")),
                dtype=_optional_text(row.get("dtype")),
                outcome=outcome,
                message=_optional_text(row.get("message")),
                expected_failure=_optional_text(row.get("expected_failure")),
                seconds=float(seconds) if isinstance(seconds, (int, float)) else math.nan,
            )
        )
    ok = all(outcome.outcome in ("passed", "xfailed") for rows in by_method.values() for outcome in rows)
    return Conformance(Path(path), ok, {name: tuple(rows) for name, rows in by_method.items()})


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _read_text(option: str, path: str | Path) -> str:
    location = Path(path)
    if not location.exists():
        hint = "; write one with `gradhub check --json > FILE`" if option == "--check" else ""
        raise SiteInputError(option, path, f"there is no such file{hint}")
    if location.is_dir():
        raise SiteInputError(option, path, "it is a folder, not a file")
    try:
        return location.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise SiteInputError(option, path, reason) from None


# --- claims: a `gradhub demo --report` folder -------------------------------------------------


@dataclass(frozen=True)
class ClaimFigure:
    title: str
    file: str | None
    """``figures/NAME.png`` (drawn) or ``figures/NAME.csv`` (its data), relative to the report; ``None``
    when the report folder does not have it."""

    @property
    def is_image(self) -> bool:
        return bool(self.file and self.file.endswith(".png"))


@dataclass(frozen=True)
class Claim:
    """One claim check of a demo report (an entry of its ``results.json``)."""

    methods: tuple[str, ...]
    path: str
    claim: str
    criterion: str
    measured: dict[str, float]
    passed: bool
    seconds: float
    details: str
    figures: tuple[ClaimFigure, ...] = field(default=())


@dataclass(frozen=True)
class DemoReport:
    directory: Path
    """The report folder, resolved."""
    claims: tuple[Claim, ...]

    def of(self, name: str) -> tuple[Claim, ...]:
        return tuple(claim for claim in self.claims if name in claim.methods)

    @property
    def files(self) -> list[str]:
        """The figure files the claims use, relative to :attr:`directory`."""
        return sorted({figure.file for claim in self.claims for figure in claim.figures if figure.file})


def load_report(directory: str | Path) -> DemoReport:
    """Read a ``gradhub demo --report DIR`` folder: its ``results.json`` and the figures under ``figures/``."""
    from gradhub.report import figure_stem

    option = "--report"
    folder = Path(directory)
    if not folder.exists():
        raise SiteInputError(option, directory, "there is no such folder; write one with `gradhub demo --report DIR`")
    if not folder.is_dir():
        raise SiteInputError(option, directory, "it is a file, not a report folder")
    results = folder / "results.json"
    if not results.is_file():
        raise SiteInputError(
            option, directory, "it holds no results.json, so it is not a `gradhub demo --report` folder"
        )
    try:
        data = json.loads(_read_text(option, results))
    except json.JSONDecodeError as error:
        raise SiteInputError(
            option, directory, f"its results.json is not JSON (line {error.lineno}: {error.msg})"
        ) from None
    if not isinstance(data, list):
        raise SiteInputError(option, directory, "its results.json is not a list of claim results")
    claims = []
    for number, row in enumerate(data):
        where = f"results.json[{number}]"
        try:
            methods = tuple(str(name) for name in row["methods"])
            path = str(row.get("path") or "")
            figures = []
            for index, figure in enumerate(row.get("figures") or (), 1):
                title = str(figure.get("title", ""))
                figures.append(ClaimFigure(title, _figure_file(folder, figure_stem(path, methods, index, title))))
            claims.append(
                Claim(
                    methods=methods,
                    path=path,
                    claim=str(row["claim"]),
                    criterion=str(row["criterion"]),
                    measured={str(key): float(value) for key, value in dict(row.get("measured") or {}).items()},
                    passed=bool(row["passed"]),
                    seconds=float(row.get("seconds") or 0.0),
                    details=str(row.get("details") or ""),
                    figures=tuple(figures),
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise SiteInputError(
                option, directory, f"{where} is not a claim result ({type(error).__name__}: {error})"
            ) from None
    return DemoReport(folder.resolve(), tuple(claims))


def _figure_file(folder: Path, stem: str) -> str | None:
    """The drawn figure, else its data table, relative to the report folder (what the report wrote)."""
    for suffix in (".png", ".csv"):
        if (folder / "figures" / f"{stem}{suffix}").is_file():
            return f"figures/{stem}{suffix}"
    return None


def kinds_of(methods: Sequence[Method]) -> list[str]:
    """The kinds present, in the registry's order of kinds."""
    from gradhub.registry import KINDS

    present = {method.kind for method in methods}
    return [kind for kind in KINDS if kind in present]
