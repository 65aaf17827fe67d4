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
from typing import Annotated, Any, Literal, TypeVar

import annotated_types
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from gradhub.errors import HyperparameterError, MissingHyperparameterError, UnknownHyperparameterError, show_value

if typing.TYPE_CHECKING:
    from gradhub.specs import MethodSpec

__all__ = [
    "Beta",
    "Betas",
    "Conv2dArguments",
    "Epsilon",
    "Flag",
    "Foreach",
    "Fused",
    "Hyperparameters",
    "InputCheck",
    "KeywordOnly",
    "LearningRate",
    "LinearArguments",
    "Maximize",
    "Momentum",
    "NonNegative",
    "PathOption",
    "Probability",
    "Real",
    "WeightDecay",
    "bind_and_validate",
    "bind_arguments",
    "bind_to_spec",
    "describe_field",
    "hyperparameter_docs",
    "hyperparameter_signature",
    "object_or_name",
    "options_from_model",
    "public_signature",
    "validate_hyperparameters",
    "validated",
    "with_hyperparameter_docs",
]


class PathOption:
    """Metadata marking a hyperparameter that picks how the result is computed, not what it is.

    ``foreach`` and ``fused`` carry it: every path computes the same step (the suite checks that
    they agree). So do :data:`InputCheck` flags (valid inputs give the same result with the check on
    or off) and options such as how often a recorder copies to the host. The check that each
    hyperparameter changes the result leaves them out.
    """

    def __repr__(self) -> str:
        return "PathOption()"


class KeywordOnly:
    """Metadata marking a hyperparameter keyword-only in the signatures derived from the model.

    ``foreach: Annotated[bool, KeywordOnly()] = False``; :data:`Foreach`, :data:`Fused` and
    :data:`Maximize` carry it (torch.optim's convention for options that are not the paper's).
    """

    def __repr__(self) -> str:
        return "KeywordOnly()"


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
InputCheck = Annotated[Flag, PathOption()]
"""A flag that switches a check of the inputs on or off (``check_values``): it costs a host sync, and
valid inputs give the same result either way."""
Foreach = Annotated[
    Flag | None,
    Field(description="multi-tensor path; None picks it on CPU and CUDA (an addition, not in the paper)"),
    KeywordOnly(),
    PathOption(),
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
    KeywordOnly(),
    PathOption(),
]
"""An optimizer's ``fused`` option (see :mod:`gradhub.kernels.native`)."""
Maximize = Annotated[
    Flag, Field(description="maximise the objective instead (an addition, not in the paper)"), KeywordOnly()
]
"""An optimizer's ``maximize`` option, keyword-only as in torch.optim."""


