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
or a 0-dim tensor; it is validated (finite, >= 0) by the method's hyperparameter model
(:class:`gradhub_dann.GradReverseHyperparameters`); forward-mode AD (``jvp``) and
``torch.func`` transforms are supported, with the same -lambda I Jacobian in both modes;
the backward is built from differentiable ops, so double backward also sees -lambda I.
lambda never receives a gradient.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import validate_hyperparameters, validated
from gradhub.kernels import direct_apply
from gradhub.kinds.inputs import require_tensor
from gradhub_dann import GRAD_REVERSE, GRADIENT_REVERSAL, GradReverseHyperparameters

Lambda = float | Tensor


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


_reverse = direct_apply(_GradientReversalFunction)
"""R_lambda through autograd's C++ entry (no per-call binding of ``(x, lambd)``; see gradhub.kernels.functions)."""


def reverse(method: str, x: Tensor, lambd: Lambda) -> Tensor:
    """R_lambda(x) with an already validated ``lambd``; ``x`` checked, errors naming ``method``."""
    if not isinstance(x, Tensor):
        require_tensor(method, "x", x, dtype="any")  # raises, naming the type given
    if not (x.is_floating_point() or x.is_complex()):
        raise UnsupportedInputError(
            method, "x dtype", x.dtype, "x must be a floating-point (or complex) tensor: gradients flow only there"
        )
    if isinstance(lambd, Tensor) and lambd.device != x.device and lambd.device.type != "cpu":
        raise UnsupportedInputError(
            method,
            "lambd device",
            lambd.device,
            f"a tensor lambd must be on the input's device ({x.device}) or on the CPU",
        )
    return _reverse(x, lambd)


def validated_lambda(method: str, lambd: Any) -> Lambda:
    """``lambd`` checked against the model, for a layer whose lambda is reassigned between steps."""
    return validate_hyperparameters(method, GradReverseHyperparameters, {"lambd": lambd})["lambd"]


@validated(GRAD_REVERSE)
def grad_reverse(x: Tensor, *, lambd: Lambda) -> Tensor:
    """R_lambda(x) (Eq. 13-14): returns ``x`` (a view) and multiplies its gradient by ``-lambd``.

    ``lambd`` is a finite number >= 0 or a 0-dim floating tensor (e.g. updated in place by a
    schedule); it gets no gradient.
    """
    return reverse(GRAD_REVERSE.name, x, lambd)


@validated(GRADIENT_REVERSAL)
class GradientReversal(nn.Module):
    """The gradient reversal layer as a module; ``lambd`` may be reassigned at any step (validated).

    Typical use with the paper's schedule (Sec. 5.2.2)::

        grl = GradientReversal(lambd=0.0)
        for step in range(total):
            grl.lambd = dann_lambda(step / total)
            ...
    """

    def __init__(self, *, lambd: Lambda) -> None:
        super().__init__()
        self.lambd = lambd

    @property
    def lambd(self) -> Lambda:
        return self._lambd

    @lambd.setter
    def lambd(self, value: Lambda) -> None:
        self._lambd = validated_lambda(GRADIENT_REVERSAL.name, value)

    def forward(self, x: Tensor) -> Tensor:
        return reverse(GRADIENT_REVERSAL.name, x, self._lambd)

    def extra_repr(self) -> str:
        return f"lambd={self._lambd}"


# The public names, from the objects themselves: each method's name is written once, in its spec.
__all__ = [
    exported.__name__
    for exported in (
        GradientReversal,
        grad_reverse,
    )
]
