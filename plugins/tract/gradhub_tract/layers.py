"""TrActLinear, TrActConv2d and ``tract(layer)``: first layers that train their pre-activations.

Paper: "TrAct: Making First-layer Pre-Activations Trainable", Felix Petersen, Christian
Borgelt, Stefano Ermon, NeurIPS 2024, arXiv:2410.23970. Official code:
https://github.com/Felix-Petersen/tract (``src/tract.py``: ``TrActLinear``, ``TrActConv2d`` and
the wrapper ``TrAct(layer, l=0.1)``).

Each layer is its plain PyTorch parent in the forward pass, in the input gradient and in the
bias gradient; only the weight gradient becomes G_W (A^T A / N + lambda I)^-1 (Sec. 3; the math
and its derivation are in :mod:`gradhub_tract.functional`). The modified gradient is handed to
whatever optimizer trains the model; weight decay applied by the optimizer is not preconditioned
(as official). The preconditioner is built from the batch the layer sees: under DDP each rank
uses its own batch, and gradient accumulation over micro-batches is not the same as one large
batch (the official code behaves the same way).

What differs from the official code:

* ``tract(layer)`` (also spelled ``TrAct(layer)``) keeps the layer's dilation and padding mode
  (including ``padding="same"``) and refuses ``groups != 1``, a layer whose ``forward`` is
  overridden, a lazy (uninitialised) layer and a parametrised weight; the official wrapper builds
  a fresh layer (drawing new random weights from the global generator, then discarding them) and
  silently drops dilation, groups and the padding mode. Here the new module is built on the meta
  device, so wrapping draws no random numbers and allocates nothing; it takes the layer's training
  mode.
* ``TrActConv2d`` accepts nn.Conv2d's ``dilation``, string ``padding`` and ``padding_mode`` (the
  official class accepts them but its forward ignores them): non-zero padding modes and asymmetric
  ``"same"`` padding are applied with ``F.pad`` before the convolution, as ``nn.Conv2d`` does, so
  the patch matrix is that of the padded input.
* lambda is ``l`` (keyword-only) in every constructor (official: ``lambda_`` in the classes, ``l``
  in the wrapper); it is validated (> 0, finite) and can be changed after construction.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn
from torch.nn import functional as F

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import bind_to_spec, validate_hyperparameters, validated
from gradhub.kinds.inputs import require_tensor
from gradhub.kinds.layer import DropInConv2d, DropInLinear
from gradhub_tract import TRACT, TRACT_CONV2D, TRACT_LINEAR, TrActOptions
from gradhub_tract.functional import tract_conv2d, tract_linear


class _TrActLayer:
    """What TrActLinear and TrActConv2d share: lambda and the solver, validated when changed."""

    method: str
    """Set by ``@validated(SPEC)``: the method's name, for error messages."""
    _l: float
    _inv_type: str

    @property
    def l(self) -> float:  # noqa: E743 (the paper's name)
        """lambda > 0 of G_W (A^T A / N + lambda I)^-1; may be changed between steps (validated)."""
        return self._l

    @l.setter
    def l(self, value: float) -> None:  # noqa: E743
        self._l = validate_hyperparameters(self.method, TrActOptions, {"l": value})["l"]

    @property
    def inv_type(self) -> str:
        """'inverse' (LU solve) or 'cholesky': how the positive definite system is solved."""
        return self._inv_type

    @inv_type.setter
    def inv_type(self, value: str) -> None:
        self._inv_type = validate_hyperparameters(self.method, TrActOptions, {"inv_type": value})["inv_type"]

    def configure(self, *, l: float, inv_type: str) -> None:  # noqa: E741 (the paper's name)
        """TrAct's options, validated by the spec's model (called by the drop-in constructor)."""
        self._l, self._inv_type = l, inv_type

    def _tract_repr(self) -> str:
        return f"l={self._l}, inv_type={self._inv_type!r}"


@validated(TRACT_LINEAR)
class TrActLinear(_TrActLayer, DropInLinear):
    """Drop-in ``nn.Linear`` whose weight gradient is G_W (A^T A / N + lambda I)^-1.

    nn.Linear's arguments keep their positions; TrAct's (``l``, ``inv_type``) are keyword-only.
    The input is (..., in_features); every leading dimension is a row of A (N = input.numel() /
    in_features), so a ViT's (batch, tokens, patch) embedding input is preconditioned over all
    of its tokens, as official.
    """

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002 (nn.Linear's name)
        require_tensor(self.method, "input", input, min_dim=1)
        if input.shape[-1] != self.in_features:
            raise UnsupportedInputError(
                self.method, "input shape", tuple(input.shape), f"(..., {self.in_features}) is needed"
            )
        return tract_linear(input, self.weight, self.bias, self._l, self._inv_type)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self._tract_repr()}"


