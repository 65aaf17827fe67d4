"""The optimizer kind: ``gradhub.get(name)`` is a ``torch.optim.Optimizer`` subclass.

Interface: ``cls(params, **hyperparameters)``; ``step(closure=None)`` returns the
closure's loss; param groups; an exact ``state_dict`` round trip; parameters without a
gradient are left alone. :class:`Optimizer` is an optional base class that brings the
conventions every gradhub optimizer follows: hyperparameters validated against the
spec's model (per param group, before anything changes), unknown keywords rejected
with the accepted list, sparse gradients and complex parameters rejected by name.

The example (``MethodSpec.example``) returns an :class:`OptimizerExample`; most
optimizers use :func:`standard_problem`, a small conv + BatchNorm classifier.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from gradhub.errors import GradhubError, HyperparameterError, UnsupportedInputError
from gradhub.hyperparameters import (
    Hyperparameters,
    bind_arguments,
    hyperparameter_signature,
    validate_hyperparameters,
    with_hyperparameter_docs,
)

__all__ = [
    "ElementwiseOptimizer",
    "FusedFallbackWarning",
    "Optimizer",
    "OptimizerExample",
    "compiling",
    "default_foreach",
    "fused_eligible",
    "is_optimizer_target",
    "nonfinite_count",
    "standard_problem",
    "step_count",
]

StepPath = Literal["single", "foreach", "fused", "compiled"]
FUSED_DTYPES = (torch.float32, torch.float64)


@dataclass(kw_only=True)
class OptimizerExample:
    """A seeded problem to optimise: what the conformance suite and demos run."""

    model: nn.Module
    loss: Callable[[], torch.Tensor]
    """Evaluates the objective on fixed data (no randomness); differentiable in the model."""
    hparams: dict[str, Any] = field(default_factory=dict)
    """Hyperparameters under which ``steps`` steps lower the loss."""
    steps: int = 10


def standard_problem(
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> tuple[nn.Module, Callable[[], torch.Tensor]]:
    """A conv-BatchNorm-ReLU ×2 + linear classifier on 32 synthetic 8x8 images, 4 classes.

    It has scale-invariant weights (convolutions followed by BatchNorm), plain weights
    (the linear layer) and 1-D parameters (BatchNorm affine, biases), so it exercises
    what optimizers treat differently. The labels come from a fixed random teacher, so
    the loss can go down.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Linear(32, 4),
        )
    inputs = torch.randn(32, 3, 8, 8, generator=generator)
    teacher = torch.randn(3 * 8 * 8, 4, generator=generator)
    labels = (inputs.flatten(1) @ teacher).argmax(1)
    model = model.to(device=device, dtype=dtype)
    inputs = inputs.to(device=device, dtype=dtype)
    labels = labels.to(device)

    def loss() -> torch.Tensor:
        return nn.functional.cross_entropy(model(inputs), labels)

    return model, loss


def is_optimizer_target(target: Any) -> bool:
    return isinstance(target, type) and issubclass(target, torch.optim.Optimizer)


def default_foreach(params: Iterable[torch.Tensor]) -> bool:
    """``foreach=None`` resolves to True when every tensor is on a CPU or CUDA device.

    Unlike torch.optim (which picks the per-tensor loop on CPU), gradhub's multi-tensor
    paths are measured faster on CPU too; other devices get the per-tensor path.
    """
    return all(p.device.type in ("cpu", "cuda") for p in params)