class Hyperparameters(BaseModel):
    """Base of every method's hyperparameter model.

    Unknown names are rejected, floats must be finite, and instances are immutable.
    A field without a default is a required argument (SGDP's ``lr``, for instance).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def object_or_name(target: str, names: Any, *, keyword: str = "kind") -> Any:
    """A hyperparameter that takes a configured object or the name of a preset, validated to the object.

    ``target`` is ``"module:Class"`` (imported, with torch, only when a value is validated, so entry
    modules stay torch-free); ``names`` a ``Literal`` of preset names, each built as
    ``Class(**{keyword: name})``; an instance of ``Class`` passes as is. In error messages, ``gradhub
    info`` and the JSON schema the type reads "one of 'a', 'b' or Class". gradhub-diffusion's
    ``path=`` (a GaussianPath or 've', 'vp_linear', ...) and gradhub-dale-langevin's ``schedule=`` use it.
    """
    import importlib

    module_name, _, class_name = target.partition(":")
    choices = typing.get_args(names)
    description = f"a {class_name}"

    def core_schema(cls: type, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema as schemas

        return schemas.any_schema()

    def json_schema(cls: type, schema: Any, handler: Any) -> dict[str, Any]:
        return {"type": "object", "description": description}

    placeholder = type(
        class_name,
        (),
        {
            "__doc__": f"A configured {target} (its name in messages and the JSON schema).",
            "__get_pydantic_core_schema__": classmethod(core_schema),
            "__get_pydantic_json_schema__": classmethod(json_schema),
        },
    )

    def validate(value: Any) -> Any:
        cls = getattr(importlib.import_module(module_name), class_name)
        if isinstance(value, cls):
            return value
        if isinstance(value, str) and value in choices:
            return cls(**{keyword: value})
        raise ValueError(f"a {type(value).__name__} that is neither a preset's name nor a {class_name}")

    return Annotated[names | placeholder, PlainValidator(validate, json_schema_input_type=names | placeholder)]


Size = Annotated[int, Strict(), Field(ge=1)]
Count = Annotated[int, Strict(), Field(ge=0)]


class Conv2dArguments(Hyperparameters):
    """``nn.Conv2d``'s arguments, in its order, with its defaults: the base of a drop-in Conv2d layer's model.

    A layer adds its paper's options by inheriting from both, its own model first so that
    ``nn.Conv2d``'s arguments come first in the signature (pydantic orders fields from the last
    base): ``class MyConv2dHyperparameters(MyOptions, Conv2dArguments)``. A layer whose paper uses
    no bias overrides the default: ``bias: Flag = False``.
    """

    in_channels: Size
    out_channels: Size
    kernel_size: Size | tuple[Size, Size]
    stride: Size | tuple[Size, Size] = 1
    padding: Count | tuple[Count, Count] | Literal["same", "valid"] = 0
    dilation: Size | tuple[Size, Size] = 1
    groups: Size = 1
    bias: Flag = True
    padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros"

    @field_validator("padding")
    @classmethod
    def _same_needs_stride_one(cls, padding: Any, info: ValidationInfo) -> Any:
        if padding == "same" and info.data.get("stride") not in (1, (1, 1), None):
            raise ValueError(f"and an int or pair when stride={info.data['stride']!r} ('same' needs stride 1)")
        return padding

    @field_validator("groups")
    @classmethod
    def _groups_divide_channels(cls, groups: int, info: ValidationInfo) -> int:
        for name in ("in_channels", "out_channels"):
            size = info.data.get(name)
            if size is not None and size % groups:
                raise ValueError(f"and a divisor of {name}={size}")
        return groups


class LinearArguments(Hyperparameters):
    """``nn.Linear``'s arguments with its defaults: the base of a drop-in Linear layer's model (see Conv2dArguments)."""

    in_features: Size
    out_features: Size
    bias: Flag = True


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
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, HyperparameterError):
        return cause  # a model_validator named the parameter itself
    if not location:
        # A rule between fields (a model_validator) that raised a plain ValueError: its own words.
        text = str(cause) if cause is not None else first["msg"].removeprefix("Value error, ")
        combined = HyperparameterError(method, "hyperparameters", dict(values), text)
        combined.args = (f"{method}: invalid combination of hyperparameters {show_value(dict(values))}: {text}",)
        return combined
    name = str(location[0])
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
    elif first["type"] == "value_error" and cause is not None:
        allowed += f" ({cause})"  # a field validator's own reason
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


def is_path_option(model: type[BaseModel], name: str) -> bool:
    """True when the field carries :class:`PathOption` (it picks a path, the result is the same)."""
    return any(isinstance(item, PathOption) for item in model.model_fields[name].metadata)


def is_keyword_only(model: type[BaseModel], name: str) -> bool:
    """True when the field carries :class:`KeywordOnly` (directly or through its annotated type)."""
    field = model.model_fields[name]
    return any(isinstance(item, KeywordOnly) for item in field.metadata)


def field_default(model: type[BaseModel], name: str) -> Any:
    """The field's default, or ``inspect.Parameter.empty`` when it is required."""
    field = model.model_fields[name]
    if field.is_required():
        return inspect.Parameter.empty
    return field.get_default(call_default_factory=True)