@validated(TRACT_CONV2D)
class TrActConv2d(_TrActLayer, DropInConv2d):
    """Drop-in ``nn.Conv2d`` (groups 1) whose weight gradient is G_W (P^T P / N + lambda I)^-1.

    P is the (N, C_in k_h k_w) matrix of the input's patches (``F.unfold``), N = B H_out W_out.
    nn.Conv2d's arguments keep their positions and defaults; TrAct's (``l``, ``inv_type``) are
    keyword-only. Dilation, ``padding="same"/"valid"`` and every ``padding_mode`` are supported;
    ``groups`` must be 1.
    """

    def _padding_plan(self) -> tuple[list[int] | None, tuple[int, int]]:
        """(what ``F.pad`` applies first, or None; the convolution's own zero padding), as nn.Conv2d pads."""
        if self.padding_mode != "zeros":
            return self._reversed_padding_repeated_twice, (0, 0)
        if isinstance(self.padding, str):
            left_w, right_w, left_h, right_h = self._reversed_padding_repeated_twice
            if left_w == right_w and left_h == right_h:  # "valid", or "same" with odd effective kernels
                return None, (left_h, left_w)
            return self._reversed_padding_repeated_twice, (0, 0)
        return None, self.padding  # type: ignore[return-value]

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002 (nn.Conv2d's name)
        require_tensor(self.method, "input", input, dim=(3, 4))
        if input.shape[-3] != self.in_channels:
            raise UnsupportedInputError(
                self.method,
                "input shape",
                tuple(input.shape),
                f"(N, {self.in_channels}, H, W) or ({self.in_channels}, H, W) is needed",
            )
        batched = input.dim() == 4
        x = input if batched else input.unsqueeze(0)
        pre_pad, padding = self._padding_plan()
        if pre_pad is not None:
            mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
            x = F.pad(x, pre_pad, mode=mode)
        output = tract_conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation, self._l, self._inv_type)
        return output if batched else output.squeeze(0)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self._tract_repr()}"


def _check_wrappable(layer: nn.Module, base: type[nn.Module], ours: type[nn.Module]) -> None:
    """A plain, initialised layer of ``base``, or one of ours: TrAct replaces exactly its linear map."""
    name = type(layer).__name__
    if isinstance(getattr(layer, "weight", None), nn.parameter.UninitializedParameter):
        raise UnsupportedInputError(
            TRACT.name, "layer", f"{name} (uninitialised)", "initialise the lazy layer (one forward pass) first"
        )
    overridden = [
        method
        for method in ("forward", "_conv_forward")
        if hasattr(base, method) and getattr(type(layer), method) not in (getattr(base, method), getattr(ours, method))
    ]
    if overridden:
        raise UnsupportedInputError(
            TRACT.name,
            "layer",
            f"{name} (overrides {', '.join(overridden)})",
            f"TrAct replaces the plain {base.__name__} map; a subclass with its own forward would lose it",
        )
    for parameter in ("weight", "bias"):
        value = getattr(layer, parameter)
        if value is not None and not isinstance(value, nn.Parameter):
            raise UnsupportedInputError(
                TRACT.name,
                f"layer {parameter}",
                type(value).__name__,
                f"the layer's {parameter} must be an nn.Parameter (remove parametrizations first)",
            )


@validated(TRACT)
def tract(layer: nn.Linear | nn.Conv2d, *, l: float, inv_type: str) -> TrActLinear | TrActConv2d:  # noqa: E741
    """The TrAct version of an initialised first layer, sharing its Parameter objects.

    ``layer`` is an ``nn.Linear`` or ``nn.Conv2d`` (groups 1). The result is a
    :class:`TrActLinear` or :class:`TrActConv2d` with the same configuration, whose ``weight`` and
    ``bias`` *are* ``layer.weight`` and ``layer.bias``: an optimizer built before or after wrapping
    trains it, and its ``state_dict`` has the same keys. Put it where the layer was::

        model.conv1 = tract(model.conv1, l=0.1)
    """
    if isinstance(layer, nn.Linear):
        _check_wrappable(layer, nn.Linear, TrActLinear)
        wrapped: TrActLinear | TrActConv2d = TrActLinear(
            layer.in_features, layer.out_features, layer.bias is not None, l=l, inv_type=inv_type, device="meta"
        )
    elif isinstance(layer, nn.Conv2d):
        _check_wrappable(layer, nn.Conv2d, TrActConv2d)
        if layer.groups != 1:
            raise UnsupportedInputError(
                TRACT.name,
                "layer groups",
                layer.groups,
                "groups must be 1: TrAct preconditions with one patch matrix shared by every output channel",
            )
        wrapped = TrActConv2d(
            layer.in_channels,
            layer.out_channels,
            layer.kernel_size,
            layer.stride,
            layer.padding,
            layer.dilation,
            1,
            layer.bias is not None,
            layer.padding_mode,
            l=l,
            inv_type=inv_type,
            device="meta",
        )
    else:
        raise UnsupportedInputError(
            TRACT.name,
            "layer",
            type(layer).__name__,
            "an nn.Linear or nn.Conv2d (the model's first layer) is needed",
        )
    wrapped.weight = layer.weight
    wrapped.bias = layer.bias
    return wrapped.train(layer.training)


class TrAct(nn.Module):
    """``TrAct(layer, l=0.1)``, the official spelling of :func:`tract`: a TrActLinear or TrActConv2d.

    Constructing it returns the TrAct version of ``layer`` (not an instance of this class), sharing
    the layer's Parameters; see :func:`tract`.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
        return tract(*args, **kwargs)


bind_to_spec(TrAct, TRACT, TRACT.params, TrAct.__doc__, signature=tract.__signature__)  # type: ignore[attr-defined]


__all__ = ["TrAct", "TrActConv2d", "TrActLinear", tract.__name__]
