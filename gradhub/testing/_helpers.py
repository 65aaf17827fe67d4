"""What the checks share: loading a method's pieces, comparing results, bad hyperparameters."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
import types
import typing
from collections.abc import Callable, Iterator
from typing import Annotated, Any, NoReturn

import annotated_types
import torch
from pydantic import ValidationError
from torch import nn

from gradhub._text import with_article
from gradhub.errors import ConformanceError, HyperparameterError, show_value
from gradhub.hyperparameters import Hyperparameters
from gradhub.registry import import_target
from gradhub.specs import MethodSpec

Runner = Callable[[MethodSpec, torch.device, torch.dtype, int], list[torch.Tensor]]
Invoker = Callable[[MethodSpec, Any, dict[str, Any]], Any]

RUNNERS: dict[str, Runner] = {}
"""Per kind: run the example from a seed and return the tensors that must be reproducible."""
INVOKERS: dict[str, tuple[type, Invoker]] = {}
"""Per kind: the example type, and how to build/call the method on an example with hyperparameters."""


RESULT_TYPES: dict[str, type | None] = {}
"""Per kind whose target takes a model: the type its result must have (None: anything)."""


def fail(spec: MethodSpec, message: str) -> NoReturn:
    raise ConformanceError(f"{spec.name}: {message}")


def load_target(spec: MethodSpec) -> Any:
    try:
        return import_target(spec.target)
    except Exception as error:
        fail(spec, f"its target {spec.target!r} does not import: {type(error).__name__}: {error}")


def default_device_and_dtype(spec: MethodSpec) -> tuple[torch.device, torch.dtype]:
    device = "cpu" if "cpu" in spec.devices else spec.devices[0]
    return torch.device(device), getattr(torch, "float32" if "float32" in spec.dtypes else spec.dtypes[0])


def target_is_class(spec: MethodSpec) -> bool:
    """For ``applies``: True for a class target, and for one that does not import (spec_valid reports it)."""
    try:
        return isinstance(import_target(spec.target), type)
    except Exception:
        return True


def load_example(spec: MethodSpec, device: torch.device, dtype: torch.dtype, seed: int, expected: type) -> Any:
    try:
        builder = import_target(spec.example)
    except Exception as error:
        fail(spec, f"its example {spec.example!r} does not import: {type(error).__name__}: {error}")
    example = builder(device=device, dtype=dtype, seed=seed)
    if not isinstance(example, expected):
        fail(
            spec,
            f"example {spec.example!r} returned {type(example).__name__}; "
            f"{with_article(spec.kind.value)} example must be a {expected.__module__}.{expected.__name__}",
        )
    overrides = _OVERRIDES.get()
    if overrides:
        example.hparams = {**example.hparams, **overrides}
    return example


_OVERRIDES: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("gradhub_overrides", default=None)


@contextlib.contextmanager
def hyperparameters_overridden(overrides: dict[str, Any]) -> Iterator[None]:
    """Within the block, every example loaded gets ``overrides`` on top of its own hyperparameters.

    How a check runs a kind's runner (:data:`RUNNERS`) with one hyperparameter changed, whatever
    the kind does with the example's ``hparams``.
    """
    token = _OVERRIDES.set(overrides)
    try:
        yield
    finally:
        _OVERRIDES.reset(token)


def variations(model: type[Hyperparameters], name: str, value: Any) -> list[tuple[str, list[tuple[str, Any]]]]:
    """What to try instead of ``value`` for the field ``name``: (what is varied, labelled values) pairs.

    A number moves by factors and offsets (also far, for an ``eps`` that only matters when large; an
    integer also to 1 and 2, for an iteration cap the example never reaches), a flag flips, a choice
    takes each other choice; a tuple (``betas``) varies one element at a time, and each element must
    matter on its own, so an element the method ignores is found. Values the model rejects are for
    the caller to drop.
    """

    def numbers(label: str, number: float, rebuild: Callable[[Any], Any]) -> list[tuple[str, Any]]:
        moved = [number * 0.5, number * 2, number + 1, number - 0.5, 0.1, 1e-3, number * 1e6, number * 1e-6]
        moved.append(number + 10)
        moved = moved if number else [0.1, 1e-3, 1, 0.5, 10]
        if isinstance(number, float):
            moved += [number * 0.9 + 0.05, number + 0.05]
        else:
            moved += [1, 2]
        kind = type(number)
        unique = list(dict.fromkeys(kind(v) for v in moved if kind(v) != number))
        return [(f"{label}={v!r}", rebuild(v)) for v in unique]

    annotation = model.model_fields[name].annotation
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if isinstance(value, bool):
        return [(name, [(f"{name}={not value}", not value)])]
    if isinstance(value, int | float):
        return [(name, numbers(name, value, lambda v: v))]
    if isinstance(value, tuple):
        groups = []
        for index, item in enumerate(value):
            if isinstance(item, int | float) and not isinstance(item, bool):
                rebuild = lambda v, i=index: (*value[:i], v, *value[i + 1 :])  # noqa: E731
                groups.append((f"{name}[{index}]", numbers(f"{name}[{index}]", item, rebuild)))
        return groups
    if isinstance(value, str):
        choices = [choice for option in _union_members(annotation) for choice in _literal_choices(option)]
        return [(name, [(f"{name}={choice!r}", choice) for choice in choices if choice != value])] if choices else []
    return []


def _union_members(annotation: Any) -> tuple[Any, ...]:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return tuple(member for arg in typing.get_args(annotation) for member in _union_members(arg))
    return (annotation,)


def _literal_choices(annotation: Any) -> tuple[Any, ...]:
    return typing.get_args(annotation) if typing.get_origin(annotation) is typing.Literal else ()


def tensors_of(result: Any, detach: bool = True) -> list[torch.Tensor]:
    """Every tensor and number inside a result (tensor, number, dataclass, mapping, sequence)."""
    if isinstance(result, torch.Tensor):
        return [result.detach() if detach else result]
    if isinstance(result, bool | int | float):
        return [torch.tensor(float(result), dtype=torch.float64)]
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return [t for f in dataclasses.fields(result) for t in tensors_of(getattr(result, f.name), detach)]
    if isinstance(result, dict):
        return [t for key in sorted(result, key=str) for t in tensors_of(result[key], detach)]
    if isinstance(result, list | tuple):
        return [t for item in result for t in tensors_of(item, detach)]
    return []


def assert_close(
    spec: MethodSpec,
    expected: list[torch.Tensor],
    actual: list[torch.Tensor],
    what: str,
    rtol: float = 0,
    atol: float = 0,
) -> None:
    """Equal structure, and values equal within tolerance (bit-for-bit by default)."""
    if len(expected) != len(actual):
        fail(spec, f"{what}: {len(expected)} tensors the first time, {len(actual)} the second")
    for index, (a, b) in enumerate(zip(expected, actual)):
        if a.shape != b.shape or a.dtype != b.dtype:
            fail(spec, f"{what}: tensor {index} is {tuple(a.shape)} {a.dtype} vs {tuple(b.shape)} {b.dtype}")
        a, b = a.detach().cpu(), b.detach().cpu()
        if rtol == 0 and atol == 0:
            same = torch.equal(a, b) or (
                a.is_floating_point()
                and torch.equal(a.isnan(), b.isnan())
                and torch.equal(torch.nan_to_num(a), torch.nan_to_num(b))
            )
            if not same:
                difference = (a.double() - b.double()).abs().max().item() if a.numel() else 0.0
                fail(spec, f"{what}: tensor {index} differs (max abs difference {difference:.3g}); expected identical")
        elif not torch.allclose(a.double(), b.double(), rtol=rtol, atol=atol, equal_nan=True):
            difference = (a.double() - b.double()).abs().max().item()
            fail(spec, f"{what}: tensor {index} differs by up to {difference:.3g} (rtol={rtol}, atol={atol})")


def assert_finite(spec: MethodSpec, tensors: list[torch.Tensor], what: str) -> None:
    for index, tensor in enumerate(tensors):
        if (tensor.is_floating_point() or tensor.is_complex()) and not torch.isfinite(tensor).all():
            fail(spec, f"{what}: tensor {index} {tuple(tensor.shape)} has NaN or infinite values")


@contextlib.contextmanager
def deterministic_algorithms() -> Iterator[None]:
    """cuDNN's deterministic kernels for the duration (CPU kernels already are)."""
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved


def scramble_global_rng(seed: int) -> None:
    """Put the global RNGs in an arbitrary state: a method must not depend on it."""
    torch.manual_seed(1_000_003 * seed + 12_345)


def generator_for(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


# --- kinds whose target is called with a model: attack, sampler, probe ---------------------


def call_with_model(spec: MethodSpec, example: Any, hparams: dict[str, Any], generator: Any = None) -> Any:
    """``target(example.model, *example.args, generator=generator, **hparams)``, result type checked."""
    result = load_target(spec)(example.model, *example.args, generator=generator, **hparams)
    expected = RESULT_TYPES.get(spec.kind.value)
    if expected is not None and not isinstance(result, expected):
        fail(
            spec,
            f"it returned {type(result).__name__}; {with_article(spec.kind.value)} returns "
            f"{expected.__module__}.{expected.__name__}",
        )
    return result


def register_model_kind(kind: str, example_type: type, result_type: type | None) -> None:
    """Runner and invoker for a kind whose target is called with a model and a generator."""

    def run(spec: MethodSpec, device: torch.device, dtype: torch.dtype, seed: int) -> list[torch.Tensor]:
        example = load_example(spec, device, dtype, seed, example_type)
        return tensors_of(call_with_model(spec, example, example.hparams, generator_for(device, seed)))

    RESULT_TYPES[kind] = result_type
    RUNNERS[kind] = run
    INVOKERS[kind] = (example_type, call_with_model)


# --- model fingerprints (attacks and probes must leave the model as they found it) ---------


def fingerprint(model: nn.Module) -> dict[str, Any]:
    return {
        "training": [(name, module.training) for name, module in model.named_modules()],
        "parameters": {
            name: (p.detach().clone(), p.requires_grad, None if p.grad is None else p.grad.detach().clone())
            for name, p in model.named_parameters()
        },
        "buffers": {name: b.detach().clone() for name, b in model.named_buffers()},
    }


def assert_model_unchanged(spec: MethodSpec, before: dict[str, Any], model: nn.Module) -> None:
    after = fingerprint(model)
    if before["training"] != after["training"]:
        changed = [name or "<root>" for (name, a), (_, b) in zip(before["training"], after["training"]) if a != b]
        fail(spec, f"it changed the training mode of {changed}; restore model.train()/eval() as found")
    if set(before["parameters"]) != set(after["parameters"]) or set(before["buffers"]) != set(after["buffers"]):
        fail(spec, "it added or removed parameters or buffers of the model")
    for name, (value, requires_grad, grad) in before["parameters"].items():
        new_value, new_requires_grad, new_grad = after["parameters"][name]
        if not torch.equal(value, new_value):
            fail(spec, f"it changed the model's parameter {name!r}")
        if requires_grad != new_requires_grad:
            fail(spec, f"it changed requires_grad of parameter {name!r}")
        if (grad is None) != (new_grad is None) or (grad is not None and not torch.equal(grad, new_grad)):
            fail(spec, f"it changed the .grad of parameter {name!r}; use torch.autograd.grad instead of backward()")
    for name, value in before["buffers"].items():
        if not torch.equal(value, after["buffers"][name]):
            fail(spec, f"it changed the model's buffer {name!r} (BatchNorm statistics? run it in eval mode)")


# --- hyperparameters that the spec's model rejects ------------------------------------------


def _constraint_values(annotation: Any, metadata: list[Any]) -> list[Any]:
    while typing.get_origin(annotation) is Annotated:
        annotation, *extra = typing.get_args(annotation)
        for item in extra:
            metadata = metadata + list(getattr(item, "metadata", [item]))
    values: list[Any] = []
    for item in metadata:
        for kind, attribute, offset in (
            (annotated_types.Ge, "ge", -1),
            (annotated_types.Gt, "gt", 0),
            (annotated_types.Le, "le", 1),
            (annotated_types.Lt, "lt", 0),
        ):
            if isinstance(item, kind):
                values.append(getattr(item, attribute) + offset)
    if annotation in (float, int) or typing.get_origin(annotation) in (typing.Union,):
        values += [math.nan, math.inf, "1"]  # a string is tried only where the spec's model rejects it
    if annotation is bool:
        values.append("yes")
    if typing.get_origin(annotation) is typing.Literal:
        values.append("not-one-of-" + "-".join(map(str, typing.get_args(annotation))))
    return values


def invalid_hyperparameters(model: type[Hyperparameters], valid: dict[str, Any]) -> list[tuple[str, Any]]:
    """Values the spec's own model rejects, a few per field: the method must reject them too."""
    found: list[tuple[str, Any]] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        while typing.get_origin(annotation) is Annotated:
            annotation = typing.get_args(annotation)[0]
        candidates: list[Any]
        if typing.get_origin(annotation) is tuple:
            base = valid.get(name, field.default)
            candidates = []
            if isinstance(base, tuple):
                for position, item in enumerate(typing.get_args(annotation)):
                    for bad in _constraint_values(item, []):
                        candidates.append(base[:position] + (bad,) + base[position + 1 :])
        else:
            candidates = _constraint_values(field.annotation, list(field.metadata))
        kept = 0
        for candidate in candidates:
            try:
                model.model_validate({**valid, name: candidate})
            except ValidationError:
                found.append((name, candidate))
                kept += 1
            if kept == 3:
                break
    return found


def expect_hyperparameter_error(spec: MethodSpec, call: Callable[[], Any], name: str, value: Any) -> None:
    target_name = getattr(load_target(spec), "__name__", spec.name)
    try:
        call()
    except HyperparameterError as error:
        message = str(error)
        lowered = message.lower()
        if spec.name not in lowered and target_name.lower() not in lowered:
            fail(spec, f"the error for {name}={value!r} does not name the method: {message!r}")
        if name not in message:
            fail(spec, f"the error for {name}={value!r} does not name the parameter: {message!r}")
        if show_value(value) not in message and repr(value) not in message and str(value) not in message:
            fail(spec, f"the error for {name}={value!r} does not show the value: {message!r}")
        return
    except Exception as error:
        fail(
            spec,
            f"{name}={value!r} raised {type(error).__name__}: {error}; bad hyperparameters must raise "
            "gradhub.HyperparameterError (use gradhub.hyperparameters.validated or validate_hyperparameters)",
        )
    fail(spec, f"{name}={value!r} was accepted, but the spec's hyperparameter model rejects it")


READ_BACKS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "cpu", "numpy")
"""The ``torch.Tensor`` methods that copy a value to the host (a device sync on an accelerator)."""


@contextlib.contextmanager
def counting_read_backs() -> Iterator[list[str]]:
    """Within the block, every host read-back of a tensor (:data:`READ_BACKS`) is recorded by name, in
    order, in the yielded list; the methods are restored after. For tests that pin how many syncs a
    call costs (``collections.Counter(reads)`` to compare counts)."""
    reads: list[str] = []
    originals = {name: getattr(torch.Tensor, name) for name in READ_BACKS}

    def counted(name: str, original: Any) -> Any:
        def method(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            reads.append(name)
            return original(self, *args, **kwargs)

        return method

    try:
        for name, original in originals.items():
            setattr(torch.Tensor, name, counted(name, original))
        yield reads
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)
