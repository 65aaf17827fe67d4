"""The loss kind: an ``nn.Module`` subclass or a function ``(input, target, ...) -> Tensor``.

Built and called like layers: ``cls(**hparams)(*inputs)`` or ``fn(*inputs, **hparams)``, with
``inputs[0]`` the prediction that gradients flow into. A loss of ``LossCapabilities.form``
``"model"`` is a training objective over a model instead (a diffusion or score-matching loss
that draws noise levels and noise itself): ``fn(model, *data, generator=g, **hparams)``, with
``inputs[0]`` the model, randomness drawn only from ``generator``, and gradients flowing into
the model's parameters. A loss that takes ``reduction``
lists the values it accepts in ``LossCapabilities.reductions``; ``"none"`` returns
per-element (or per-sample) values whose sum and mean are the other two reductions.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

from gradhub.errors import HyperparameterError, UnsupportedInputError
from gradhub.hyperparameters import bind_and_validate, bind_to_spec, by_name, public_signature, validated
from gradhub.kernels.reductions import extremes
from gradhub.kinds.inputs import DeferredCheck, deferred_checks

__all__ = ["LossExample", "is_loss_target", "loss", "reduce", "require_finite_loss"]

Target = TypeVar("Target", bound=Callable[..., Any])


@dataclass(kw_only=True)
class LossExample:
    inputs: tuple[Any, ...]
    """``(prediction, target, ...)``, the prediction differentiated; for a model-form loss
    ``(model, *data)``, the model's parameters differentiated."""
    hparams: dict[str, Any] = field(default_factory=dict)


def is_loss_target(target: Any) -> bool:
    return callable(target)


def reduce(values: torch.Tensor, reduction: str, method: str) -> torch.Tensor:
    """Apply ``reduction`` ("none", "mean" or "sum") to per-element loss values."""
    if reduction == "none":
        return values
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    raise HyperparameterError(method, "reduction", reduction, "one of 'none', 'mean', 'sum'")


def require_finite_loss(method: str, value: Any, deferred: Sequence[DeferredCheck] = ()) -> None:
    """The ``deferred`` value checks pass and a floating-point loss has no NaN or infinity, in one host read.

    Otherwise the error of the first failing value check (they explain a NaN loss better), or one
    naming ``method`` and the count of non-finite loss entries.
    """
    checks = isinstance(value, torch.Tensor) and value.is_floating_point()
    if checks and not deferred and value.numel() == 1:  # the usual scalar loss: one read, no reduction ops
        if not math.isfinite(value.item()):
            raise UnsupportedInputError(method, "loss value", "1 of 1 entries non-finite", _FINITE_LOSS)
        return
    counts = [check.count for check in deferred]
    if checks:
        counts.append((~torch.isfinite(extremes(value))).sum())  # 0, 1 or 2: the count is made on the error path
    if not counts:
        return
    read = torch.stack([count.to(counts[-1].device) for count in counts]).tolist()
    for check, count in zip(deferred, read):
        if count:
            check.raise_error()
    if checks and read[-1]:
        raise UnsupportedInputError(
            method,
            "loss value",
            f"{int((~torch.isfinite(value.detach())).sum())} of {value.numel()} entries non-finite",
            _FINITE_LOSS,
        )


_FINITE_LOSS = (
    "a finite loss: the data or the model's outputs hold NaN or infinity (check_finite=False skips this check)"
)


def loss(spec: Any) -> Callable[[Target], Target]:
    """The loss kind's call frame: ``@validated(spec)`` plus the rule that a loss value is finite or an error.

    Over a function: it declares its hyperparameters keyword-only without defaults (they come from
    ``spec.params``) and gains a keyword ``check_finite=True``. Over an ``nn.Module`` class: its
    ``__init__`` is validated and ``forward`` checked; ``module.check_finite = False`` turns the check
    off for that instance. A returned loss with a non-finite entry raises
    :class:`~gradhub.errors.UnsupportedInputError` naming the method and how many entries are bad,
    instead of handing NaN to ``backward()``. Input value checks the method makes with
    :func:`~gradhub.kinds.inputs.require_values` are deferred to the same read: one host sync per call
    for all of them (none with ``check_finite=False`` and no value checks).
    """
    model = spec.params

    def decorate_class(target: type) -> type:
        validated(spec)(target)
        forward = target.forward

        @functools.wraps(forward)
        def checked_forward(self: Any, *args: Any, **kwargs: Any) -> Any:
            with deferred_checks() as deferred:
                value = forward(self, *args, **kwargs)
            require_finite_loss(spec.name, value if self.check_finite else None, deferred)
            return value

        target.forward = checked_forward  # type: ignore[attr-defined]
        target.check_finite = True  # type: ignore[attr-defined]
        return target

    def decorate(function: Target) -> Target:
        if inspect.isclass(function):
            return decorate_class(function)  # type: ignore[return-value]
        own = public_signature(function, model, spec.name)
        flag = inspect.Parameter("check_finite", inspect.Parameter.KEYWORD_ONLY, default=True, annotation="bool")
        signature = own.replace(parameters=[*own.parameters.values(), flag])
        keywords = by_name(own)

        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> torch.Tensor:
            bound, _ = bind_and_validate(spec.name, signature, model, args, kwargs)
            check = bound.arguments.pop("check_finite")
            if not isinstance(check, bool):
                raise HyperparameterError(spec.name, "check_finite", check, "True or False")
            with deferred_checks() as deferred:
                value = function(**bound.arguments) if keywords else function(*bound.args, **bound.kwargs)
            require_finite_loss(spec.name, value if check else None, deferred)
            return value

        bind_to_spec(call, spec, model, function.__doc__, signature)
        return call  # type: ignore[return-value]

    return decorate
