"""reste_sign: sign(x) forward with ReSTE's rectified power-function backward.

Paper: "Estimator Meets Equilibrium Perspective: A Rectified Straight Through Estimator for
Binary Neural Networks Training", Xiao-Ming Wu, Dian Zheng, Zuhao Liu, Wei-Shi Zheng,
ICCV 2023, arXiv:2308.06689. Official code: https://github.com/DravenALG/ReSTE
(``model/binary_module/binarized_modules.py``, ``Binary_ReSTE``).

The forward pass is exactly ``torch.sign(x)`` (sign(0) = 0, as official). The backward is the
derivative of the power surrogate (the paper's "equivalent forward", Eq. 8)

    F_o(x) = sign(x) |x|^(1/o),   o >= 1,

rectified (Eq. 10): with phi the factor the incoming gradient is multiplied by,

    phi(x) = (1/o) |x|^((1-o)/o)          for interval < |x| <= t,
    phi(x) = interval^(1/o) / interval    for |x| <= interval (the chord slope from 0 to
                                          (interval, interval^(1/o)); bounds the derivative,
                                          which is infinite at 0 for o > 1),
    phi(x) = 0                            for |x| > t.

Boundaries as official: |x| = interval takes the chord branch, |x| = t the power branch, x = 0
the chord branch. o = 1 gives phi = 1 on |x| <= t exactly (0.1 / 0.1 = 1, |x|^0 = 1): the
clipped straight-through estimator, bit for bit. F_o is a backward surrogate only: nothing
here ever outputs F_o in a forward pass (the indicators evaluate it, see
:mod:`gradhub_reste.indicators`).

Differences from the official code: phi is one ``torch.where`` expression (no boolean-mask
scatter), computed in float32 at least (for float16/bfloat16 inputs the power is evaluated in
float32 and the gradient cast back); o, t and interval are Python numbers validated once by
the method's hyperparameter model (official: 0-d tensors moved to the device every call, and
the interval hard-coded to 0.1); a forward-mode rule (jvp, the same phi) and vmap support are
added. NaN inputs give a NaN forward and a zero gradient, as official.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from gradhub.hyperparameters import validated
from gradhub.kernels import direct_apply
from gradhub.kinds.inputs import require_tensor
from gradhub_reste import RESTE_SIGN


def surrogate_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype phi and F_o are computed in: float32 at least (float64 stays float64)."""
    return torch.promote_types(dtype, torch.float32)


def rectified_derivative(x: Tensor, o: float, t: float, interval: float) -> Tensor:
    """phi(x) of Eq. 10 (module docstring), elementwise, in ``surrogate_dtype(x.dtype)``.

    One ``torch.where`` expression, so a compiler fuses it into a single kernel; the power is taken
    of ``max(|x|, interval)`` so that the branch not taken is finite (no inf * 0 in a double backward).
    """
    magnitude = x.to(surrogate_dtype(x.dtype)).abs()
    chord = interval ** (1.0 / o) / interval
    slope = magnitude.clamp_min(interval).pow((1.0 - o) / o) * (1.0 / o)
    return torch.where(magnitude <= interval, chord, torch.where(magnitude <= t, slope, 0.0))


def power_surrogate(x: Tensor, o: float) -> Tensor:
    """F_o(x) = sign(x) |x|^(1/o) (Eq. 8), unclipped as the official indicator, in ``surrogate_dtype(x.dtype)``."""
    wide = x.to(surrogate_dtype(x.dtype))
    return torch.sign(wide) * wide.abs().pow(1.0 / o)


def _times_phi(values: Tensor, x: Tensor, o: float, t: float, interval: float) -> Tensor:
    # The product in float32 or wider, one rounding back to x's dtype (so fp16/bf16 gradients keep their dtype).
    return (values.to(surrogate_dtype(x.dtype)) * rectified_derivative(x, o, t, interval)).to(x.dtype)


class _ReSTESign(torch.autograd.Function):
    """sign(x) forward; backward and jvp multiply by phi(x) (Eq. 10)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, o: float, t: float, interval: float) -> Tensor:
        return torch.sign(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, float, float, float], output: Tensor) -> None:
        x, ctx.o, ctx.t, ctx.interval = inputs
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None, None, None]:
        (x,) = ctx.saved_tensors
        return _times_phi(grad_output, x, ctx.o, ctx.t, ctx.interval), None, None, None

    @staticmethod
    def jvp(ctx: Any, x_tangent: Tensor, *constant_tangents: Any) -> Tensor:
        # The same Jacobian diag(phi) as the backward, so jacfwd and jacrev agree.
        (x,) = ctx.saved_tensors
        return _times_phi(x_tangent, x, ctx.o, ctx.t, ctx.interval)


_sign = direct_apply(_ReSTESign)
"""sign with the ReSTE backward through autograd's C++ entry (no per-call binding; see gradhub.kernels.functions)."""


def binarize(method: str, x: Any, o: float, t: float, interval: float) -> Tensor:
    """sign(x) with the ReSTE backward, for already validated ``o``, ``t``, ``interval``; errors name ``method``."""
    if not isinstance(x, Tensor) or not x.is_floating_point():
        require_tensor(method, "x", x)  # raises, naming the type or dtype given
    return _sign(x, o, t, interval)


@validated(RESTE_SIGN)
def reste_sign(x: Tensor, *, o: float, t: float, interval: float) -> Tensor:
    """``sign(x)`` (exactly ``torch.sign``, in x's dtype) whose gradient is multiplied by phi(x) (Eq. 10).

    ``o >= 1`` is the power of the surrogate F_o(x) = sign(x)|x|^(1/o) (1: the clipped STE; the
    official schedule raises it to 3 over training), ``t > 0`` the clipping threshold and
    ``0 < interval < t`` the half-width of the region where the derivative is replaced by the chord
    slope ``interval^(1/o) / interval``. ``x`` is a real floating tensor of any shape and device.
    """
    return binarize(RESTE_SIGN.name, x, o, t, interval)


# The public names, from the objects themselves: each method's name is written once, in its spec.
__all__ = [
    exported.__name__
    for exported in (
        power_surrogate,
        rectified_derivative,
        reste_sign,
        surrogate_dtype,
    )
]
