"""Discovery and lookup of methods: entry points in, specs and targets out.

The installed metadata alone (``importlib.metadata``) tells the registry every method's
name, kind, distribution and version, and which names two distributions both claim; no
plugin code runs to list methods. A plugin's entry module is imported on the first
:meth:`Registry.spec` or :meth:`Registry.get` of one of its names, registered with a pluggy
``PluginManager`` and asked for its specs through the ``register_methods`` hook. The
target (the implementation, which imports torch) is imported only by :meth:`Registry.get`.

A plugin that fails to import, hands over invalid specs, or claims a name another
distribution claims is recorded, shown by :meth:`Registry.entries`, and raised only
when an affected name is asked for. ``GRADHUB_STRICT=1`` raises at discovery instead;
``GRADHUB_DISABLE_PLUGINS=dist1,dist2`` skips distributions.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import importlib.metadata
import json
import os
import re
import sys
import threading
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gradhub._firstparty import FIRST_PARTY_METHODS
from gradhub._text import with_article
from gradhub.errors import (
    GradhubError,
    InvalidSpecError,
    MethodNotFoundError,
    NameConflictError,
    PluginLoadError,
)

if TYPE_CHECKING:
    from types import ModuleType

    from gradhub.specs import MethodSpec

KINDS = ("optimizer", "layer", "loss", "solver", "attack", "sampler", "schedule", "probe")
"""The eight kinds, each an entry-point group ``gradhub.<kind>`` and an interface in ``gradhub.kinds``.
Defined here once; :class:`gradhub.specs.Kind` and :data:`gradhub.kinds.KINDS` are built from it."""
NAME_PATTERN = r"^[a-z][a-z0-9]*(?:[_-][a-z0-9]+)*$"
"""What a method name looks like (lower-case words joined by ``_`` or ``-``)."""
_NAME = re.compile(NAME_PATTERN)
_MODULE = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$")


@dataclass(frozen=True)
class MethodEntry:
    """One row of :func:`gradhub.list`: a method as the installed metadata describes it."""

    name: str
    kind: str
    distribution: str | None
    """The distribution that provides it; ``None`` for a method registered in-process."""
    version: str | None
    module: str | None
    """The plugin's entry module (``None`` for in-process registrations)."""
    error: str | None = None
    """Why the method cannot be used, or ``None`` when nothing is known to be wrong."""
    summary: str | None = None
    """The spec's one-line summary, once the entry module has been loaded."""


