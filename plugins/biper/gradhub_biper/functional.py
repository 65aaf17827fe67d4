"""BiPer's binarisers: the square wave with its sine surrogate, and sign with the triangle surrogate.

Paper: "BiPer: Binary Neural Networks using a Periodic Function", Edwin Vargas, Claudia V.
Correa, Carlos Hinojosa, Henry Arguello, CVPR 2024, arXiv:2404.01278.
Official code: https://github.com/edmav4/BiPer (``cifar10/modules/binarized_modules.py``).

Weights (Sec. 3, Eq. 4-5): the forward pass uses the square wave
``W_b = sign(sin(omega W))`` and the backward pass the derivative of the sine with the same
period, ``dL/dW = dL/dW_b * omega cos(omega W)``. The official code writes this as
``BinaryQuantize.apply(torch.sin(freq * w))``, an identity straight-through estimator over
``sign`` composed with autograd's derivative of ``sin``; :func:`biper_binarize` is the same
map as one autograd Function.

Activations (as in the official ``BinaryQuantize_a``, inherited from ReCU): ``sign(a)``
forward, ``dL/da = dL/dA_b * max(0, 2 - 2|a|)`` backward (a triangle of area 2 on |a| < 1).

Differences from the official code:

* sign(0) is +1 here (``torch.sign`` gives 0), so binarised tensors are exactly +-1
  (NaN still gives 0, as in ``torch.sign``).
* The sine is evaluated in float32 at least: for bfloat16 latent weights ``omega W`` in
  bfloat16 would lose the phase (8 bits of mantissa), so the phase is computed in float32
  and only the result is cast back.
"""

from __future__ import annotations

from typing import Any

import torch

from gradhub.hyperparameters import validated
from gradhub.kinds.inputs import require_tensor
from gradhub_biper import BIPER_SIGN, BIPER_SIGN_ACT

__all__ = ["biper_binarize", "phase_dtype", "sign_act", "sine_weight", "square_wave"]


def phase_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the phase omega*w is computed in: float32 at least (float64 stays float64)."""
    return torch.promote_types(dtype, torch.float32)


def square_wave(values: torch.Tensor) -> torch.Tensor:
    """sign(values) with sign(0) = +1 (also for -0.0), in the dtype of ``values``; NaN gives 0, as torch.sign."""
    return torch.sign(values).masked_fill_(values == 0, 1)


class _BiPerBinarize(torch.autograd.Function):
    """W_b = sign(sin(omega W)); dL/dW = dL/dW_b * omega * cos(omega W) (Eq. 4-5)."""

    @staticmethod
    def forward(ctx: Any, weight: torch.Tensor, freq: float) -> torch.Tensor:
        ctx.save_for_backward(weight)
        ctx.freq = freq
        phase = freq * weight.to(phase_dtype(weight.dtype))
        return square_wave(torch.sin(phase)).to(weight.dtype)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        (weight,) = ctx.saved_tensors
        compute = phase_dtype(weight.dtype)
        freq = ctx.freq
        grad = grad_output.to(compute) * freq * torch.cos(freq * weight.to(compute))
        return grad.to(weight.dtype), None


class _SignWithTriangle(torch.autograd.Function):
    """A_b = sign(a); dL/da = dL/dA_b * max(0, 2 - 2|a|) (official ``BinaryQuantize_a``)."""

    @staticmethod
    def forward(ctx: Any, values: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(values)
        return square_wave(values)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> torch.Tensor:
        (values,) = ctx.saved_tensors
        return (2 - 2 * values.abs()).clamp_(min=0) * grad_output


def binarize_weight(weight: torch.Tensor, freq: float) -> torch.Tensor:
    """:func:`biper_binarize` without validation (the layers validate ``freq`` once)."""
    return _BiPerBinarize.apply(weight, freq)


def sine_weight(weight: torch.Tensor, freq: float) -> torch.Tensor:
    """Stage-1 weights sin(omega W), the phase in float32 at least, cast back to W's dtype."""
    return torch.sin(freq * weight.to(phase_dtype(weight.dtype))).to(weight.dtype)


@validated(BIPER_SIGN)
def biper_binarize(w: torch.Tensor, *, freq: float) -> torch.Tensor:
    """BiPer's weight binariser: ``sign(sin(freq * w))`` in {-1, +1}, gradient ``freq * cos(freq * w)``.

    Forward is the square wave of period ``2 pi / freq`` (Eq. 4); backward is the exact
    derivative of the sine with the same period (Eq. 5), so forward and backward agree on
    where the sign flips. ``w`` is any real floating tensor; the result has its shape and
    dtype. sign(0) = +1.
    """
    require_tensor(BIPER_SIGN.name, "w", w)
    return _BiPerBinarize.apply(w, freq)


@validated(BIPER_SIGN_ACT)
def sign_act(x: torch.Tensor) -> torch.Tensor:
    """sign(x) in {-1, +1} (sign(0) = +1) with the triangle surrogate gradient max(0, 2 - 2|x|)."""
    require_tensor(BIPER_SIGN_ACT.name, "x", x)
    return _SignWithTriangle.apply(x)