class Optimizer(torch.optim.Optimizer):
    """Base class for gradhub optimizers: bind a subclass to its spec and the model does the rest.

    ``class AdamP(ElementwiseOptimizer): spec = ADAMP`` (the :class:`~gradhub.specs.MethodSpec`
    from the plugin's entry module) gives the class, derived from ``spec.params`` alone:

    * the constructor ``cls(params, lr=..., betas=..., *, foreach=None, ...)``: its signature
      (``__signature__``, what ``help()`` and IDEs show) lists every field of the model with the
      model's default; arguments are bound and validated against the model, and the validated
      values become ``defaults``. A subclass that needs more set-up overrides
      ``__init__(self, params, *args, **kwargs)`` and calls ``super().__init__`` first;
    * :attr:`method` (``spec.name``, for error messages) and :attr:`hyperparameters` (the model);
    * a docstring section listing the hyperparameters, their defaults and bounds;
    * :meth:`options`: a param group's hyperparameters as one validated, frozen model instance,
      rebuilt (and so re-validated) only when the group's values change.

    Param groups are validated when added; sparse gradients and non-floating parameters are
    rejected by name. The protocol-1 shape (``method``/``hyperparameters`` class attributes and an
    explicit ``__init__`` calling ``super().__init__(params, defaults)``) still works.
    """

    spec: ClassVar[Any] = None
    method: ClassVar[str]
    hyperparameters: ClassVar[type[Hyperparameters]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own_spec = cls.__dict__.get("spec")
        own_init = cls.__dict__.get("__init__")
        spec = getattr(cls, "spec", None)
        if spec is None:
            if own_init is not None:
                _check_legacy_arguments(cls, own_init)  # protocol 1: an explicit __init__ builds defaults
            return
        if own_spec is not None:
            cls.method = spec.name
            cls.hyperparameters = spec.params
            cls.__doc__ = with_hyperparameter_docs(cls.__doc__, spec.params)
        if own_spec is None and own_init is None:
            return
        params = inspect.Parameter("params", inspect.Parameter.POSITIONAL_OR_KEYWORD)
        signature = hyperparameter_signature(spec.params, leading=[params])
        if own_init is not None:
            # A constructor of its own that writes a default shows it: what users see is what runs (and
            # the suite's signature_matches_model check compares it with the model).
            written = inspect.signature(own_init).parameters
            signature = signature.replace(
                parameters=[
                    parameter.replace(default=written[name].default)
                    if name in written and written[name].default is not inspect.Parameter.empty
                    else parameter
                    for name, parameter in signature.parameters.items()
                ]
            )
        cls.__signature__ = signature  # type: ignore[attr-defined]

    def __init__(self, params: Any, *args: Any, **kwargs: Any) -> None:
        cls = type(self)
        if len(args) == 1 and not kwargs and isinstance(args[0], dict) and getattr(cls, "spec", None) is None:
            defaults = args[0]  # protocol 1: the subclass built ``defaults`` itself
        else:
            signature = getattr(cls, "__signature__", None)
            if signature is None or getattr(cls, "spec", None) is None:
                raise TypeError(
                    f"{cls.__name__}: a gradhub optimizer declares its spec (spec = MY_METHOD, the MethodSpec of "
                    "its entry module), from which its signature and defaults are derived"
                )
            accepted = list(cls.hyperparameters.model_fields)
            bound = bind_arguments(cls.method, signature, (params, *args), kwargs, accepted, cls.hyperparameters)
            values = {name: value for name, value in bound.arguments.items() if name != "params"}
            defaults = validate_hyperparameters(cls.method, cls.hyperparameters, values)
            self._check_path_flags(defaults)
        self._options_cache: dict[int, tuple[tuple[Any, ...], Hyperparameters]] = {}
        super().__init__(params, defaults)

    def _check_path_flags(self, values: dict[str, Any]) -> None:
        if values.get("fused") and values.get("foreach"):
            raise HyperparameterError(
                self.method, "fused", True, "False or None when foreach=True (they select different paths)"
            )

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Validate the group's hyperparameters and parameters, then add it (atomically)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"{self.method}: a param group is a dict, not {type(param_group).__name__}")
        overrides = {key: value for key, value in param_group.items() if key != "params"}
        known = self.hyperparameters.model_fields
        merged = {**{k: v for k, v in self.defaults.items() if k in known}, **overrides}
        validated = validate_hyperparameters(
            self.method, self.hyperparameters, {k: v for k, v in merged.items() if k in known}
        )
        self._check_path_flags(merged)
        params = param_group["params"]
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        spec = getattr(type(self), "spec", None)
        declared = tuple(spec.dtypes) if spec is not None else ("float16", "bfloat16", "float32", "float64")
        for index, param in enumerate(params):
            if isinstance(param, torch.Tensor) and (
                not param.is_floating_point() or str(param.dtype).removeprefix("torch.") not in declared
            ):
                raise UnsupportedInputError(
                    self.method,
                    f"parameter {index} of param group {len(self.param_groups)}",
                    f"dtype {param.dtype}",
                    f"parameters must be real floating point, of a dtype {self.method} declares: {', '.join(declared)}",
                )
        super().add_param_group({**param_group, "params": params, **{k: validated[k] for k in overrides if k in known}})

    def options(self, group: dict[str, Any]) -> Hyperparameters:
        """The group's hyperparameters as one frozen instance of the method's model.

        What the path functions receive. Built once per group and reused while the group's values
        are unchanged (a comparison, no validation, per step); when a value was changed in
        ``param_groups`` (a scheduler, a user, ``load_state_dict``) it is validated again, so a
        bad value raises :class:`~gradhub.errors.HyperparameterError` before the step changes anything.
        """
        model = self.hyperparameters
        key = tuple(group.get(name) for name in model.model_fields)
        cache = self.__dict__.setdefault("_options_cache", {})
        cached = cache.get(id(group))
        if cached is not None and _same_values(cached[0], key):
            return cached[1]
        values = {name: group[name] for name in model.model_fields if name in group}
        checked = validate_hyperparameters(self.method, model, values)
        self._check_path_flags(checked)
        options = model.model_construct(**checked)
        cache[id(group)] = (key, options)
        return options

    def state_keys(self) -> set[str] | None:
        """The keys of a parameter's state this method keeps (None: not checked); ``load_state_dict`` checks them."""
        return None

    def shaped_state_names(self) -> tuple[str, ...]:
        """State tensors shaped like their parameter (``load_state_dict`` checks their shapes)."""
        return ()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state after :meth:`check_state_dict`: one that fails leaves the optimizer as it was."""
        self.check_state_dict(state_dict)
        super().load_state_dict(state_dict)

    def check_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Check a state against this method without loading it; raise a gradhub error naming what is wrong.

        Its structure must match this optimizer's param groups; the groups' hyperparameters are
        validated against the model; each parameter's state must have exactly :meth:`state_keys` (a
        state saved by a torch optimizer is named as such) and :meth:`shaped_state_names` shaped like
        their parameter. An optimizer with state of its own kind checks that after calling this.
        """
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise UnsupportedInputError(
                self.method, "state_dict", type(state_dict).__name__, "a dict with 'state' and 'param_groups'"
            )
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise UnsupportedInputError(
                self.method,
                "state_dict",
                f"{len(groups)} param groups",
                f"{len(self.param_groups)}, as this optimizer has",
            )
        parameters: dict[Any, torch.Tensor] = {}
        for index, (saved, group) in enumerate(zip(groups, self.param_groups)):
            if len(saved.get("params", ())) != len(group["params"]):
                raise UnsupportedInputError(
                    self.method,
                    f"state_dict param group {index}",
                    f"{len(saved.get('params', ()))} parameters",
                    f"{len(group['params'])}, as this optimizer's group {index} has",
                )
            checked = self.saved_hyperparameters(saved)
            self._check_path_flags(checked)
            parameters.update(zip(saved["params"], group["params"]))
        wanted = self.state_keys()
        for key, state in state_dict["state"].items():
            param = parameters.get(key)
            if param is None or not isinstance(state, dict):
                continue
            if wanted is not None and set(state) != wanted:
                origin = _torch_optimizer_with_state(set(state))
                saved_by = f"this state was saved by {origin}; " if origin else ""
                missing, extra = sorted(wanted - set(state)), sorted(set(state) - wanted)
                raise UnsupportedInputError(
                    self.method,
                    f"state of parameter {key}",
                    f"keys {sorted(state)}",
                    f"{saved_by}{self.method} keeps {sorted(wanted)}"
                    + (f" (missing {missing})" if missing else "")
                    + (f" (unknown {extra})" if extra else ""),
                )
            for name, value in state.items():
                shaped = name in self.shaped_state_names()
                if shaped and isinstance(value, torch.Tensor) and value.shape != param.shape:
                    raise UnsupportedInputError(
                        self.method,
                        f"state {name!r} of parameter {key}",
                        f"shape {tuple(value.shape)}",
                        f"the parameter's shape {tuple(param.shape)}",
                    )

    def saved_hyperparameters(self, saved_group: dict[str, Any]) -> dict[str, Any]:
        """A saved param group's hyperparameters, validated: its values over this optimizer's defaults.

        Only the model's fields are read: torch's ``__setstate__`` (every load, deepcopy or
        unpickling) adds its own keys such as ``differentiable`` to ``defaults``, and a saved group
        may carry keys of another implementation. Raises :class:`HyperparameterError` naming the value.
        """
        model = self.hyperparameters
        values = {name: value for name, value in self.defaults.items() if name in model.model_fields}
        values.update({name: saved_group[name] for name in model.model_fields if name in saved_group})
        return validate_hyperparameters(self.method, model, values)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Fill hyperparameters missing from loaded param groups with this optimizer's defaults.

        ``load_state_dict`` ends here; a state dict saved by another implementation of the
        method (the official one, say) lacks the options gradhub adds, like ``foreach``.
        """
        super().__setstate__(state)
        self.__dict__["_options_cache"] = {}
        for group in self.param_groups:
            for name, value in self.defaults.items():
                group.setdefault(name, value)

    @staticmethod
    def evaluate_closure(closure: Callable[[], Any] | None) -> Any:
        """The closure's loss, computed with gradients enabled (``step`` runs under no_grad)."""
        if closure is None:
            return None
        with torch.enable_grad():
            return closure()

    def parameters_with_gradients(self) -> list[list[torch.Tensor]]:
        """Per param group, the parameters that have a gradient.

        Every group is checked before any is returned, so a sparse gradient raises
        :class:`~gradhub.errors.UnsupportedInputError` before the step changes anything.
        """
        groups = []
        for group_index, group in enumerate(self.param_groups):
            for param_index, param in enumerate(group["params"]):
                if param.grad is not None and param.grad.is_sparse:
                    raise UnsupportedInputError(
                        self.method,
                        f"sparse gradient (parameter {param_index} of param group {group_index})",
                        f"layout {param.grad.layout}",
                        "use dense gradients (e.g. nn.Embedding(sparse=False))",
                    )
            groups.append([param for param in group["params"] if param.grad is not None])
        return groups

    def require_finite_gradients(self, gradients: Iterable[torch.Tensor | None], what: str = "gradient") -> None:
        """Every entry of ``gradients`` finite, or :class:`~gradhub.errors.UnsupportedInputError` (one host read).

        For a step whose update would spread one NaN or infinity beyond its own entries (a global
        norm, a direction mixed across coordinates): call it before the step changes anything, and
        the parameters and state stay as they were. ``what`` names the tensors in the message.
        """
        tensors = [gradient for gradient in gradients if gradient is not None]
        count = nonfinite_count(tensors)
        if count is not None and (bad := int(count)):
            raise UnsupportedInputError(
                self.method,
                f"{what} values",
                f"{bad} of {sum(t.numel() for t in tensors)} entries non-finite",
                f"a finite {what}: one NaN or infinity would reach every parameter through this step, so it was "
                "not taken and the parameters and state are as they were",
            )

    @staticmethod
    def use_foreach(group: dict[str, Any], params: list[torch.Tensor]) -> bool:
        """The group's ``foreach`` setting, with ``None`` resolved by :func:`default_foreach`."""
        foreach = group.get("foreach")
        return default_foreach(params) if foreach is None else bool(foreach)

    # protocol-1 spellings, kept for third-party optimizers written against gradhub 0.1
    _evaluate = evaluate_closure
    _parameters_with_gradients = parameters_with_gradients
    _use_foreach = use_foreach


def nonfinite_count(tensors: Sequence[torch.Tensor]) -> torch.Tensor | None:
    """How many NaN or infinite entries ``tensors`` hold, as a 0-d tensor on the first one's device.

    No host sync (read it once, after everything else the step needs from the host); the shards
    of a DTensor (FSDP2) are summed over its mesh, so every rank sees the same count. None when
    there are no tensors.
    """
    if not tensors:
        return None
    device = tensors[0].device
    count = torch.stack([(~torch.isfinite(tensor)).sum().to(device) for tensor in tensors]).sum()
    full_tensor = getattr(count, "full_tensor", None)
    return full_tensor() if full_tensor is not None else count


def _check_legacy_arguments(cls: type[Optimizer], init: Callable[..., None]) -> None:
    """Protocol 1: bind an explicit ``__init__``'s arguments first, so an unknown keyword or a missing
    hyperparameter is a gradhub error naming the method (not Python's bare ``TypeError``)."""
    signature = inspect.signature(init)
    accepted = [name for name in signature.parameters if name not in ("self", "params")]

    @functools.wraps(init)
    def checked_init(self: Optimizer, *args: Any, **kwargs: Any) -> None:
        method = getattr(type(self), "method", type(self).__name__)
        bind_arguments(method, signature, (self, *args), kwargs, accepted, getattr(cls, "hyperparameters", None))
        init(self, *args, **kwargs)

    cls.__init__ = checked_init  # type: ignore[method-assign]


_TORCH_STATES = {
    frozenset({"momentum_buffer"}): "torch.optim.SGD (with momentum)",
    frozenset({"step", "exp_avg", "exp_avg_sq"}): "torch.optim.Adam or AdamW",
    frozenset({"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}): "torch.optim.Adam or AdamW (amsgrad)",
    frozenset({"step", "square_avg"}): "torch.optim.RMSprop",
    frozenset({"step", "sum"}): "torch.optim.Adagrad",
    frozenset({"step", "exp_avg", "exp_inf"}): "torch.optim.Adamax",
}


def _torch_optimizer_with_state(keys: set[str]) -> str | None:
    """The torch.optim optimizer whose per-parameter state has exactly these keys, if one does."""
    return _TORCH_STATES.get(frozenset(keys))


def _same_values(old: tuple[Any, ...], new: tuple[Any, ...]) -> bool:
    """Element-wise: the same object, or equal plain values of the same type (never a tensor compare)."""
    for a, b in zip(old, new):
        if a is b:
            continue
        if type(a) is not type(b) or isinstance(a, torch.Tensor):
            return False
        try:
            if not bool(a == b):
                return False
        except Exception:
            return False
    return True


def compiling() -> bool:
    """True while ``torch.compile`` traces (then paths get tensor step counts and must not read back)."""
    return torch.compiler.is_compiling()


def step_count(value: float | int = 0) -> torch.Tensor:
    """A step count as ``torch.optim`` keeps it: a 0-d float32 tensor on the CPU.

    A tensor, not a Python int, so that a compiled step sees a new count as a new input instead of a
    new constant to recompile for; on the CPU, so the eager step reads it without a device sync.
    """
    return torch.tensor(float(value), dtype=torch.float32)


def _next_steps(counts: list[torch.Tensor]) -> list[int]:
    """The counts after this step, as Python ints, read in one go (no per-tensor ``item()``)."""
    if len(counts) == 1:
        return [int(counts[0]) + 1]
    return [int(value) + 1 for value in torch.stack(counts).tolist()]


class FusedFallbackWarning(RuntimeWarning):
    """``fused=True`` could not run the fused kernel on some tensors; they took the multi-tensor path."""


def fused_eligible(lists: Sequence[Sequence[torch.Tensor]]) -> tuple[list[int], list[str]]:
    """Positions whose tensors a CPU fused kernel takes, and why the others are left out.

    A position is eligible when its parameter is on the CPU, float32 or float64, and every
    tensor there (parameter, gradient, state) is a plain tensor (not a subclass such as an
    FSDP2 DTensor shard) of that dtype and contiguous. The reasons name each kind of
    tensor left out, once, in order (empty when all are eligible).
    """
    eligible, reasons = [], []
    for index, tensors in enumerate(zip(*lists)):
        param = tensors[0]
        if any(type(t) not in (torch.Tensor, nn.Parameter) for t in tensors):
            reasons.append("tensor subclasses (e.g. DTensor shards)")
        elif param.device.type != "cpu":
            reasons.append(f"tensors on {param.device.type}")
        elif param.dtype not in FUSED_DTYPES:
            reasons.append(f"{str(param.dtype).removeprefix('torch.')} tensors")
        elif any(t.dtype != param.dtype for t in tensors):
            reasons.append("gradients or state of another dtype than their parameter")
        elif not all(t.is_contiguous() for t in tensors):
            reasons.append("non-contiguous tensors (e.g. channels_last)")
        else:
            eligible.append(index)
    return eligible, list(dict.fromkeys(reasons))


class ElementwiseOptimizer(Optimizer):
    """The step every list-based gradhub optimizer shares; a subclass keeps only its math.

    A subclass sets :attr:`spec`, :attr:`state_names` (state tensors, zeros like the parameter
    at its first step), :attr:`counts_steps` (keep an int ``state["step"]``), and the path
    functions :attr:`single_tensor` (the reference), :attr:`multi_tensor` and optionally
    :attr:`fused_kernel`. Each path is called as ``path(params, grads, *states, steps, options)``
    with one list per state name, ``steps`` the per-parameter step counts after this step (left
    out when :attr:`counts_steps` is False) and ``options`` the group's :meth:`options` (the
    method's hyperparameter model, e.g. ``options.lr``, ``options.betas``).

    ``step`` evaluates the closure, rejects sparse gradients before changing anything,
    creates state (then calls :meth:`on_new_state`), counts steps, and picks the path per
    group: ``fused=True`` runs :attr:`fused_kernel` on the tensors :func:`fused_eligible`
    accepts and the multi-tensor path on the rest, with one :class:`FusedFallbackWarning`
    per reason and optimizer; a fused kernel returns False when it cannot be loaded (it
    warned), and then the multi-tensor path runs for all. Otherwise ``foreach`` decides
    (``None``: :func:`default_foreach`).
    """

    state_names: ClassVar[tuple[str, ...]] = ()
    counts_steps: ClassVar[bool] = True
    single_tensor: ClassVar[Callable[..., None]]
    multi_tensor: ClassVar[Callable[..., None]]
    fused_kernel: ClassVar[Callable[..., bool] | None] = None

    def on_new_state(self, group: dict[str, Any], params: list[torch.Tensor]) -> None:
        """Called with the parameters whose state was just created (before the step)."""

    def _path(self, group: dict[str, Any], params: list[torch.Tensor]) -> StepPath:
        if group.get("fused") and type(self).fused_kernel is not None:
            return "fused"
        return "foreach" if self.use_foreach(group, params) else "single"

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimisation step; returns ``closure()``'s loss when given.

        Under ``torch.compile`` the bookkeeping (validation, new state, the path's choice) runs eagerly
        (:meth:`_prepare` is ``torch.compiler.disable``'d) and the math is traced: the paths get the
        step counts as 0-d tensors, so a new step, or a new lr from a scheduler, is a new input, not a
        new graph (see :func:`compiling`).
        """
        loss = self.evaluate_closure(closure)
        groups, prepared = self._prepare()
        compiled = compiling()
        for group, params, group_options, new, lists, counts in prepared:
            steps: list[Any] = []
            if self.counts_steps:
                steps = torch._foreach_add(counts, 1.0) if compiled else _next_steps(counts)
            try:
                self._run("compiled" if compiled else self._path(group, params), lists, steps, group_options)
            except Exception as error:
                self._forget(new)  # a failed first step leaves no half-made state behind
                if not isinstance(error, GradhubError):
                    self._check_states(groups)  # a hand-edited state of the wrong shape: say so
                raise
            if self.counts_steps:
                torch._foreach_add_(counts, 1.0)
        return loss

    @torch.compiler.disable
    def _prepare(self) -> tuple[list[list[torch.Tensor]], list[Any]]:
        """Per group: (group, params, options, new params, the path's lists, the step-count tensors)."""
        groups = self.parameters_with_gradients()
        options = [self.options(group) for group in self.param_groups]  # validated before anything changes
        # Every group's tensors are gathered before any path runs, so a state missing an entry (edited by
        # hand; load_state_dict checks what it loads) raises before anything changes. No per-step check
        # walks the state: a step costs what the math costs.
        prepared, fresh = [], []
        try:
            for group, params, group_options in zip(self.param_groups, groups, options):
                if not params:
                    continue
                states = [self.state[param] for param in params]
                new = [param for param, state in zip(params, states) if not state]
                for param in new:
                    state = self.state[param]
                    if self.counts_steps:
                        state["step"] = step_count(0)
                    for name in self.state_names:
                        state[name] = torch.zeros_like(param, memory_format=torch.preserve_format)
                fresh += new
                lists = [params, [p.grad for p in params], *[[state[n] for state in states] for n in self.state_names]]
                counts = []
                if self.counts_steps:
                    for state in states:
                        if not isinstance(state["step"], torch.Tensor):  # a state saved by gradhub < 0.2.1
                            state["step"] = step_count(state["step"])
                    counts = [state["step"] for state in states]
                prepared.append((group, params, group_options, new, lists, counts))
            for group, _, _, new, _, _ in prepared:
                if new:
                    self.on_new_state(group, new)
        except KeyError:
            self._forget(fresh)
            self._check_states(groups)  # names what is missing
            raise
        except BaseException:
            self._forget(fresh)  # on_new_state refused: no half-made state left behind
            raise
        return groups, prepared

    def state_keys(self) -> set[str]:
        return {*self.state_names, *(("step",) if self.counts_steps else ())}

    def shaped_state_names(self) -> tuple[str, ...]:
        return self.state_names

    def _forget(self, params: list[torch.Tensor]) -> None:
        for param in params:
            self.state.pop(param, None)

    def _check_states(self, groups: list[list[torch.Tensor]]) -> None:
        """Every existing state has this method's tensors, shaped like their parameter (explains a failed step)."""
        wanted = self.state_keys()
        for group_index, params in enumerate(groups):
            for param in params:
                state = self.state.get(param)
                if not state:
                    continue
                missing = sorted(wanted - set(state))
                if missing:
                    raise UnsupportedInputError(
                        self.method,
                        f"state of a parameter in param group {group_index}",
                        f"keys {sorted(state)}",
                        f"{self.method} keeps {sorted(wanted)} (missing {missing}); load a state this method saved",
                    )
                for name in self.state_names:
                    value = state[name]
                    if not isinstance(value, torch.Tensor) or value.shape != param.shape:
                        shown = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                        raise UnsupportedInputError(
                            self.method,
                            f"state {name!r} of a parameter in param group {group_index}",
                            f"shape {shown}",
                            f"the parameter's shape {tuple(param.shape)}",
                        )

    def _run(self, path: StepPath, lists: list[list[torch.Tensor]], steps: list[int], options: Hyperparameters) -> None:
        cls = type(self)

        def call(function: Callable[..., Any], positions: list[int] | None) -> Any:
            chosen = lists if positions is None else [[tensors[i] for i in positions] for tensors in lists]
            if self.counts_steps:
                chosen = [*chosen, steps if positions is None else [steps[i] for i in positions]]
            return function(*chosen, options)

        if path in ("single", "compiled"):
            call(cls.single_tensor, None)
            return
        if path == "foreach":
            call(cls.multi_tensor, None)
            return
        assert cls.fused_kernel is not None
        eligible, reasons = fused_eligible(lists)
        if len(eligible) < len(lists[0]):
            for reason in reasons:
                self._warn_fused_fallback(reason)
            rest = sorted(set(range(len(lists[0]))) - set(eligible))
        else:
            rest = []
        if eligible and not call(cls.fused_kernel, None if not rest else eligible):
            rest = list(range(len(lists[0])))
        if rest:
            call(cls.multi_tensor, rest)

    def _warn_fused_fallback(self, reason: str) -> None:
        warned = self.__dict__.setdefault("_fused_fallbacks_warned", set())
        if reason in warned:
            return
        warned.add(reason)
        warnings.warn(
            f"{self.method}: fused=True runs its kernel on contiguous float32/float64 CPU tensors; {reason} take "
            "the multi-tensor path instead",
            FusedFallbackWarning,
            stacklevel=6,  # _run <- step <- no_grad <- torch's step hook wrapper <- the caller
        )