def canonical_distribution(name: str) -> str:
    """PEP 503 normalisation: ``Gradhub_AdamP`` -> ``gradhub-adamp``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def import_target(path: str) -> Any:
    """Import ``"package.module:attr.sub"`` and return the attribute."""
    module_name, _, attribute = path.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def _disabled_distributions() -> set[str]:
    raw = os.environ.get("GRADHUB_DISABLE_PLUGINS", "")
    return {canonical_distribution(part.strip()) for part in raw.split(",") if part.strip()}


@dataclass
class _Failure:
    error_type: type[GradhubError]
    message: str
    cause: BaseException | None

    def raise_(self) -> None:
        raise self.error_type(self.message) from self.cause


class Registry:
    """Methods available in this process: discovered lazily, cached, thread-safe, refreshable."""

    def __init__(self, path: list[str] | None = None) -> None:
        """``path``: read distributions from these folders only (tests); default: the environment."""
        self._path = path
        self._lock = threading.RLock()
        self._local: dict[str, MethodSpec] = {}
        self._reset()

    def _reset(self) -> None:
        self._entries: dict[str, MethodEntry] | None = None
        self._disabled: dict[str, MethodEntry] = {}
        self._failures: dict[str, _Failure] = {}
        self._specs: dict[str, MethodSpec] = {}
        self._aliases: dict[str, str] = {}
        self._targets: dict[str, Any] = {}
        self._loaded_modules: set[tuple[str | None, str]] = set()
        self._listed: dict[str, tuple[str | None, str | None]] = {}

    def refresh(self) -> None:
        """Forget everything discovered; the next lookup reads the installed metadata again.

        Methods added with :meth:`register` are kept.
        """
        with self._lock:
            self._reset()

    # discovery -------------------------------------------------------------------------

    def _discover(self) -> dict[str, MethodEntry]:
        if self._entries is not None:
            return self._entries
        disabled = _disabled_distributions()
        claims: dict[str, list[MethodEntry]] = {}
        all_entry_points = self._entry_points()
        for kind in KINDS:
            for entry_point in all_entry_points.select(group=f"gradhub.{kind}"):
                distribution = getattr(entry_point, "dist", None)
                dist_name = canonical_distribution(distribution.metadata["Name"]) if distribution else None
                entry = MethodEntry(
                    name=entry_point.name.strip().lower(),
                    kind=kind,
                    distribution=dist_name,
                    version=distribution.version if distribution else None,
                    module=entry_point.value.strip(),
                )
                if dist_name in disabled:
                    self._disabled[entry.name] = entry
                    continue
                same = claims.setdefault(entry.name, [])
                if not any(e.distribution == entry.distribution and e.kind == entry.kind for e in same):
                    same.append(entry)
        entries: dict[str, MethodEntry] = {}
        for name, same in claims.items():
            entries[name] = same[0]
            if len(same) > 1:
                providers = ", ".join(f"{e.distribution} {e.version} (as {with_article(e.kind)})" for e in same)
                self._fail(
                    [name],
                    NameConflictError(
                        f"method name {name!r} is claimed by more than one installed plugin: {providers}. "
                        "Uninstall all but one, or skip the others with "
                        "GRADHUB_DISABLE_PLUGINS=<distribution>[,<distribution>...]."
                    ),
                )
            elif not _NAME.match(name) or not _MODULE.match(same[0].module or ""):
                entry = same[0]
                self._fail(
                    [name],
                    InvalidSpecError(
                        f"{entry.distribution} {entry.version} declares the entry point {name!r} = "
                        f"{entry.module!r} in group gradhub.{entry.kind}; a method name must match "
                        f"{_NAME.pattern} and the value must be a module path. Report this to the "
                        f"plugin's authors, or skip it with GRADHUB_DISABLE_PLUGINS={entry.distribution}."
                    ),
                )
        self._entries = entries
        if _env_flag("GRADHUB_STRICT"):
            self._load_all_locked()
            if self._failures:
                next(iter(self._failures.values())).raise_()
        return entries

    def _entry_points(self) -> importlib.metadata.EntryPoints:
        if self._path is None:
            return importlib.metadata.entry_points()
        found = [ep for dist in importlib.metadata.distributions(path=self._path) for ep in dist.entry_points]
        return importlib.metadata.EntryPoints(found)

    def _fail(self, names: list[str], error: GradhubError, cause: BaseException | None = None) -> None:
        for name in names:
            self._failures.setdefault(name, _Failure(type(error), str(error), cause))

    # loading ---------------------------------------------------------------------------

    def _load_module(self, distribution: str | None, module_name: str) -> None:
        key = (distribution, module_name)
        if key in self._loaded_modules:
            return
        self._loaded_modules.add(key)
        assert self._entries is not None
        declared = {
            name: entry
            for name, entry in self._entries.items()
            if entry.distribution == distribution and entry.module == module_name and name not in self._failures
        }
        if not declared:
            return
        names = sorted(declared)
        where = f"{distribution} {declared[names[0]].version}"
        remedy = (
            f"Reinstall or upgrade it (pip install --force-reinstall {distribution}), report it to its "
            f"authors, or skip it with GRADHUB_DISABLE_PLUGINS={distribution}."
        )
        try:
            module = importlib.import_module(module_name)
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # SystemExit too: a plugin never takes the host down
            sys.modules.pop(module_name, None)
            if type(error).__name__ == "ValidationError" and type(error).__module__.startswith("pydantic"):
                problems = "; ".join(
                    f"{'.'.join(map(str, problem['loc'])) or 'spec'}: {problem['msg']}"
                    for problem in error.errors()[:5]
                )
                message = (
                    f"method {'/'.join(map(repr, names))} from {where}: its entry module {module_name!r} builds an "
                    f"invalid spec ({problems}). {remedy}"
                )
                self._fail(names, InvalidSpecError(message), error)
                return
            message = (
                f"method {'/'.join(map(repr, names))} from {where} could not be loaded: importing its "
                f"entry module {module_name!r} raised {type(error).__name__}: {error}. {remedy}"
            )
            self._fail(names, PluginLoadError(message), error)
            return
        try:
            collected = {spec.name: spec for spec in specs_of_module(module, f"{module_name} ({where})")}
        except InvalidSpecError as error:
            self._fail(names, InvalidSpecError(f"{error} {remedy}"), error)
            return
        except KeyboardInterrupt:
            raise
        except BaseException as error:
            message = (
                f"method {'/'.join(map(repr, names))} from {where}: reading the specs of its entry module "
                f"{module_name!r} raised {type(error).__name__}: {error}. {remedy}"
            )
            self._fail(names, PluginLoadError(message), error)
            return
        for name, entry in declared.items():
            spec = collected.get(name)
            if spec is None or spec.kind.value != entry.kind:
                found = with_article(spec.kind.value) if spec else "no such method"
                self._fail(
                    [name],
                    InvalidSpecError(
                        f"{where} declares {name!r} as {with_article(entry.kind)} (entry point group gradhub."
                        f"{entry.kind}) but its entry module {module_name!r} defines {found}. "
                        f"The module must define a MethodSpec with name={name!r} and kind={entry.kind!r}. {remedy}"
                    ),
                )
                continue
            self._specs[name] = spec
            for alias in spec.aliases:
                self._aliases.setdefault(alias, name)
        undeclared = sorted(set(collected) - set(declared) - set(self._entries))
        if undeclared:
            warnings.warn(
                f"{module_name} ({where}) defines specs {undeclared} without declaring entry points "
                "for them; they are ignored. Declare each in the gradhub.<kind> entry-point group.",
                stacklevel=2,
            )

    def _load_all_locked(self) -> None:
        assert self._entries is not None
        for entry in list(self._entries.values()):
            if entry.module and entry.name not in self._failures:
                self._load_module(entry.distribution, entry.module)

    def load_all(self) -> None:
        """Give every entry its summary and load error, importing only entry modules not read before.

        What an entry module declares is cached per installed distribution, keyed by its name,
        version, dist-info and entry-module file (path, size and modification time): a warm
        ``gradhub list`` imports no entry module, and a plugin slow to import costs one cold list.
        The cache lives in ``$GRADHUB_CACHE_DIR`` (default ``~/.cache/gradhub``; ``GRADHUB_CACHE_DIR=off``
        disables it). ``gradhub.spec`` and ``gradhub.get`` always import the entry module.
        """
        with self._lock:
            entries = self._discover()
            cache = ListingCache.load()
            for distribution, module in sorted({(e.distribution, e.module) for e in entries.values() if e.module}):
                declared = [e for e in entries.values() if (e.distribution, e.module) == (distribution, module)]
                key = cache.key(declared[0], self._path)
                cached = cache.get(key)
                if cached is not None:
                    for name, record in cached.items():
                        if name in entries and name not in self._failures and name not in self._specs:
                            self._listed[name] = (record.get("summary"), record.get("error"))
                        for alias in record.get("aliases", ()):
                            self._aliases.setdefault(alias, name)
                    continue
                self._load_module(distribution, module)
                cache.put(key, {e.name: self._record(e.name) for e in declared})
            cache.save()

    def _record(self, name: str) -> dict[str, Any]:
        """What the listing cache keeps of a method: its summary and aliases, or its load error."""
        failure = self._failures.get(name)
        if failure is not None:
            return {"error": failure.message}
        spec = self._specs.get(name)
        return {"summary": spec.summary, "aliases": list(spec.aliases)} if spec else {}

    # lookups ---------------------------------------------------------------------------

    def _canonical(self, name: str) -> str:
        if not isinstance(name, str):
            raise TypeError(f"a method name is a string, not {type(name).__name__}: {name!r}")
        name = name.strip().lower()
        if name in self._local or (self._entries and name in self._entries):
            return name
        if name in self._aliases:
            return self._aliases[name]
        for local in self._local.values():
            if name in local.aliases:
                return local.name
        return name

    def spec(self, name: str) -> MethodSpec:
        """The :class:`~gradhub.specs.MethodSpec` of ``name`` (or an alias); never imports torch."""
        with self._lock:
            entries = self._discover()
            key = self._canonical(name)
            if key not in self._local and key not in entries and key not in self._aliases:
                self.load_all()  # aliases are known from specs: from the cache, or read once per plugin
                key = self._canonical(name)
            if key in self._local:
                return self._local[key]
            if key in self._failures:
                self._failures[key].raise_()
            entry = entries.get(key)
            if entry is None:
                raise self._not_found(name.strip().lower())
            if entry.module:
                self._load_module(entry.distribution, entry.module)
            if key in self._failures:
                self._failures[key].raise_()
            return self._specs[key]

    def get(self, name: str) -> Any:
        """What the method's spec targets: the optimizer class, layer class, function..."""
        with self._lock:
            spec = self.spec(name)
            if spec.name in self._targets:
                return self._targets[spec.name]
            try:
                target = import_target(spec.target)
            except Exception as error:
                entry = (self._entries or {}).get(spec.name)
                origin = f"{entry.distribution} {entry.version}" if entry else "an in-process registration"
                raise PluginLoadError(
                    f"method {spec.name!r} from {origin}: importing its target {spec.target!r} raised "
                    f"{type(error).__name__}: {error}. Check that the plugin's dependencies (torch among "
                    "them) are installed."
                ) from error
            self._targets[spec.name] = target
            return target

    def _not_found(self, name: str) -> MethodNotFoundError:
        if name in self._disabled:
            entry = self._disabled[name]
            return MethodNotFoundError(
                name,
                f"method {name!r} is provided by {entry.distribution} {entry.version}, which "
                "GRADHUB_DISABLE_PLUGINS disables; remove it from that variable to use it.",
            )
        if name in FIRST_PARTY_METHODS:
            slug = FIRST_PARTY_METHODS[name]
            return MethodNotFoundError(
                name,
                f"method {name!r} is a gradhub method whose plugin is not installed: pip install gradhub-{slug} "
                "(until it is on PyPI: `make dist` in a gradhub checkout, then pip install --index-url "
                f"file://<checkout>/dist/simple gradhub-{slug})",
            )
        known = set(self._entries or ()) | set(self._local) | set(self._aliases) | set(FIRST_PARTY_METHODS)
        close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        return MethodNotFoundError(
            name, f"no method named {name!r} is installed.{hint} `gradhub list` shows the installed methods."
        )

    def register(self, spec: MethodSpec | dict[str, Any]) -> MethodSpec:
        """Add a method in-process (a notebook, a plugin before it is packaged).

        Registering the same name again replaces the earlier in-process registration; a
        name an installed plugin provides raises :class:`~gradhub.errors.NameConflictError`.
        """
        validated = _validate_spec(spec, "register()")
        with self._lock:
            entries = self._discover()
            for name in (validated.name, *validated.aliases):
                owner = entries.get(name) or (entries.get(self._aliases[name]) if name in self._aliases else None)
                if owner is not None:
                    raise NameConflictError(
                        f"cannot register {validated.name!r}: the name {name!r} is already provided by "
                        f"{owner.distribution} {owner.version}. Choose another name."
                    )
            self._local[validated.name] = validated
            self._targets.pop(validated.name, None)
        return validated

    def unregister(self, name: str) -> None:
        """Remove an in-process registration (a no-op for unknown names)."""
        with self._lock:
            self._local.pop(name.strip().lower(), None)
            self._targets.pop(name.strip().lower(), None)

    def entries(self, kind: str | None = None, pattern: str | None = None) -> list[MethodEntry]:
        """Every available method, from the installed metadata and in-process registrations."""
        if kind is not None and kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; kinds are: {', '.join(KINDS)}")
        with self._lock:
            rows = []
            for name, entry in self._discover().items():
                failure = self._failures.get(name)
                spec = self._specs.get(name)
                listed_summary, listed_error = self._listed.get(name, (None, None))
                rows.append(
                    replace(
                        entry,
                        error=failure.message if failure else listed_error,
                        summary=spec.summary if spec else listed_summary,
                    )
                )
            for spec in self._local.values():
                rows.append(MethodEntry(spec.name, spec.kind.value, None, None, None, None, spec.summary))
        if kind is not None:
            rows = [row for row in rows if row.kind == kind]
        if pattern:
            lowered = pattern.lower()
            wildcard = any(char in lowered for char in "*?[")
            rows = [
                row for row in rows if (fnmatch.fnmatchcase(row.name, lowered) if wildcard else lowered in row.name)
            ]
        return sorted(rows, key=lambda row: (row.name, row.distribution or ""))


