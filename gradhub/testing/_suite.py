"""The check registry, the expansion of checks over devices and dtypes, and the runner."""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from gradhub.errors import ConformanceError
from gradhub.kinds import KINDS
from gradhub.specs import MethodSpec

DtypePolicy = Literal["declared", "float32", "precise", "none"]
"""declared: each of the spec's dtypes; float32: the default one (or the first declared);
precise: float64 if declared, else the widest declared; none: not dtype-specific."""

CheckFunction = Callable[[MethodSpec, Any, Any], None]


@dataclass(frozen=True)
class CheckDefinition:
    id: str
    kinds: tuple[str, ...]
    function: CheckFunction
    dtypes: DtypePolicy
    per_device: bool
    applies: Callable[[MethodSpec], bool]
    when: str
    """The condition ``applies`` tests, in words, for the protocol document."""
    compares_devices: bool = False
    """Runs once over all usable devices (at least two), which it receives as a tuple."""

    @property
    def summary(self) -> str:
        return (self.function.__doc__ or self.id).strip().splitlines()[0]


_DEFINITIONS: dict[str, list[CheckDefinition]] = {kind: [] for kind in KINDS}


def conformance_check(
    *kinds: str,
    dtypes: DtypePolicy = "float32",
    per_device: bool = True,
    applies: Callable[[MethodSpec], bool] = lambda spec: True,
    when: str = "",
    compares_devices: bool = False,
) -> Callable[[CheckFunction], CheckFunction]:
    """Register ``check_<id>(spec, device, dtype)`` for ``kinds`` (all kinds when none given)."""

    def decorator(function: CheckFunction) -> CheckFunction:
        check_id = function.__name__.removeprefix("check_")
        for kind in kinds or KINDS:
            if any(existing.id == check_id for existing in _DEFINITIONS[kind]):
                raise ValueError(f"check {check_id!r} is defined twice for kind {kind}")
            _DEFINITIONS[kind].append(
                CheckDefinition(check_id, kinds or KINDS, function, dtypes, per_device, applies, when, compares_devices)
            )
        return function

    return decorator


def definitions(kind: str) -> list[CheckDefinition]:
    """Every check defined for ``kind``, in definition order."""
    _load_check_modules()
    return list(_DEFINITIONS[kind])


def _load_check_modules() -> None:
    import importlib

    for module in ("common", *KINDS, "distributed"):  # importing registers the checks; common ones first
        importlib.import_module(f"gradhub.testing.{module}")


_POLICY_WORDS = {
    "declared": "each declared dtype",
    "float32": "float32",
    "precise": "float64 (or the widest declared)",
    "none": "-",
}


def checks_markdown() -> str:
    """The per-kind tables of checks for ``specs/plugin-protocol.md`` (generated, kept current by a test)."""
    lines = []
    for kind in KINDS:
        lines += [f"#### {kind}", "", "| check | runs | dtype | what it asserts |", "|---|---|---|---|"]
        for definition in definitions(kind):
            runs = (
                ("per device" if definition.per_device else "once")
                + ("; when two or more devices are available" if definition.compares_devices else "")
                + (f"; when {definition.when}" if definition.when else "")
            )
            lines.append(f"| `{definition.id}` | {runs} | {_POLICY_WORDS[definition.dtypes]} | {definition.summary} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


@dataclass(frozen=True)
class Check:
    """One runnable check: a definition applied to a method on a device in a dtype."""

    definition: CheckDefinition
    spec: MethodSpec
    device: str | None
    dtype: str | None
    expected_failure: str | None = None

    @property
    def id(self) -> str:
        return self.definition.id

    @property
    def parameters(self) -> str:
        return "-".join(part for part in (self.spec.name, self.device, self.dtype) if part)

    @property
    def name(self) -> str:
        """Stable name, as pytest shows it: ``resume_exact[adamp-cpu-float32]``."""
        return f"{self.id}[{self.parameters}]"

    def __call__(self) -> None:
        import torch

        device: Any = torch.device(self.device) if self.device else None
        if self.definition.compares_devices:
            device = tuple(torch.device(name) for name in self.device.split("+"))
        dtype = getattr(torch, self.dtype) if self.dtype else None
        self.definition.function(self.spec, device, dtype)


def available_devices() -> list[str]:
    import torch

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def _dtypes(policy: DtypePolicy, spec: MethodSpec) -> list[str | None]:
    declared = list(spec.dtypes)
    if policy == "none":
        return [None]
    if policy == "declared":
        return list(declared)
    if policy == "float32":
        return ["float32" if "float32" in declared else declared[0]]
    for preferred in ("float64", "float32", "bfloat16", "float16"):
        if preferred in declared:
            return [preferred]
    return [declared[0]]


def expand(spec: MethodSpec, devices: Iterable[str] | None = None) -> list[Check]:
    """The checks that apply to ``spec``, chosen by its kind and capabilities, never by name."""
    usable = [device for device in (devices or available_devices()) if device in spec.devices]
    result = []
    for definition in definitions(spec.kind.value):
        if not definition.applies(spec):
            continue
        if definition.compares_devices:
            if len(usable) < 2:
                continue
            device_options: list[str | None] = ["+".join(usable)]
        else:
            device_options = list(usable) if definition.per_device else [None]
        for device in device_options:
            for dtype in _dtypes(definition.dtypes, spec):
                reason = spec.expected_failures.get(definition.id)
                result.append(Check(definition, spec, device, dtype, reason))
    return result


Outcome = Literal["passed", "failed", "xfailed", "xpassed"]


@dataclass
class CheckResult:
    check: Check
    outcome: Outcome
    message: str | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.outcome in ("passed", "xfailed")

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check.id,
            "method": self.check.spec.name,
            "device": self.check.device,
            "dtype": self.check.dtype,
            "name": self.check.name,
            "outcome": self.outcome,
            "message": self.message,
            "expected_failure": self.check.expected_failure,
            "seconds": round(self.seconds, 4),
        }


@dataclass
class Report:
    results: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        return [result for result in self.results if not result.ok]

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for result in self.results:
            counts[result.outcome] = counts.get(result.outcome, 0) + 1
        text = ", ".join(f"{count} {outcome}" for outcome, count in sorted(counts.items()))
        lines = [f"{len(self.results)} checks: {text or 'none'}"]
        for result in self.failures:
            lines.append(f"  FAILED {result.check.name}: {result.message}")
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps({"ok": self.ok, "results": [result.to_dict() for result in self.results]}, indent=2)


def run_check(check: Check) -> CheckResult:
    """Run one check; an expected failure that fails is ``xfailed``, one that passes ``xpassed``."""
    start = time.perf_counter()
    try:
        check()
    except Exception as error:
        seconds = time.perf_counter() - start
        if check.expected_failure:
            return CheckResult(check, "xfailed", f"{check.expected_failure} ({error})", seconds)
        message = str(error) if isinstance(error, ConformanceError) else _unexpected(error)
        return CheckResult(check, "failed", message, seconds)
    seconds = time.perf_counter() - start
    if check.expected_failure:
        message = (
            f"{check.spec.name}: {check.id} passes although expected_failures says "
            f"{check.expected_failure!r}; remove it from expected_failures"
        )
        return CheckResult(check, "xpassed", message, seconds)
    return CheckResult(check, "passed", None, seconds)


def _unexpected(error: BaseException) -> str:
    frames = traceback.format_exception(type(error), error, error.__traceback__)
    return f"raised {type(error).__name__}: {error}\n{''.join(frames[-3:]).rstrip()}"
