"""The layer kind: ``gradhub.get(name)`` is an ``nn.Module`` subclass or a function over tensors.

A module class is built as ``cls(**hparams)`` and called as ``module(*inputs)``; a function
is called as ``fn(*inputs, **hparams)``. A *composite* layer wraps modules the user brings
(a wrapper such as DANN's feature extractor + heads): it is built as
``cls(*modules, **hparams)``, and its example supplies the sub-modules through a factory.
The backward is either the exact gradient (``LayerCapabilities.gradient == "exact"``:
gradcheck must pass in float64) or a declared surrogate (straight-through estimators,
smooth surrogates of step functions).

A drop-in replacement for ``nn.Conv2d`` or ``nn.Linear`` (a binarised or preconditioned layer)
inherits :class:`DropInConv2d` or :class:`DropInLinear`: torch's arguments stay positional with
torch's names, the method's options are keyword-only, and both are validated by the spec's model
(which inherits :class:`gradhub.hyperparameters.Conv2dArguments` or ``LinearArguments``). The layer
writes only ``configure(self, *, option, ...)``, which stores its options::

    @validated(MY_CONV2D)
    class MyConv2d(DropInConv2d):
        def configure(self, *, o: float) -> None:
            self.o = o

        def forward(self, input): ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import options_from_model
from gradhub.kinds.inputs import require_same_device, require_tensor

__all__ = ["DropInConv2d", "DropInLinear", "LayerExample", "is_layer_target"]


@dataclass(kw_only=True)
class LayerExample:
    """Inputs for one forward pass, and hyperparameters that build a valid instance."""

    inputs: tuple[torch.Tensor, ...]
    """Floating-point inputs are differentiated; keep them small (gradcheck runs on them)."""
    hparams: dict[str, Any] = field(default_factory=dict)
    modules: Callable[[], tuple[nn.Module, ...]] | None = None
    """For a composite layer: builds the sub-modules passed positionally before the hyperparameters.

    A factory, not the modules, so that the suite's seed decides their initial weights.
    """


def is_layer_target(target: Any) -> bool:
    return (isinstance(target, type) and issubclass(target, nn.Module)) or (
        callable(target) and not isinstance(target, type)
    )


def _require_like_weights(layer: Any, inputs: Any) -> None:
    """``inputs`` is a tensor of the layer's weights' dtype, on their device (errors name ``layer.method``)."""
    require_tensor(layer.method, "input", inputs, dtypes=(layer.weight.dtype,), what="like the layer's weights")
    require_same_device(layer.method, input=inputs, weight=layer.weight)


class DropInConv2d(nn.Conv2d):
    """``nn.Conv2d``'s constructor for a method's drop-in Conv2d (see the module docstring).

    The options (every field of the spec's model that is not one of nn.Conv2d's arguments) are
    handed to :meth:`configure` before nn.Conv2d's constructor runs, so ``reset_parameters`` may
    read them. ``@validated(SPEC)`` gives the class its public signature, with the model's defaults.
    """

    @options_from_model
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int],
        padding: int | tuple[int, int] | str,
        dilation: int | tuple[int, int],
        groups: int,
        bias: bool,
        padding_mode: str,
        *,
        device: Any = None,
        dtype: torch.dtype | None = None,
        **options: Any,
    ) -> None:
        self.configure(**options)
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
            padding_mode=padding_mode,
            device=device,
            dtype=dtype,
        )

    def check_input(self, input: Any) -> None:  # noqa: A002 (nn.Conv2d's name)
        """``input`` is (N, C_in, H, W) or (C_in, H, W), of the weights' dtype and device; else a clear error."""
        _require_like_weights(self, input)
        if input.ndim not in (3, 4) or input.shape[-3] != self.in_channels:
            raise UnsupportedInputError(
                self.method,  # type: ignore[attr-defined]
                "input shape",
                tuple(input.shape),
                f"(N, {self.in_channels}, H, W) or ({self.in_channels}, H, W) is needed",
            )

    def configure(self, **options: Any) -> None:
        """Store the method's validated options (called before nn.Conv2d's constructor)."""
        if options:
            raise NotImplementedError(f"{type(self).__name__} takes options {sorted(options)}: define configure()")


class DropInLinear(nn.Linear):
    """``nn.Linear``'s constructor for a method's drop-in Linear (see :class:`DropInConv2d`)."""

    @options_from_model
    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool,
        *,
        device: Any = None,
        dtype: torch.dtype | None = None,
        **options: Any,
    ) -> None:
        self.configure(**options)
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)

    def check_input(self, input: Any) -> None:  # noqa: A002 (nn.Linear's name)
        """``input`` is (..., in_features), of the weights' dtype and device; else a clear error."""
        _require_like_weights(self, input)
        if input.ndim == 0 or input.shape[-1] != self.in_features:
            raise UnsupportedInputError(
                self.method,  # type: ignore[attr-defined]
                "input shape",
                tuple(input.shape),
                f"(..., {self.in_features}) is needed",
            )

    def configure(self, **options: Any) -> None:
        """Store the method's validated options (called before nn.Linear's constructor)."""
        if options:
            raise NotImplementedError(f"{type(self).__name__} takes options {sorted(options)}: define configure()")