class ListingCache:
    """What each installed entry module declared, so listing need not import it again (see ``load_all``)."""

    VERSION = 1

    def __init__(self, path: Path | None, data: dict[str, Any]) -> None:
        self.path, self.data, self.changed = path, data, False

    @staticmethod
    def location() -> Path | None:
        configured = os.environ.get("GRADHUB_CACHE_DIR", "").strip()
        if configured.lower() in ("off", "0", "no", "false"):
            return None
        if configured:
            return Path(configured) / "listing.json"
        base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join(os.path.expanduser("~"), ".cache")
        return Path(base) / "gradhub" / "listing.json"

    @classmethod
    def load(cls) -> ListingCache:
        path = cls.location()
        data: dict[str, Any] = {}
        if path is not None:
            try:
                loaded = json.loads(path.read_text())
                if isinstance(loaded, dict) and loaded.get("version") == cls.VERSION:
                    data = loaded.get("distributions", {})
            except (OSError, ValueError):
                data = {}
        return cls(path, data)

    @staticmethod
    def key(entry: MethodEntry, search_path: list[str] | None) -> str | None:
        """Name, version, dist-info and entry-module file identity; None when the module cannot be found."""
        import importlib.util

        module = entry.module or ""
        try:
            found = importlib.util.find_spec(module) if "." not in module else None
        except (ImportError, ValueError):
            found = None
        origin = getattr(found, "origin", None)
        if not origin or not os.path.exists(origin):
            return None
        stat = os.stat(origin)
        return f"{entry.distribution}|{entry.version}|{search_path}|{module}|{origin}|{stat.st_size}|{stat.st_mtime_ns}"

    def get(self, key: str | None) -> dict[str, Any] | None:
        return self.data.get(key) if key is not None else None

    def put(self, key: str | None, records: dict[str, Any]) -> None:
        if key is not None and self.path is not None:
            self.data[key] = records
            self.changed = True

    def save(self) -> None:
        if not self.changed or self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            temporary.write_text(json.dumps({"version": self.VERSION, "distributions": self.data}))
            os.replace(temporary, self.path)
        except OSError:
            pass  # a read-only home: listing still works, it just is not cached


