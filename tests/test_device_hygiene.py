"""Device hygiene of the plugins' implementation modules, by reading their source (no GPU needed).

Two rules, checked on the syntax tree of every ``plugins/*/gradhub_*/**/*.py`` except ``claims.py``
(claim checks take no device: the claim runner runs them on the host). ``examples.py`` is scanned:
the conformance suite calls ``example(device, dtype, seed)`` on every device it tests.

1. **A tensor factory names its device.** A call of a torch factory that creates a tensor from
   sizes or data (:data:`FACTORIES`: ``torch.tensor``, ``zeros``, ``full``, ``arange``, ``randn``,
   ...) must pass ``device=`` (not the literal ``None``). ``torch.*_like`` and ``tensor.new_*``
   take the device of their input and are never flagged; a call that spreads ``**kwargs`` may
   carry the device and is not flagged either. Without a device the tensor lands on the CPU (or
   torch's default device) whatever the inputs' device: on the first GPU it meets a CUDA tensor
   and fails, or costs a host-to-device copy. Code that means the host writes ``device="cpu"``.
2. **A generator is checked against the device it draws for.** A draw -- a torch function
   (``torch.randn``, ``torch.multinomial``, ``torch.nn.init.normal_``) or a tensor's random method
   (:data:`RANDOM_METHODS`: ``x.normal_``, ``w.multinomial``) called with ``generator=G``, G not the
   literal None; passing a generator on to another function is not a draw -- is accepted when, in
   the function that makes it (or a function enclosing it):

   a. ``require_generator(method, G, like, ...)`` is called on the same expression ``G``, directly or
      through a function of the same module that passes its parameter to ``require_generator``;
   b. the draw is made on the generator's device: ``device=G.device``, or ``device=D`` with ``D`` a name
      assigned an expression using ``G.device`` (``G.device if G is not None else x.device``); for a
      method draw on a fresh tensor (``torch.full(..., device=D).bernoulli_(generator=G)``), that
      tensor's ``device=``;
   c. ``G`` is made there, ``G = torch.Generator(device=D)`` (``.manual_seed(...)`` allowed), and a
      factory draw (rule 1's random factories) is made on the same ``device=D``, or both name no
      device or ``"cpu"`` (a host generator drawing host tensors); or
   d. ``G`` is a parameter of a private function (``_name``) of the module, every call of it in the
      module passes a ``G`` that is checked by (a) or (d) at the call site, and it has such a call.

   A draw that takes its device from a tensor argument (``multinomial``, ``bernoulli``,
   ``x.normal_``) can only be accepted by (a), (b) or (d).

Anything else is a finding, unless :data:`ALLOWED` lists it, keyed by file, function and call,
with the reason it is right; an entry that matches nothing fails the test, so the list stays true.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FACTORIES = frozenset(
    {
        # from data
        "tensor",
        "as_tensor",
        "asarray",
        "scalar_tensor",
        "sparse_coo_tensor",
        # from sizes
        "zeros",
        "ones",
        "full",
        "empty",
        "empty_strided",
        "eye",
        "arange",
        "range",
        "linspace",
        "logspace",
        "tril_indices",
        "triu_indices",
        "hann_window",
        "hamming_window",
        "bartlett_window",
        "blackman_window",
        "kaiser_window",
        # random, from sizes
        "rand",
        "randn",
        "randint",
        "randperm",
        "normal",
    }
)
"""torch functions that create a tensor from sizes or Python data: they need ``device=``."""

RANDOM_FACTORIES = frozenset({"rand", "randn", "randint", "randperm", "normal"})
"""Rule 1's factories that draw: the device of the draw is their ``device=`` (rule 2, case c)."""

RANDOM_METHODS = frozenset(
    {
        "normal_",
        "uniform_",
        "random_",
        "bernoulli_",
        "bernoulli",
        "exponential_",
        "geometric_",
        "cauchy_",
        "log_normal_",
        "multinomial",
    }
)
"""Tensor methods that draw from their ``generator=`` (on the tensor's device)."""

SCANNED_EXCLUDED = ("claims.py",)


@dataclass(frozen=True)
class Finding:
    path: str
    function: str
    """Qualified name of the enclosing function (``Class.method``, ``outer.inner``), ``<module>`` at top level."""
    rule: str
    """``"factory"`` or ``"generator"``."""
    call: str
    """The factory (``torch.full``) or the generator expression (``generator``, ``self.generator``)."""
    line: int

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.path, self.function, self.rule, self.call)

    def __str__(self) -> str:
        what = {
            "factory": f"{self.call}(...) without device=",
            "generator": f"draws from generator={self.call} without checking its device",
        }[self.rule]
        return f"{self.path}:{self.line} in {self.function}: {what}"


