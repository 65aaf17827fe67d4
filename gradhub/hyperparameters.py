"""Hyperparameter models: the defaults and bounds a method accepts, and their validation.

A plugin declares its hyperparameters as a subclass of :class:`Hyperparameters` in its
torch-free entry module. The same model is what ``gradhub info`` prints and what the
implementation validates user input with (:func:`validate_hyperparameters`), so the
bounds are written once. The field types below give one spelling and one set of
bounds to the names every plugin shares (``lr``, ``betas``, ``eps``, ``weight_decay``).
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError

from gradhub.errors import HyperparameterError, MissingHyperparameterError, UnknownHyperparameterError, show_value

__all__ = [
    "Beta",
    "Betas",
    "Epsilon",
    "Flag",
    "Foreach",
    "Fused",
    "Hyperparameters",
    "LearningRate",
    "Momentum",
    "NonNegative",
    "Probability",
    "Real",
    "WeightDecay",
    "bind_arguments",
    "describe_field",
    "validate_hyperparameters",
    "validated",
]

Real = Annotated[float, Strict()]
"""A real number: ints and floats (and numpy or 0-d tensor scalars), never strings or bools.

Use it (with ``Field(...)`` bounds) instead of plain ``float``, which accepts ``"0.1"``."""

NonNegative = Annotated[float, Strict(), Field(ge=0)]
LearningRate = Annotated[float, Strict(), Field(ge=0, description="learning rate")]
Epsilon = Annotated[float, Strict(), Field(ge=0, description="added to denominators")]
WeightDecay = Annotated[float, Strict(), Field(ge=0, description="weight decay coefficient")]
Beta = Annotated[float, Strict(), Field(ge=0, lt=1)]
Betas = tuple[Beta, Beta]
Momentum = Annotated[float, Strict(), Field(ge=0, lt=1, description="momentum factor")]
Probability = Annotated[float, Strict(), Field(ge=0, le=1)]
Flag = Annotated[bool, Strict()]
Foreach = Annotated[
    Flag | None, Field(description="multi-tensor path; None picks it on CPU and CUDA (an addition, not in the paper)")
]
"""An optimizer's ``foreach`` option (see :func:`gradhub.kinds.optimizer.default_foreach`)."""
Fused = Annotated[
    Flag | None,
    Field(
        description=(
            "fused CPU kernel (float32/float64), compiled at first use; falls back to the multi-tensor path "
            "with a warning where it cannot run; None: off (an addition, not in the paper)"
        )
    ),
]
"""An optimizer's ``fused`` option (see :mod:`gradhub.kernels.native`)."""


