"""The check registry, the expansion of checks over devices and dtypes, and the runner."""

from __future__ import annotations

import json
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import pluggy

from gradhub.errors import ConformanceError, PluginLoadError
from gradhub.hookspecs import hookimpl
from gradhub.registry import KINDS
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
    """Runs once over all usable devices, which it receives as a tuple (with a CPU only: the CPU and an
    :class:`AcceleratorStandIn`)."""

    @property
    def summary(self) -> str:
        return (self.function.__doc__ or self.id).strip().splitlines()[0]


def conformance_check(
    *kinds: str,
    dtypes: DtypePolicy = "float32",
    per_device: bool = True,
    applies: Callable[[MethodSpec], bool] = lambda spec: True,
    when: str = "",
    compares_devices: bool = False,
) -> Callable[[CheckFunction], CheckFunction]:
    """Mark ``check_<id>(spec, device, dtype)`` as a conformance check for ``kinds`` (all when none given).

    The mark only describes the check; a module's checks join the suite through the
    ``gradhub_conformance_checks`` hook (see :func:`checks_in`).
    """

    def decorator(function: CheckFunction) -> CheckFunction:
        check_id = function.__name__.removeprefix("check_")
        function.conformance = CheckDefinition(  # type: ignore[attr-defined]
            check_id, kinds or KINDS, function, dtypes, per_device, applies, when, compares_devices
        )
        return function

    return decorator


def checks_in(namespace: dict[str, Any] | Any) -> list[CheckDefinition]:
    """The checks marked with :func:`conformance_check` in a module (or its ``globals()``), in order.

    What a ``gradhub_conformance_checks`` hook implementation returns::

        @gradhub.hookimpl
        def gradhub_conformance_checks():
            return checks_in(globals())
    """
    values = namespace.values() if isinstance(namespace, dict) else vars(namespace).values()
    return [value.conformance for value in values if isinstance(getattr(value, "conformance", None), CheckDefinition)]


CORE_CHECK_MODULES = ("common", *KINDS, "distributed")
"""The core's check modules, in the order their checks run (common ones first)."""


class _CoreChecks:
    """The core's own checks, as a plugin of the suite's plugin manager like any check pack."""

    @hookimpl(tryfirst=True)
    def gradhub_conformance_checks(self) -> list[CheckDefinition]:
        import importlib

        found: list[CheckDefinition] = []
        for name in CORE_CHECK_MODULES:
            found += checks_in(importlib.import_module(f"gradhub.testing.{name}"))
        return found


_checks_lock = threading.Lock()
_checks_cache: dict[str, list[CheckDefinition]] | None = None


def check_plugin_manager() -> pluggy.PluginManager:
    """The suite's plugin manager: the core checks plus every installed ``gradhub.checks`` check pack.

    A check pack is a module named by an entry point in the group ``gradhub.checks`` that implements
    the ``gradhub_conformance_checks`` hook; a first-party or third-party plugin ships one to check
    capabilities of its own. pluggy calls every implementation and the suite runs the union.
    """
    import importlib.metadata

    from gradhub import hookspecs

    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.register(_CoreChecks(), name="gradhub-core")
    for entry_point in importlib.metadata.entry_points(group="gradhub.checks"):
        distribution = getattr(entry_point, "dist", None)
        origin = (
            f"{distribution.metadata['Name']} {distribution.version}" if distribution else "an unknown distribution"
        )
        try:
            module = entry_point.load()
        except Exception as error:
            raise PluginLoadError(
                f"the check pack {entry_point.name!r} = {entry_point.value!r} from {origin} could not be imported: "
                f"{type(error).__name__}: {error}. Reinstall it, or uninstall it to run the suite without its checks."
            ) from error
        if not manager.is_registered(module):
            manager.register(module, name=f"{origin}:{entry_point.name}")
    return manager


def _collect(manager: pluggy.PluginManager) -> dict[str, list[CheckDefinition]]:
    by_kind: dict[str, list[CheckDefinition]] = {kind: [] for kind in KINDS}
    for provided in manager.hook.gradhub_conformance_checks():
        for definition in provided or ():
            for kind in definition.kinds:
                if any(existing.id == definition.id for existing in by_kind[kind]):
                    raise ValueError(f"conformance check {definition.id!r} is defined twice for kind {kind}")
                by_kind[kind].append(definition)
    return by_kind


def definitions(kind: str) -> list[CheckDefinition]:
    """Every check defined for ``kind`` (core checks, then check packs), in definition order."""
    global _checks_cache
    with _checks_lock:
        if _checks_cache is None:
            _checks_cache = _collect(check_plugin_manager())
        return list(_checks_cache[kind])


def reload_checks() -> None:
    """Forget the collected checks, so check packs installed since are seen."""
    global _checks_cache
    with _checks_lock:
        _checks_cache = None


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
                + (
                    "; over every device (CPU only: against its accelerator formulation)"
                    if definition.compares_devices
                    else ""
                )
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

        device: Any = None
        if self.definition.compares_devices:
            device = tuple(
                AcceleratorStandIn() if name == ACCELERATOR_STAND_IN else torch.device(name)
                for name in self.device.split("+")
            )
        elif self.device:
            device = torch.device(self.device)
        dtype = getattr(torch, self.dtype) if self.dtype else None
        self.definition.function(self.spec, device, dtype)


ACCELERATOR_STAND_IN = "cpu-as-accelerator"
"""The second device of a device-comparing check on a machine with a CPU only (see :class:`AcceleratorStandIn`)."""


class AcceleratorStandIn:
    """The CPU running every path's accelerator formulation (:func:`gradhub.kernels.accelerator_formulation`).

    What a device-comparing check compares the CPU with when no second device is there: the code a
    GPU would run, on CPU tensors, so a formulation that differs from the CPU's is caught on any machine.
    """

    type = "cpu"

    def __str__(self) -> str:
        return "cpu (accelerator formulation)"


def available_devices() -> list[str]:
    import torch

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    if getattr(torch, "xpu", None) is not None and torch.xpu.is_available():
        devices.append("xpu")
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
            if len(usable) < 2 and usable != ["cpu"]:
                continue
            device_options: list[str | None] = ["+".join(usable if len(usable) > 1 else ["cpu", ACCELERATOR_STAND_IN])]
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