def specs_of_module(module: ModuleType, origin: str) -> list[MethodSpec]:
    """The method specs an entry module declares: its module-level ``MethodSpec`` objects.

    A global that is a spec, or a tuple or list of specs, counts. A protocol-1 entry module
    (a ``register_methods(register)`` function and no module-level specs) is still read,
    through that function, with a ``DeprecationWarning``.
    """
    from gradhub.specs import MethodSpec

    found: dict[int, MethodSpec] = {}
    for value in vars(module).values():
        if isinstance(value, MethodSpec):
            found.setdefault(id(value), value)
        elif isinstance(value, (tuple, list)) and value and all(isinstance(item, MethodSpec) for item in value):
            for item in value:
                found.setdefault(id(item), item)
    legacy = getattr(module, "register_methods", None)
    if not found and callable(legacy):
        warnings.warn(
            f"{origin} declares its methods through a register_methods hook (gradhub plugin protocol 1); "
            "protocol 2 reads module-level MethodSpec objects instead (specs/plugin-protocol.md, Migration)",
            DeprecationWarning,
            stacklevel=2,
        )
        registered: list[MethodSpec] = []
        legacy(register=lambda spec: registered.append(_validate_spec(spec, origin)))
        return registered
    return list(found.values())


def _validate_spec(spec: Any, origin: str) -> MethodSpec:
    from pydantic import ValidationError

    from gradhub.specs import MethodSpec

    if isinstance(spec, MethodSpec):
        return spec
    if not isinstance(spec, dict):
        raise InvalidSpecError(f"{origin} registered {type(spec).__name__} {spec!r}; expected a gradhub.MethodSpec")
    try:
        return MethodSpec.model_validate(spec)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, problem['loc'])) or 'spec'}: {problem['msg']}" for problem in error.errors()[:5]
        )
        raise InvalidSpecError(f"{origin} registered an invalid spec {spec.get('name')!r}: {problems}.") from None
