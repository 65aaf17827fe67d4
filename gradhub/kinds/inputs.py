"""Input checks shared by every kind's call frame, with one error format.

Each helper raises :class:`~gradhub.errors.UnsupportedInputError` naming the method, the
argument, what was given and what is allowed ("any_fbeta: unsupported prediction dtype
torch.int64; prediction must be a floating-point tensor"), so layers, losses and the frames of
solvers and samplers word their input errors alike. They cost no host sync, except
:func:`require_finite` and :func:`require_values`, which read one flag back (call them once per
call, not per element; give users a ``check_finite=False`` escape where it matters). Inside
:func:`deferred_checks` (the loss frame opens one) :func:`require_values` reads nothing: its count
joins the frame's single read at the end of the call.
"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from typing import Any

import torch

from gradhub.errors import UnsupportedInputError
from gradhub.kernels.reductions import all_finite

__all__ = [
    "DeferredCheck",
    "deferred_checks",
    "require_finite",
    "require_generator",
    "require_matching_shapes",
    "require_same_device",
    "require_tensor",
    "require_values",
]

_KINDS_OF_DTYPE = {
    "floating": (torch.Tensor.is_floating_point, "a floating-point tensor"),
    "real": (lambda t: not t.is_complex(), "a real (not complex) tensor"),
    "any": (lambda t: True, "a tensor"),
}


def require_tensor(
    method: str,
    name: str,
    value: Any,
    *,
    dtype: str = "floating",
    dtypes: Sequence[torch.dtype] | None = None,
    dim: int | Sequence[int] | None = None,
    min_dim: int | None = None,
    nonempty: bool = False,
    what: str = "",
) -> torch.Tensor:
    """``value`` as a tensor of the required sort, or an error naming ``method`` and ``name``.

    ``dtype``: "floating", "real" or "any"; ``dtypes``: the exact dtypes allowed (e.g. float32 and
    float64); ``dim``: allowed numbers of dimensions; ``min_dim``: a
    lower bound on them; ``nonempty``: at least one element; ``what``: words for the contents
    ("of probabilities") used in the message.
    """
    test, noun = _KINDS_OF_DTYPE[dtype]
    if not isinstance(value, torch.Tensor):
        raise UnsupportedInputError(method, name, type(value).__name__, f"{name} must be {noun}{_suffix(what)}")
    if not test(value):
        raise UnsupportedInputError(method, f"{name} dtype", value.dtype, f"{name} must be {noun}{_suffix(what)}")
    if dtypes is not None and value.dtype not in dtypes:
        allowed = " or ".join(str(d).removeprefix("torch.") for d in dtypes)
        raise UnsupportedInputError(method, f"{name} dtype", value.dtype, f"{name} must be {allowed}{_suffix(what)}")
    if dim is not None or min_dim is not None:
        allowed = (dim,) if isinstance(dim, int) else tuple(dim) if dim is not None else None
        if (allowed is not None and value.dim() not in allowed) or (min_dim is not None and value.dim() < min_dim):
            wanted = " or ".join(f"{d}-D" for d in allowed) if allowed is not None else f"at least {min_dim}-D"
            raise UnsupportedInputError(
                method, f"{name} shape", tuple(value.shape), f"{name} must be {wanted}{_suffix(what)}"
            )
    if nonempty and value.numel() == 0:
        raise UnsupportedInputError(
            method, f"{name} shape", tuple(value.shape), f"{name} must hold at least one element"
        )
    return value


def _suffix(what: str) -> str:
    return f" {what}" if what else ""


def require_same_device(method: str, **tensors: torch.Tensor) -> None:
    """Every tensor on one device, or an error listing where each is."""
    devices = {tensor.device for tensor in tensors.values()}
    if len(devices) > 1:
        where = ", ".join(f"{name} on {tensor.device}" for name, tensor in tensors.items())
        raise UnsupportedInputError(method, "devices", where, f"{', '.join(tensors)} must be on the same device")


def require_matching_shapes(method: str, squeeze: bool = False, **tensors: torch.Tensor) -> None:
    """Every tensor of one shape (``squeeze``: up to dimensions of size 1), or an error listing them."""
    # squeeze() without making views: the shape less its dimensions of size 1
    shapes = {tuple(size for size in t.shape if size != 1) if squeeze else tuple(t.shape) for t in tensors.values()}
    if len(shapes) > 1:
        given = ", ".join(f"{name} {tuple(tensor.shape)}" for name, tensor in tensors.items())
        extra = ", up to dimensions of size 1 (e.g. (N, 1) and (N,))" if squeeze else ""
        raise UnsupportedInputError(method, "shapes", given, f"{', '.join(tensors)} must have the same shape{extra}")


def require_finite(method: str, name: str, value: torch.Tensor) -> None:
    """No NaN or infinity in ``value`` (one host sync), or an error counting the bad entries."""
    if (value.is_floating_point() or value.is_complex()) and not bool(all_finite(value)):
        bad = ~torch.isfinite(value)  # the error path: count them
        first = value.reshape(-1)[bad.reshape(-1)][0].item()
        raise UnsupportedInputError(
            method,
            f"{name} values",
            f"{int(bad.sum())} of {value.numel()} entries non-finite (first: {first!r})",
            f"{name} must be finite",
        )


class DeferredCheck:
    """A :func:`require_values` whose read waits for the frame: the count of bad entries, on the device."""

    def __init__(self, method: str, name: str, bad: torch.Tensor, value: torch.Tensor, allowed: str) -> None:
        self.method, self.name, self.bad, self.value, self.allowed = method, name, bad, value, allowed
        self.count = bad.sum()

    def raise_error(self) -> None:
        """The error :func:`require_values` raises (one more read, on the error path only)."""
        require_values(self.method, self.name, self.bad, self.value, self.allowed)


_DEFERRED: contextvars.ContextVar[list[DeferredCheck] | None] = contextvars.ContextVar(
    "gradhub_deferred_checks", default=None
)


class deferred_checks:
    """Within the block :func:`require_values` only records its check; the caller reads them all at once.

    A kind frame wraps the method's call in it and reads every recorded count together with its own
    (the loss frame: with the loss value's non-finite count), so value checks add no host sync. (A
    class, not a generator: it runs on every call of a loss, where a generator's frame costs µs.)
    """

    __slots__ = ("collected", "token")

    def __enter__(self) -> list[DeferredCheck]:
        self.collected: list[DeferredCheck] = []
        self.token = _DEFERRED.set(self.collected)
        return self.collected

    def __exit__(self, *exception: object) -> None:
        _DEFERRED.reset(self.token)


def require_values(method: str, name: str, bad: torch.Tensor, value: torch.Tensor, allowed: str) -> None:
    """``bad`` (a boolean mask over ``value``) is all False (one host sync), or an error showing the first.

    Inside :func:`deferred_checks` the check is recorded for the frame's one read instead.
    """
    collected = _DEFERRED.get()
    if collected is not None:
        collected.append(DeferredCheck(method, name, bad, value, allowed))
        return
    if bool(bad.any()):
        first = value.reshape(-1)[bad.reshape(-1).nonzero()[0, 0]].item()
        raise UnsupportedInputError(
            method, f"{name} values", f"{first!r} ({int(bad.sum())} of {value.numel()} entries)", allowed
        )


def require_generator(method: str, generator: Any, like: torch.Tensor, name: str = "input") -> None:
    """``generator`` is None or a ``torch.Generator`` on the device of ``like`` (named ``name`` in the message)."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise UnsupportedInputError(method, "generator", type(generator).__name__, "pass a torch.Generator or None")
    if generator.device.type != like.device.type:
        raise UnsupportedInputError(
            method, "generator device", generator.device, f"the generator must be on {name}'s device ({like.device})"
        )