def _is_none(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    return None


def _spreads(call: ast.Call) -> bool:
    return any(keyword.arg is None for keyword in call.keywords)


def _same(a: ast.AST | None, b: ast.AST | None) -> bool:
    return a is not None and b is not None and ast.dump(a) == ast.dump(b)


def _host(device: ast.expr | None) -> bool:
    """No device named, or the literal ``"cpu"``."""
    return device is None or _is_none(device) or (isinstance(device, ast.Constant) and device.value == "cpu")


class _Module:
    """One source file: its torch aliases, its functions, and the two rules."""

    def __init__(self, source: str, path: str) -> None:
        self.path = path
        self.tree = ast.parse(source)
        self.torch_names: set[str] = set()  # names bound to the torch module
        self.imported: dict[str, str] = {}  # local name -> torch function name (from torch import randn)
        self.checkers: dict[str, set[str]] = {}  # function -> its parameters it passes to require_generator
        self.functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}  # module-level functions by name
        self.parents: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == "torch":
                        self.torch_names.add(alias.asname or "torch")
            elif isinstance(node, ast.ImportFrom) and node.module == "torch" and node.level == 0:
                for alias in node.names:
                    self.imported[alias.asname or alias.name] = alias.name
        for node in self.tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.functions[node.name] = node
        self._find_checkers()

    # --- names ---------------------------------------------------------------------------------

    def torch_function(self, call: ast.Call) -> str | None:
        """``"full"`` for ``torch.full(...)``, ``"nn.init.normal_"`` for ``torch.nn.init.normal_(...)`` (or
        through an alias, ``from torch import nn``), else None."""
        parts, node = [], call.func
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        if node.id in self.torch_names:
            return ".".join(reversed(parts)) or None
        if node.id in self.imported:
            return ".".join([self.imported[node.id], *reversed(parts)])
        return None

    def is_draw(self, call: ast.Call) -> bool:
        """A torch function (``torch.randn``, ``torch.nn.init.normal_``) or a tensor's random method
        (``x.normal_``, ``w.multinomial``) called with a ``generator=`` other than None."""
        generator = _keyword(call, "generator")
        if generator is None or _is_none(generator):
            return False
        func = call.func
        return self.torch_function(call) is not None or (
            isinstance(func, ast.Attribute) and func.attr in RANDOM_METHODS
        )

    def enclosing_functions(self, node: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda]:
        """The functions around ``node``, innermost first."""
        chain = []
        while node in self.parents:
            node = self.parents[node]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                chain.append(node)
        return chain

    def qualname(self, node: ast.AST) -> str:
        names = []
        while node in self.parents:
            node = self.parents[node]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.append(node.name)
            elif isinstance(node, ast.Lambda):
                names.append("<lambda>")
        return ".".join(reversed(names)) or "<module>"

    @staticmethod
    def _parameters(function: ast.AST) -> list[str]:
        arguments = function.args  # type: ignore[attr-defined]
        return [a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)]

    @staticmethod
    def _argument(call: ast.Call, function: ast.AST, parameter: str) -> ast.expr | None:
        """The expression ``call`` passes for ``function``'s ``parameter``, by keyword or position."""
        found = _keyword(call, parameter)
        if found is not None:
            return found
        arguments = function.args  # type: ignore[attr-defined]
        positional = [a.arg for a in (*arguments.posonlyargs, *arguments.args)]
        if parameter in positional and positional.index(parameter) < len(call.args):
            argument = call.args[positional.index(parameter)]
            return None if isinstance(argument, ast.Starred) else argument
        return None

    # --- rule 2's pieces -------------------------------------------------------------------------

    @staticmethod
    def _require_generator_argument(call: ast.Call) -> ast.expr | None:
        func = call.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        if name != "require_generator":
            return None
        return _keyword(call, "generator") or (call.args[1] if len(call.args) > 1 else None)

    def _find_checkers(self) -> None:
        """Module functions that pass one of their parameters to ``require_generator`` (directly or on)."""
        changed = True
        while changed:
            changed = False
            for name, function in self.functions.items():
                parameters = set(self._parameters(function))
                checked = self.checkers.setdefault(name, set())
                for node in ast.walk(function):
                    if not isinstance(node, ast.Call):
                        continue
                    for expression in self._checked_arguments(node):
                        name = expression.id if isinstance(expression, ast.Name) else None
                        if name in parameters and name not in checked:
                            checked.add(name)
                            changed = True

    def _checked_arguments(self, call: ast.Call) -> list[ast.expr]:
        """What ``call`` checks: require_generator's generator, or what it passes to a module checker."""
        direct = self._require_generator_argument(call)
        if direct is not None:
            return [direct]
        if isinstance(call.func, ast.Name) and call.func.id in self.functions:
            callee = self.functions[call.func.id]
            return [
                argument
                for parameter in self.checkers.get(call.func.id, ())
                if (argument := self._argument(call, callee, parameter)) is not None
            ]
        return []

    def _checks_in(self, scopes: list[ast.AST], generator: ast.expr) -> bool:
        """Case (a): one of ``scopes`` checks ``generator`` (require_generator, or a module checker)."""
        for scope in scopes:
            for node in ast.walk(scope):
                if isinstance(node, ast.Call) and any(_same(e, generator) for e in self._checked_arguments(node)):
                    return True
        return False

    def _made_here(self, scopes: list[ast.AST], generator: ast.expr) -> tuple[bool, ast.expr | None]:
        """Case (c): ``generator`` is a name bound to ``torch.Generator(...)`` in ``scopes``; and its device."""
        if not isinstance(generator, ast.Name):
            return False, None
        for scope in scopes:
            for node in ast.walk(scope):
                if not isinstance(node, ast.Assign) or not any(
                    isinstance(target, ast.Name) and target.id == generator.id for target in node.targets
                ):
                    continue
                value = node.value
                while (
                    isinstance(value, ast.Call)
                    and isinstance(value.func, ast.Attribute)
                    and value.func.attr == "manual_seed"
                ):
                    value = value.func.value
                if isinstance(value, ast.Call) and self.torch_function(value) == "Generator":
                    return True, _keyword(value, "device") or (value.args[0] if value.args else None)
        return False, None

    def _inherited(self, function: ast.AST, generator: ast.expr, seen: frozenset[str]) -> bool:
        """Case (d): ``generator`` is a parameter of a private module function whose callers all check it."""
        if not (
            isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
            and function.name.startswith("_")
            and self.functions.get(function.name) is function
            and isinstance(generator, ast.Name)
            and generator.id in self._parameters(function)
            and function.name not in seen
        ):
            return False
        calls = [
            node
            for node in ast.walk(self.tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == function.name
        ]
        if not calls:
            return False
        for call in calls:
            argument = self._argument(call, function, generator.id)
            if argument is None or _is_none(argument):
                continue  # this caller draws from the global generator
            scopes = self.enclosing_functions(call) or [self.tree]
            if not (
                self._checks_in(scopes, argument)
                or any(self._inherited(scope, argument, seen | {function.name}) for scope in scopes)
            ):
                return False
        return True

    def _draw_device(self, call: ast.Call) -> ast.expr | None:
        """Where a draw happens: its ``device=``; for ``x.bernoulli_(...)`` on ``x = torch.full(..., device=D)``
        (or ``torch.empty_like(t, device=D)``), that factory's D."""
        device = _keyword(call, "device")
        receiver = call.func.value if isinstance(call.func, ast.Attribute) else None
        if device is None and isinstance(receiver, ast.Call) and self.torch_function(receiver) is not None:
            device = _keyword(receiver, "device")
        return device

    def _on_generator_device(self, scopes: list[ast.AST], device: ast.expr | None, generator: ast.expr) -> bool:
        """Case (b): ``device`` is ``G.device``, or a name assigned an expression that uses ``G.device``
        (``where = generator.device if generator is not None else x.device``)."""

        def uses(expression: ast.AST) -> bool:
            return any(
                isinstance(node, ast.Attribute) and node.attr == "device" and _same(node.value, generator)
                for node in ast.walk(expression)
            )

        if device is None:
            return False
        if isinstance(device, ast.Name):
            return any(
                isinstance(node, ast.Assign)
                and any(isinstance(target, ast.Name) and target.id == device.id for target in node.targets)
                and uses(node.value)
                for scope in scopes
                for node in ast.walk(scope)
            )
        return uses(device)

    def generator_checked(self, call: ast.Call, generator: ast.expr) -> bool:
        scopes: list[ast.AST] = list(self.enclosing_functions(call)) or [self.tree]
        if self._checks_in(scopes, generator):
            return True
        device = self._draw_device(call)
        if self._on_generator_device(scopes, device, generator):
            return True
        if self.torch_function(call) in RANDOM_FACTORIES:
            made, made_on = self._made_here(scopes, generator)
            if made and ((_host(made_on) and _host(device)) or _same(made_on, device)):
                return True
        return any(self._inherited(scope, generator, frozenset()) for scope in scopes)

    # --- the scan --------------------------------------------------------------------------------

    def findings(self) -> list[Finding]:
        found = []
        for node in ast.walk(self.tree):
            if not isinstance(node, ast.Call):
                continue
            name = self.torch_function(node)
            if name in FACTORIES and not (name == "normal" and not _normal_from_sizes(node)):
                device = _keyword(node, "device")
                if (device is None or _is_none(device)) and not _spreads(node):
                    found.append(Finding(self.path, self.qualname(node), "factory", f"torch.{name}", node.lineno))
            generator = _keyword(node, "generator")
            if self.is_draw(node) and not self.generator_checked(node, generator):
                found.append(Finding(self.path, self.qualname(node), "generator", ast.unparse(generator), node.lineno))
        return sorted(found, key=lambda f: (f.path, f.line))


def _normal_from_sizes(call: ast.Call) -> bool:
    """``torch.normal(mean, std, size)`` creates from sizes; ``torch.normal(mean_tensor, std)`` does not."""
    return _keyword(call, "size") is not None or len(call.args) >= 3


def scan_source(source: str, path: str = "<string>") -> list[Finding]:
    """Both rules over one module's source."""
    return _Module(source, path).findings()


def scanned_files() -> list[Path]:
    return sorted(
        path
        for path in ROOT.glob("plugins/*/gradhub_*/**/*.py")
        if path.name not in SCANNED_EXCLUDED and "tests" not in path.relative_to(ROOT).parts
    )


ALLOWED: dict[tuple[str, str, str, str], str] = {
    ("plugins/diffusion/gradhub_diffusion/paths.py", "GaussianPath._time", "factory", "torch.as_tensor"): (
        "the public alpha(t), sigma(t), ... on a Python number return a float64 tensor on torch's default device, "
        "as documented; a tensor t keeps its device (samplers and conversions never come here with a number)"
    ),
    ("plugins/hessian-spectrum/gradhub_hessian_spectrum/lanczos.py", "rademacher", "generator", "generator"): (
        "takes a device, not a tensor: its callers (spectrum.py's _check_generator, and lanczos's "
        "require_generator for its restarts) check the generator against the parameters' device first"
    ),
    (
        "plugins/normalized-lrgd/gradhub_normalized_lrgd/optimizer.py",
        "NormalizedLRGD.step",
        "factory",
        "torch.as_tensor",
    ): (
        "the closure's loss: a tensor keeps its device; a Python number becomes a host scalar that _step_scale "
        "and _require_finite move to the parameters' device"
    ),
    ("plugins/refined-schedules/gradhub_refined_schedules/regression.py", "*", "factory", "*"): (
        "the claim checks' testbed (imported by claims.py only): runs on the host by design"
    ),
}
"""(file, function, rule, call) -> why it is right; ``"*"`` for the function or the call covers a whole file's
findings of that rule. Keep each reason short and true."""


def allowed(finding: Finding) -> str | None:
    """The reason ``ALLOWED`` gives for ``finding``, if any."""
    for (path, function, rule, call), reason in ALLOWED.items():
        if (
            (path, rule) == (finding.path, finding.rule)
            and function in ("*", finding.function)
            and call
            in (
                "*",
                finding.call,
            )
        ):
            return reason
    return None


def scan_plugins() -> list[Finding]:
    found = []
    for path in scanned_files():
        found.extend(scan_source(path.read_text(), str(path.relative_to(ROOT))))
    return found


# --- the scanner on planted sources -------------------------------------------------------------

PLANTED = """
import torch

def weights(means):
    count = means.shape[0]
    return torch.full((count,), 1 / count, dtype=means.dtype{device})
"""


def test_flags_a_planted_device_less_full() -> None:
    (finding,) = scan_source(PLANTED.format(device=""), "planted.py")
    assert (finding.function, finding.rule, finding.call, finding.line) == ("weights", "factory", "torch.full", 6)
    assert scan_source(PLANTED.format(device=", device=means.device")) == []
    assert len(scan_source(PLANTED.format(device=", device=None"))) == 1  # device=None names no device


def test_factories_by_alias_and_the_like_functions() -> None:
    source = """
import torch as th
from torch import zeros as z, randn

def f(x, n, **factory):
    a = th.arange(n)                        # flagged
    b = z(n)                                # flagged
    c = randn(n, device="cpu")              # names the host: fine
    d = th.zeros_like(x) + x.new_zeros(n)   # the input's device: fine
    e = th.normal(x, 1.0)                   # from a tensor: fine
    g = th.normal(0.0, 1.0, size=(n,))      # from sizes: flagged
    h = th.ones(n, **factory)               # may carry the device: fine
"""
    assert [(f.call, f.line) for f in scan_source(source)] == [
        ("torch.arange", 6),
        ("torch.zeros", 7),
        ("torch.normal", 11),
    ]


GENERATOR_CASES = """
import torch
from gradhub.kinds.inputs import require_generator

def unchecked(x, generator):
    return torch.randn(x.shape, generator=generator, device=x.device)

def checked(x, generator):
    require_generator("m", generator, x, "x")
    return torch.randn(x.shape, generator=generator, device=x.device)

def on_its_device(x, generator):
    return torch.randn(x.shape, generator=generator, device=generator.device).to(x.device)

def made_here(x, seed):
    generator = torch.Generator(device=x.device).manual_seed(seed)
    return torch.randn(x.shape, generator=generator, device=x.device)

def made_on_the_host(n, seed):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, generator=generator, device="cpu")

def made_elsewhere(x, seed):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(x.shape, generator=generator, device=x.device)

def made_here_tensor_draw(weights, seed):
    generator = torch.Generator().manual_seed(seed)
    return torch.multinomial(weights, 4, generator=generator)

def _check(method, x, generator):
    require_generator(method, generator, x, "x")

def through_a_checker(x, generator):
    _check("m", x, generator)
    return x.normal_(generator=generator)

def _noise(x, generator):
    return torch.randn(x.shape, generator=generator, device=x.device)

def public(x, generator=None):
    require_generator("m", generator, x, "x")
    return _noise(x, generator) + _noise(x, None)

def _orphan_noise(x, generator):
    return torch.randn(x.shape, generator=generator, device=x.device)

def _half_checked(x, generator):
    return torch.randn(x.shape, generator=generator, device=x.device)

def caller_one(x, generator):
    require_generator("m", generator, x, "x")
    return _half_checked(x, generator)

def caller_two(x, generator):
    return _half_checked(x, generator)

def on_a_derived_device(x, generator):
    where = generator.device if generator is not None else x.device
    mask = torch.full(x.shape, 0.5, device=where).bernoulli_(generator=generator)
    return torch.rand(x.shape, generator=generator, device=where).to(x.device) + mask.to(x.device)

def on_an_unrelated_device(x, generator):
    where = x.device
    return torch.full(x.shape, 0.5, device=where).bernoulli_(generator=generator)

def passes_it_on(x, generator):
    return public(x, generator=generator)

def init_draw(weight, generator):
    return torch.nn.init.normal_(weight, generator=generator)

def nested(x, generator):
    require_generator("m", generator, x, "x")

    def inner():
        return torch.randn(x.shape, generator=generator, device=x.device)

    return inner()
"""


def test_generator_rule_cases() -> None:
    flagged = {f.function for f in scan_source(GENERATOR_CASES) if f.rule == "generator"}
    expected = {
        "unchecked",
        "made_elsewhere",
        "made_here_tensor_draw",
        "_orphan_noise",
        "_half_checked",
        "init_draw",
        "on_an_unrelated_device",
    }
    assert flagged == expected


# --- the plugins ----------------------------------------------------------------------------------


def test_scans_the_plugins() -> None:
    files = scanned_files()
    names = {str(path.relative_to(ROOT)) for path in files}
    assert "plugins/diffusion/gradhub_diffusion/gmm.py" in names
    assert "plugins/harpg/gradhub_harpg/examples.py" in names
    assert not any(name.endswith("/claims.py") for name in names)
    assert len(files) > 40


def test_plugins_are_device_clean() -> None:
    found = scan_plugins()
    unexplained = [str(finding) for finding in found if allowed(finding) is None]
    assert unexplained == [], "\n".join(["device hygiene (see this test's docstring for the rules):", *unexplained])


def test_allow_list_is_current() -> None:
    found = scan_plugins()
    stale = [
        key
        for key in ALLOWED
        if not any(
            (key[0], key[2]) == (f.path, f.rule) and key[1] in ("*", f.function) and key[3] in ("*", f.call)
            for f in found
        )
    ]
    assert stale == [], f"allow-list entries that match nothing (remove them): {stale}"
    assert all(key[2] in ("factory", "generator") and reason.strip() for key, reason in ALLOWED.items())
