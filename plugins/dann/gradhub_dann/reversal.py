"""The gradient reversal layer R_lambda of DANN.

Paper: "Domain-Adversarial Training of Neural Networks", Yaroslav Ganin, Evgeniya Ustinova,
Hana Ajakan, Pascal Germain, Hugo Larochelle, François Laviolette, Mario Marchand, Victor
Lempitsky, JMLR 17(59), 2016, arXiv:1505.07818 (conference version: "Unsupervised Domain
Adaptation by Backpropagation", ICML 2015, arXiv:1409.7495). Official code: none in PyTorch
(the authors' was Caffe); reference here is PyPI ``pytorch-revgrad`` 0.2.0.

Sec. 4.2, Eq. 13-14: R_lambda(x) = x in the forward pass and dR_lambda/dx = -lambda I in the
backward pass, so that ordinary SGD on L_y + L_d(G_d(R_lambda(G_f(x)))) performs the
saddle-point updates of Eq. 10-12 (theta_f descends L_y - lambda L_d, theta_d descends L_d).

What differs from ``pytorch-revgrad``: lambda may be a Python number (no tensor is created)
or a 0-dim tensor; it is validated (finite, >= 0); forward-mode AD (``jvp``) and
``torch.func`` transforms are supported, with the same -lambda I Jacobian in both modes;
the backward is built from differentiable ops, so double backward also sees -lambda I.
lambda never receives a gradient.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch
from torch import Tensor, nn

from gradhub.errors import HyperparameterError, UnknownHyperparameterError, UnsupportedInputError
from gradhub.hyperparameters import describe_field
from gradhub_dann import GradReverseHyperparameters

__all__ = ["GradientReversal", "grad_reverse"]

Lambda = float | Tensor


def check_lambda(method: str, lambd: Any) -> Lambda:
    """lambda as the layer uses it: a finite float >= 0, or a 0-dim real floating tensor.

    A tensor's value is checked only on the CPU and outside ``torch.compile``: reading a
    CUDA tensor's value would synchronise the device on every call.
    """
    if isinstance(lambd, Tensor):
        if lambd.dim() != 0 or not lambd.is_floating_point():
            raise _lambda_error(method, f"tensor of shape {tuple(lambd.shape)} and dtype {lambd.dtype}")
        lambd = lambd.detach()
        if lambd.device.type == "cpu" and not torch.compiler.is_compiling():
            value = float(lambd)
            if not (math.isfinite(value) and value >= 0):
                raise _lambda_error(method, lambd)
        return lambd
    if isinstance(lambd, bool) or not isinstance(lambd, numbers.Real):
        raise _lambda_error(method, lambd)
    value = float(lambd)
    if not (math.isfinite(value) and value >= 0):
        raise _lambda_error(method, lambd)
    return value


def _lambda_error(method: str, value: Any) -> HyperparameterError:
    # Built only on the error path: pydantic introspection is no place for torch.compile to trace.
    allowed = describe_field(GradReverseHyperparameters, "lambd") + " (or a 0-dim floating tensor holding one)"
    return HyperparameterError(method, "lambd", value, allowed)


def _check_input(method: str, x: Any, lambd: Lambda) -> None:
    if not isinstance(x, Tensor):
        raise UnsupportedInputError(method, "input", type(x).__name__, "x must be a torch.Tensor")
    if not (x.is_floating_point() or x.is_complex()):
        raise UnsupportedInputError(
            method, "input dtype", x.dtype, "x must be a floating-point (or complex) tensor: gradients flow only there"
        )
    if isinstance(lambd, Tensor) and lambd.device != x.device and lambd.device.type != "cpu":
        raise UnsupportedInputError(
            method,
            "lambd device",
            lambd.device,
            f"a tensor lambd must be on the input's device ({x.device}) or on the CPU",
        )


def _reject_unknown(method: str, unexpected: dict[str, Any]) -> None:
    if unexpected:
        name, value = next(iter(unexpected.items()))
        raise UnknownHyperparameterError(method, name, value, list(GradReverseHyperparameters.model_fields))


def _scaled(gradient: Tensor, lambd: Lambda) -> Tensor:
    # -lambda * gradient, computed as ``gradient * (-lambda)``: one rounding, in the gradient's dtype
    # (a 0-dim lambda does not promote it), so fp16/bf16/AMP gradients keep their dtype.
    return gradient * (-lambd)


class _GradientReversalFunction(torch.autograd.Function):
    """R_lambda (Eq. 13-14): identity forward; backward and jvp multiply by -lambda."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, lambd: Lambda) -> Tensor:
        return x.view_as(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, Lambda], output: Tensor) -> None:
        _, lambd = inputs
        if isinstance(lambd, Tensor):
            ctx.save_for_backward(lambd)
            ctx.save_for_forward(lambd)
            ctx.lambd = None
        else:
            ctx.lambd = lambd

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None]:
        lambd = ctx.lambd if ctx.lambd is not None else ctx.saved_tensors[0].detach()
        return _scaled(grad_output, lambd), None

    @staticmethod
    def jvp(ctx: Any, x_tangent: Tensor, lambd_tangent: Any) -> Tensor:
        # The same Jacobian -lambda I as the backward, so jacfwd and jacrev agree.
        lambd = ctx.lambd if ctx.lambd is not None else ctx.saved_tensors[0].detach()
        return _scaled(x_tangent, lambd)


def _reverse(method: str, x: Tensor, lambd: Any) -> Tensor:
    lambd = check_lambda(method, lambd)
    _check_input(method, x, lambd)
    return _GradientReversalFunction.apply(x, lambd)


def grad_reverse(x: Tensor, lambd: Lambda = 1.0, **unexpected: Any) -> Tensor:
    """R_lambda(x) (Eq. 13-14): returns ``x`` (a view) and multiplies its gradient by ``-lambd``.

    ``lambd`` is a finite number >= 0 or a 0-dim floating tensor (e.g. updated in place by a
    schedule); it gets no gradient. Any other keyword raises
    :class:`gradhub.UnknownHyperparameterError`.
    """
    _reject_unknown("grad_reverse", unexpected)
    return _reverse("grad_reverse", x, lambd)


class GradientReversal(nn.Module):
    """The gradient reversal layer as a module; ``lambd`` may be reassigned at any step (validated).

    Typical use with the paper's schedule (Sec. 5.2.2)::

        grl = GradientReversal(0.0)
        for step in range(total):
            grl.lambd = dann_lambda(step / total)
            ...
    """

    def __init__(self, lambd: Lambda = 1.0, **unexpected: Any) -> None:
        _reject_unknown("gradient_reversal", unexpected)
        super().__init__()
        self.lambd = lambd

    @property
    def lambd(self) -> Lambda:
        return self._lambd

    @lambd.setter
    def lambd(self, value: Lambda) -> None:
        self._lambd = check_lambda("gradient_reversal", value)

    def forward(self, x: Tensor) -> Tensor:
        return _reverse("gradient_reversal", x, self._lambd)

    def extra_repr(self) -> str:
        return f"lambd={self._lambd}"