def plain_annotation(annotation: Any) -> Any:
    """``annotation`` without its ``Annotated`` metadata, recursively: what a signature should show.

    ``Betas`` (two bounded, strict floats) reads ``tuple[float, float]``; ``Foreach`` ``bool | None``.
    """
    if typing.get_origin(annotation) is Annotated:
        return plain_annotation(typing.get_args(annotation)[0])
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return functools.reduce(lambda left, right: left | right, [plain_annotation(a) for a in arguments])
    if origin is tuple and arguments:
        return tuple[tuple(plain_annotation(a) for a in arguments)]  # type: ignore[misc]
    return annotation


def hyperparameter_signature(
    model: type[BaseModel],
    leading: typing.Sequence[inspect.Parameter] = (),
    trailing: typing.Sequence[inspect.Parameter] = (),
) -> inspect.Signature:
    """The call signature the model implies: ``leading`` parameters, then one per field in order.

    Fields without a default come first among the positional ones would be invalid Python, so a
    required field after one with a default becomes keyword-only; fields marked
    :class:`KeywordOnly` are keyword-only. ``trailing`` are keyword-only extras (``generator``).
    """
    positional: list[inspect.Parameter] = list(leading)
    keyword: list[inspect.Parameter] = []
    seen_default = any(p.default is not inspect.Parameter.empty for p in leading)
    already_keyword = any(p.kind is inspect.Parameter.KEYWORD_ONLY for p in leading)
    for name, field in model.model_fields.items():
        default = field_default(model, name)
        annotation = plain_annotation(field.annotation) if field.annotation is not None else inspect.Parameter.empty
        if already_keyword or is_keyword_only(model, name) or (seen_default and default is inspect.Parameter.empty):
            keyword.append(
                inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
            )
        else:
            seen_default = seen_default or default is not inspect.Parameter.empty
            positional.append(
                inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=annotation)
            )
    leading_keyword = [p for p in positional if p.kind is inspect.Parameter.KEYWORD_ONLY]
    positional = [p for p in positional if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    return inspect.Signature([*positional, *leading_keyword, *keyword, *trailing])


def hyperparameter_docs(model: type[BaseModel]) -> str:
    """A docstring section listing every hyperparameter: default, what it accepts, what it does."""
    lines = ["Hyperparameters (from the method's model; defaults and bounds are written there once):"]
    for name, field in model.model_fields.items():
        default = field_default(model, name)
        shown = "required" if default is inspect.Parameter.empty else f"default {default!r}"
        description = f"; {field.description}" if field.description else ""
        lines.append(f"    {name} ({shown}): {describe_field(model, name)}{description}")
    return "\n".join(lines)


def with_hyperparameter_docs(doc: str | None, model: type[BaseModel]) -> str:
    """``doc`` with :func:`hyperparameter_docs` appended (once)."""
    section = hyperparameter_docs(model)
    doc = inspect.cleandoc(doc or "")
    if section in doc:
        return doc
    return f"{doc}\n\n{section}" if doc else section


Function = TypeVar("Function", bound=Callable[..., Any])


def bind_to_spec(
    implementation: Any, spec: Any, model: type[BaseModel], doc: str | None, signature: inspect.Signature | None = None
) -> None:
    """What every kind's frame gives the object it returns: ``spec``, ``method`` (its name), the docstring
    with the hyperparameters listed and, when given, the ``__signature__`` derived from the model."""
    if signature is not None:
        implementation.__signature__ = signature
    implementation.__doc__ = with_hyperparameter_docs(doc, model)
    implementation.spec = spec
    implementation.method = spec.name if spec is not None else getattr(implementation, "method", None)


def _spec_and_model(
    spec_or_method: MethodSpec | str, model: type[Hyperparameters] | None
) -> tuple[str, type[Hyperparameters], MethodSpec | None]:
    if isinstance(spec_or_method, str):
        if model is None:
            raise TypeError("validated(name, model): pass the hyperparameter model, or pass the method's spec alone")
        return spec_or_method, model, None
    return spec_or_method.name, model or spec_or_method.params, spec_or_method


def options_from_model(function: Function) -> Function:
    """Mark a function (a drop-in layer's constructor) whose ``**options`` are exactly the hyperparameter
    model's fields it does not name: they become keyword-only parameters of its public signature, and
    any other keyword is refused as unknown (see :class:`gradhub.kinds.layer.DropInConv2d`)."""
    function.__gradhub_options_from_model__ = True  # type: ignore[attr-defined]
    return function


def public_signature(function: Callable[..., Any], model: type[BaseModel], method: str) -> inspect.Signature:
    """``function``'s signature with each hyperparameter's default taken from ``model``.

    A parameter named like a field gets the field's default; writing a different default in the
    function is a programming error (two sources of truth) and raises ``TypeError`` here.
    """
    signature = inspect.signature(function)
    parameters = []
    for name, parameter in signature.parameters.items():
        if name in model.model_fields:
            default = field_default(model, name)
            own = parameter.default
            if own is not inspect.Parameter.empty and own != default:
                raise TypeError(
                    f"{method}: {function.__qualname__} writes the default {name}={own!r} but its hyperparameter "
                    f"model says {default!r}; drop the default from the function (the model is the one source)"
                )
            parameter = parameter.replace(default=default)
        parameters.append(parameter)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        # ``**kwargs`` passed on (a subclass's set-up around its parent's constructor): the model's
        # fields it does not name are still its hyperparameters, bound and validated here. With
        # :func:`options_from_model` they are all it takes: the ``**`` parameter leaves the signature.
        closed = getattr(function, "__gradhub_options_from_model__", False)
        named = {p.name for p in parameters}
        parameters += [
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=field_default(model, name),
                annotation=model.model_fields[name].annotation if closed else inspect.Parameter.empty,
            )
            for name in model.model_fields
            if name not in named
        ]
        if closed:
            parameters = [p for p in parameters if p.kind is not inspect.Parameter.VAR_KEYWORD]
    ordered = [p for p in parameters if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    ordered += [p for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]
    return signature.replace(parameters=_legal_order(ordered))


def _legal_order(parameters: list[inspect.Parameter]) -> list[inspect.Parameter]:
    """Positional parameters without a default after one with a default become keyword-only."""
    result, seen_default = [], False
    for parameter in parameters:
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            if parameter.default is inspect.Parameter.empty and seen_default:
                parameter = parameter.replace(kind=parameter.KEYWORD_ONLY)
            seen_default = seen_default or parameter.default is not inspect.Parameter.empty
        result.append(parameter)
    positional = [p for p in result if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    keyword = [p for p in result if p.kind is p.KEYWORD_ONLY]
    variadic = [p for p in result if p.kind is p.VAR_KEYWORD]
    return positional + keyword + variadic


def validated(
    spec_or_method: MethodSpec | str, model: type[Hyperparameters] | None = None
) -> Callable[[Function], Function]:
    """Bind a function- or module-kind implementation to its spec: hyperparameters checked per call.

    ``@validated(SPEC)`` over ``def method(inputs, *, alpha, beta)``: the defaults of ``alpha`` and
    ``beta`` come from ``SPEC.params`` (shown by ``help()`` and IDEs through ``__signature__``),
    every call is validated against the model (a :class:`~gradhub.errors.HyperparameterError`
    naming the method, parameter, value and what is allowed; an unknown keyword lists the
    accepted ones), and the wrapper carries ``spec`` so the implementation's errors can name
    ``method.spec.name``. Over a class (an ``nn.Module`` layer or loss) the same is done to its
    ``__init__``. The protocol-1 form ``validated("name", Model)`` still works.
    """
    method, hyperparameters, spec = _spec_and_model(spec_or_method, model)

    def decorate(target: Function) -> Function:
        if inspect.isclass(target):
            init = target.__init__
            checked = _checked(init, hyperparameters, method)
            target.__init__ = checked  # type: ignore[misc]
            target.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
                list(checked.__signature__.parameters.values())[1:]  # type: ignore[attr-defined]
            )
            bind_to_spec(target, spec, hyperparameters, target.__doc__)
            target.method = method  # type: ignore[attr-defined]
            return target  # type: ignore[return-value]
        wrapper = _checked(target, hyperparameters, method)
        bind_to_spec(wrapper, spec, hyperparameters, target.__doc__)
        wrapper.method = method  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


class _CallPlan:
    """What :func:`bind_and_validate` needs to bind a call without ``Signature.bind`` (a few µs each),
    and the outcome of recent calls: validated hyperparameters by their values, and whole bindings by
    the shape of the call (how many positional arguments, which keywords with which plain values)."""

    __slots__ = ("calls", "defaults", "fields", "first_field", "keyword", "order", "positional", "values")

    def __init__(self, signature: inspect.Signature, model: type[Hyperparameters]) -> None:
        parameters = signature.parameters.values()
        self.order = tuple(signature.parameters)
        self.positional = tuple(p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
        self.keyword = frozenset(p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        self.defaults = {p.name: p.default for p in parameters if p.default is not p.empty}
        self.fields = tuple(name for name in model.model_fields if name in signature.parameters)
        self.first_field = min((self.order.index(name) for name in self.fields), default=len(self.order))
        """Calls with more positional arguments than this pass a hyperparameter positionally."""
        self.values: dict[Any, dict[str, Any]] = {}
        """Validated hyperparameters by the values given (each with its type)."""
        self.calls: dict[Any, tuple[dict[str, Any], dict[str, Any]]] = {}
        """``(arguments after the positional ones, validated hyperparameters)`` by the call's shape."""


_PLANS: dict[int, tuple[inspect.Signature, type[Hyperparameters], _CallPlan | None]] = {}
_CACHED_CALLS = 256
"""Entries kept per signature in each cache (the calls of a training loop repeat one or two)."""
_IMMUTABLE = (bool, int, float, str, type(None))
_PLAIN = frozenset(_IMMUTABLE)


def _plan(signature: inspect.Signature, model: type[Hyperparameters]) -> _CallPlan | None:
    entry = _PLANS.get(id(signature))
    if entry is not None and entry[0] is signature and entry[1] is model:
        return entry[2]
    variadic = any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in signature.parameters.values())
    plan = None if variadic else _CallPlan(signature, model)
    _PLANS[id(signature)] = (signature, model, plan)  # the signature is kept alive: its id is not reused
    return plan


def _value_key(value: Any) -> Any:
    """A hashable key that tells ``1``, ``1.0`` and ``True`` apart; None for values not cached."""
    if isinstance(value, _IMMUTABLE):
        return (type(value), value)
    if type(value) is tuple and all(isinstance(item, _IMMUTABLE) for item in value):
        return (tuple, tuple((type(item), item) for item in value))
    return None


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= _CACHED_CALLS:
        cache.clear()
    cache[key] = value


def _bind_fast(
    method: str,
    signature: inspect.Signature,
    model: type[Hyperparameters],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> tuple[inspect.BoundArguments, dict[str, Any]] | None:
    """:func:`bind_and_validate` for the usual call (known names, nothing missing), or None.

    The same result as the general path: arguments in the signature's order, defaults applied,
    hyperparameters replaced by their validated values. A call shaped like an earlier one (as
    many positional arguments, no hyperparameter among them, the same keywords with equal plain
    values of the same types) reuses that binding; other calls reuse the validation of equal
    hyperparameter values. A wrong call goes the general way, which raises the gradhub error.
    """
    plan = _plan(signature, model)
    if plan is None or len(args) > len(plan.positional):
        return None
    shape: tuple[Any, ...] | None = None
    if len(args) <= plan.first_field:
        parts: list[Any] | None = [len(args)]
        for name, value in kwargs.items():
            kind = type(value)
            key = (kind, value) if kind in _PLAIN else _value_key(value)
            if key is None:
                parts = None
                break
            parts.append((name, key))  # type: ignore[union-attr]
        if parts is not None:
            shape = tuple(parts)
            hit = plan.calls.get(shape)
            if hit is not None:
                arguments = dict(zip(plan.order, args))
                arguments.update(hit[0])
                return inspect.BoundArguments(signature, arguments), dict(hit[1])  # type: ignore[arg-type]
    given = dict(zip(plan.positional, args))
    for name, value in kwargs.items():
        if name not in plan.keyword or name in given:
            return None
        given[name] = value
    missing = object()
    arguments = {name: given[name] if name in given else plan.defaults.get(name, missing) for name in plan.order}
    if any(value is missing for value in arguments.values()):  # by identity: == on an array is elementwise
        return None
    values = tuple(arguments[name] for name in plan.fields)
    value_keys = tuple(_value_key(value) for value in values)
    key = None if None in value_keys else value_keys
    checked = plan.values.get(key) if key is not None else None
    cached = checked is not None
    if checked is None:
        checked = validate_hyperparameters(method, model, dict(zip(plan.fields, values)))
    plain = cached or all(_value_key(value) is not None for value in checked.values())  # safe to share
    if key is not None and plain and not cached:
        _remember(plan.values, key, checked)
    for name in plan.fields:
        arguments[name] = checked[name]
    if shape is not None and plain:
        rest = {name: arguments[name] for name in plan.order[len(args) :]}
        _remember(plan.calls, shape, (rest, checked))
    return inspect.BoundArguments(signature, arguments), dict(checked)  # type: ignore[arg-type]


def bind_and_validate(
    method: str,
    signature: inspect.Signature,
    model: type[Hyperparameters],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> tuple[inspect.BoundArguments, dict[str, Any]]:
    """Bind a call to ``signature`` (gradhub errors) and validate the arguments that are model fields.

    Returns the bound arguments, defaults applied and hyperparameters replaced by their validated
    values, and the validated hyperparameters. What every kind's call frame does first. A call that
    repeats hyperparameter values (of the same types) reuses their validation: about 2 µs instead of
    ~20 (binding by name, no ``Signature.bind``, no pydantic).
    """
    fast = _bind_fast(method, signature, model, args, kwargs)
    if fast is not None:
        return fast
    accepted = [name for name in signature.parameters if name in model.model_fields] or list(model.model_fields)
    bound = bind_arguments(method, signature, args, kwargs, accepted, model)
    bound.apply_defaults()
    fields = [name for name in model.model_fields if name in bound.arguments]
    checked = validate_hyperparameters(method, model, {name: bound.arguments[name] for name in fields})
    bound.arguments.update({name: checked[name] for name in fields})
    return bound, checked


def by_name(signature: inspect.Signature) -> bool:
    """Whether every argument bound to ``signature`` can be passed by keyword: then a frame calls
    ``function(**bound.arguments)`` (``bound.args``/``bound.kwargs`` walk the signature every call)."""
    return not any(
        p.kind in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in signature.parameters.values()
    )


def _checked(function: Callable[..., Any], model: type[Hyperparameters], method: str) -> Callable[..., Any]:
    signature = public_signature(function, model, method)
    keywords = by_name(signature)

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound, _ = bind_and_validate(method, signature, model, args, kwargs)
        return function(**bound.arguments) if keywords else function(*bound.args, **bound.kwargs)

    wrapper.__signature__ = signature  # type: ignore[attr-defined]
    return wrapper