class Hyperparameters(BaseModel):
    """Base of every method's hyperparameter model.

    Unknown names are rejected, floats must be finite, and instances are immutable.
    A field without a default is a required argument (SGDP's ``lr``, for instance).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


_BOUND_WORDS = (
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Ge, "ge", ">="),
    (annotated_types.Lt, "lt", "<"),
    (annotated_types.Le, "le", "<="),
)


def _bounds(metadata: list[Any]) -> list[str]:
    words = []
    for item in metadata:
        for kind, attribute, symbol in _BOUND_WORDS:
            if isinstance(item, kind):
                words.append(f"{symbol} {getattr(item, attribute)}")
        if isinstance(item, annotated_types.Interval):
            for _, attribute, symbol in _BOUND_WORDS:
                bound = getattr(item, attribute)
                if bound is not None:
                    words.append(f"{symbol} {bound}")
    return words


def _describe(annotation: Any, metadata: list[Any]) -> str:
    """A short English phrase for what a type with these constraints admits."""
    while typing.get_origin(annotation) is Annotated:
        annotation, *extra = typing.get_args(annotation)
        for item in extra:
            metadata = metadata + list(getattr(item, "metadata", [item]))
    origin = typing.get_origin(annotation)
    bounds = " and ".join(_bounds(metadata))
    if annotation is bool:
        return "True or False"
    if annotation in (float, int):
        noun = "a finite number" if annotation is float else "an integer"
        return f"{noun} {bounds}".strip()
    if origin is tuple:
        items = typing.get_args(annotation)
        if len(items) == 2 and items[1] is Ellipsis:
            return _sequence_phrase(_describe(items[0], []), metadata)
        phrases = [_describe(item, []) for item in items]
        if items and Ellipsis not in items and len(set(phrases)) == 1:
            each = phrases[0].removeprefix("a ").removeprefix("an ")
            return f"a tuple of {len(items)} ({each.replace('number ', 'numbers, each ', 1)})"
        return f"a tuple ({', '.join(phrases)})"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(choice) for choice in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg, []) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def _sequence_phrase(each: str, metadata: list[Any]) -> str:
    """ "a sequence of finite numbers > 0 (at least 2 of them)" from the item phrase and length bounds."""
    plural = each.removeprefix("a ").removeprefix("an ")
    plural = plural.replace("number", "numbers", 1).replace("integer", "integers", 1)
    lengths = []
    for item in metadata:
        low = getattr(item, "min_length", None)
        high = getattr(item, "max_length", None)
        if low:
            lengths.append(f"at least {low}")
        if high is not None:
            lengths.append(f"at most {high}")
    count = f" ({' and '.join(lengths)} of them)" if lengths else ""
    return f"a sequence of {plural}{count}"


def describe_field(model: type[BaseModel], name: str) -> str:
    """What a field of ``model`` accepts, in words ("a finite number >= 0")."""
    field = model.model_fields[name]
    return _describe(field.annotation, list(field.metadata))


def _render_location(location: tuple[Any, ...]) -> str:
    text = str(location[0])
    for part in location[1:]:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _to_gradhub_error(
    method: str, model: type[Hyperparameters], values: Mapping[str, Any], error: ValidationError
) -> HyperparameterError:
    first = error.errors()[0]
    location = first["loc"]
    name = str(location[0]) if location else "?"
    if first["type"] == "extra_forbidden":
        return UnknownHyperparameterError(method, name, values.get(name), list(model.model_fields))
    value = values.get(name, first.get("input"))
    if name in model.model_fields:
        allowed = describe_field(model, name)
    else:
        allowed = first["msg"].lower()
    if len(location) > 1:
        input_value = first.get("input")
        allowed += f" ({_render_location(location)}={show_value(input_value)}: {first['msg'].lower()})"
    if first["type"] == "missing" and len(location) == 1:
        return MissingHyperparameterError(method, name, allowed)
    return HyperparameterError(method, name, value, allowed)


def validate_hyperparameters(method: str, model: type[Hyperparameters], values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``values`` against ``model`` and return them with defaults filled in.

    Raises :class:`~gradhub.errors.HyperparameterError` (a ``ValueError``) naming the
    method, the parameter, the value and what is allowed, or
    :class:`~gradhub.errors.UnknownHyperparameterError` (also a ``TypeError``) for a
    name the model does not declare.
    """
    try:
        validated = model.model_validate(dict(values))
    except ValidationError as error:
        raise _to_gradhub_error(method, model, values, error) from None
    return {name: getattr(validated, name) for name in model.model_fields}


def bind_arguments(
    method: str,
    signature: inspect.Signature,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    accepted: list[str],
    model: type[BaseModel] | None = None,
) -> inspect.BoundArguments:
    """``signature.bind`` with gradhub errors: an unknown keyword or a missing argument named.

    With ``model``, a missing hyperparameter's error also says what it accepts.
    """
    try:
        return signature.bind(*args, **kwargs)
    except TypeError as error:
        for name, value in kwargs.items():
            if name not in signature.parameters:
                raise UnknownHyperparameterError(method, name, value, accepted) from None
        try:
            bound = signature.bind_partial(*args, **kwargs)
        except TypeError:
            bound = None
        for name, parameter in signature.parameters.items() if bound is not None else ():
            missing = name not in bound.arguments and parameter.default is inspect.Parameter.empty
            if missing and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                allowed = describe_field(model, name) if model is not None and name in model.model_fields else ""
                raise MissingHyperparameterError(method, name, allowed) from None
        shown = str(signature).replace("(self, ", "(", 1)
        raise TypeError(f"{method}: {error}; the signature is {shown}") from None


Function = TypeVar("Function", bound=Callable[..., Any])


def validated(method: str, model: type[Hyperparameters]) -> Callable[[Function], Function]:
    """Decorate a function-style method so its hyperparameters are checked on every call.

    Arguments named like fields of ``model`` are validated (and coerced) with
    :func:`validate_hyperparameters`; an unknown keyword raises
    :class:`~gradhub.errors.UnknownHyperparameterError` listing the accepted ones.
    """

    def decorate(function: Function) -> Function:
        signature = inspect.signature(function)
        accepted = list(model.model_fields)

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = bind_arguments(method, signature, args, kwargs, accepted, model)
            bound.apply_defaults()
            values = {name: bound.arguments[name] for name in model.model_fields if name in bound.arguments}
            bound.arguments.update(validate_hyperparameters(method, model, values))
            return function(*bound.args, **bound.kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
