"""TrAct's weight gradient, and the autograd Functions of the Linear and Conv2d first layers.

Paper: "TrAct: Making First-layer Pre-Activations Trainable", Felix Petersen, Christian
Borgelt, Stefano Ermon, NeurIPS 2024, arXiv:2410.23970. Official code:
https://github.com/Felix-Petersen/tract (``src/tract.py``; PyPI ``torch-tract`` 1.0.0).

The idea (Sec. 3 of the paper). For a first layer z = A W^T (+ b) with A the N x n matrix of its inputs
(a Linear layer: the input rows, every leading dimension flattened; a Conv2d layer: the N =
B H_out W_out patches of ``unfold``, n = C_in k_h k_w) and G = dL/dz (N x m, in the same row
layout), plain training moves W by -eta G_W with G_W = G^T A, so the pre-activations move by
a step that depends on the scale and correlations of the inputs (a low-contrast image learns
slowly). TrAct instead takes the gradient step on the pre-activations, z* = z - eta N G, and
picks the weights that realise it best, with a proximity term:

    W* = argmin_V ||A V^T - z*||_F^2 + lambda N ||V - W||_F^2
       = W - eta G^T A (A^T A / N + lambda I_n)^-1.

So the weight gradient handed to the optimizer (any optimizer: SGD, Adam, ...) is

    G_W^TrAct = G_W (A^T A / N + lambda I_n)^-1

which is what :func:`tract_gradient` computes; everything else (forward, input and bias
gradients) is the plain layer's. When N < n the n x n system is replaced by an N x N one, by
the push-through identity A^T (A A^T / N + lambda I)^-1 = (A^T A / N + lambda I)^-1 A^T. The
official code writes that branch with the Woodbury identity as
(1/lambda) G^T (I_N - (1/lambda) K (K/lambda + I_N)^-1) A with K = A A^T / N, which simplifies
to the form used here, since I - (M - I) M^-1 = M^-1 for M = K/lambda + I:

    G_W^TrAct = G^T (A A^T / N + lambda I_N)^-1 A.

The limits: lambda -> infinity gives G_W / lambda (plain training with the learning rate
divided by lambda); lambda -> 0 with A of full column rank gives pure least-squares fitting of
the stepped pre-activations.

What differs from the official code (the gradient is the same, tested to 1e-10 in float64):

* the SPD system is solved (LU, ``inv_type="inverse"``, or Cholesky, ``"cholesky"``) instead of
  inverted explicitly; the official ``"cholesky_inverse"`` passes the matrix itself to
  ``torch.cholesky_inverse``, which expects its Cholesky factor, and is not offered;
* the small-batch branch solves one N x N system instead of inverting it and multiplying twice;
* the weight-gradient math runs in float32 at least (bfloat16/float16 inputs, autocast) and is
  cast back to the parameter's dtype; the solvers are called in their ``_ex`` forms, so no host
  synchronisation happens in the backward;
* the Conv2d Function also takes ``dilation`` (``unfold`` and the convolution kernels accept it;
  the official code ignores a layer's dilation); its plain gradients come from one
  ``convolution_backward`` call that computes only those needed, and A^T A is formed from the
  ``unfold`` output moved with a block copy rather than an elementwise transpose.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch._functorch.utils import unwrap_dead_wrappers as _unwrap_dead_wrappers
from torch.nn import functional as F

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import validated
from gradhub.kinds.inputs import require_same_device, require_tensor
from gradhub_tract import TrActOptions

Pair = tuple[int, int]


def compute_dtype(*tensors: Tensor) -> torch.dtype:
    """float32, or the widest dtype among ``tensors`` if wider: where the weight-gradient math runs.

    ``torch.linalg`` solvers do not take bfloat16/float16 (on CUDA), and a Gram matrix of
    low-precision inputs would lose most of its digits.
    """
    dtype = torch.float32
    for tensor in tensors:
        dtype = torch.promote_types(dtype, tensor.dtype)
    return dtype


def _shifted(gram: Tensor, rows: int, l: float) -> Tensor:  # noqa: E741
    """gram / rows + l I, in place (``gram`` is a fresh product)."""
    gram.div_(rows)
    gram.diagonal().add_(l)
    return gram


def _solve_right(system: Tensor, rhs: Tensor, inv_type: str) -> Tensor:
    """rhs system^-1 for a symmetric positive definite ``system`` (a Gram matrix / N + l I, l > 0).

    Solved from the right, the layout in which the (m, k) right-hand side is contiguous (about
    twice as fast on CPU as solving system X = rhs^T). No check is made (a host synchronisation
    on a GPU): the system is positive definite by construction.
    """
    if inv_type == "cholesky":
        factor, _ = torch.linalg.cholesky_ex(system)  # system = L L^T
        half = torch.linalg.solve_triangular(factor.mT, rhs, upper=True, left=False)  # rhs L^-T
        return torch.linalg.solve_triangular(factor, half, upper=False, left=False)  # rhs L^-T L^-1
    return torch.linalg.solve_ex(system, rhs, left=False)[0]


def _feature_space(gram: Tensor, rows: int, weight_grad: Tensor, l: float, inv_type: str) -> Tensor:  # noqa: E741
    """G_W (A^T A / N + l I_n)^-1 from the Gram matrix A^T A and the plain gradient G_W = G^T A."""
    return _solve_right(_shifted(gram, rows, l), weight_grad, inv_type)


def _row_space(a: Tensor, g: Tensor, l: float, inv_type: str) -> Tensor:  # noqa: E741
    """G^T (A A^T / N + l I_N)^-1 A (push-through form): the same gradient, for N < n."""
    rows = a.shape[0]
    return _solve_right(_shifted(a @ a.mT, rows, l), g.mT, inv_type) @ a


def tract_gradient(a: Tensor, g: Tensor, l: float, inv_type: str) -> Tensor:  # noqa: E741
    """TrAct's weight gradient G^T A (A^T A / N + l I)^-1 from a (N, n) and g (N, m), as an (m, n) matrix.

    No validation and no dtype change: the Functions' backward and :func:`tract_weight_grad` call it.
    The N x N branch is taken when N < n (as the official code), the n x n one otherwise.
    """
    rows, features = a.shape
    if rows < features:
        return _row_space(a, g, l, inv_type)
    return _feature_space(a.mT @ a, rows, g.mT @ a, l, inv_type)


@validated("tract_weight_grad", TrActOptions)
def tract_weight_grad(a: Tensor, grad_output: Tensor, *, l: float, inv_type: str) -> Tensor:  # noqa: E741
    """G_W^TrAct = grad_output^T a (a^T a / N + l I)^-1 (Sec. 3) for a layer z = a W^T.

    ``a`` is the (N, n) input (patch) matrix, ``grad_output`` the (N, m) gradient dL/dz. The
    result (m, n) is computed in float32 or wider and returned in the wider of the two dtypes.
    """
    method = "tract_weight_grad"
    require_tensor(method, "a", a, dim=2)
    require_tensor(method, "grad_output", grad_output, dim=2)
    require_same_device(method, a=a, grad_output=grad_output)
    if a.shape[0] != grad_output.shape[0]:
        raise UnsupportedInputError(
            method,
            "shapes",
            f"a {tuple(a.shape)}, grad_output {tuple(grad_output.shape)}",
            "a (N, n) and grad_output (N, m) must have the same number of rows N",
        )
    dtype = compute_dtype(a, grad_output)
    result = tract_gradient(a.to(dtype), grad_output.to(dtype), l, inv_type)
    return result.to(torch.promote_types(a.dtype, grad_output.dtype))


class _LinearFunction(torch.autograd.Function):
    """z = x W^T + b; backward: the plain input and bias gradients, TrAct's weight gradient."""

    @staticmethod
    def forward(x: Tensor, weight: Tensor, bias: Tensor | None, l: float, inv_type: str) -> Tensor:  # noqa: E741
        return F.linear(x, weight, bias)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        x, weight, bias, l, inv_type = inputs  # noqa: E741
        ctx.save_for_backward(x, weight)
        ctx.l, ctx.inv_type = l, inv_type
        ctx.bias_dtype = None if bias is None else bias.dtype

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        dtype = compute_dtype(x, weight, grad_output)
        g = grad_output.reshape(-1, grad_output.shape[-1]).to(dtype)  # (N, m): every leading dim is a row
        grad_x = grad_w = grad_b = None
        if need_x:
            grad_x = (g @ weight.to(dtype)).reshape(x.shape).to(x.dtype)
        if need_w:
            a = x.reshape(-1, x.shape[-1]).to(dtype)  # (N, n)
            grad_w = tract_gradient(a, g, ctx.l, ctx.inv_type).to(weight.dtype)
        if need_b:
            grad_b = g.sum(0).to(ctx.bias_dtype)
        return grad_x, grad_w, grad_b, None, None


class _Conv2dFunction(torch.autograd.Function):
    """Zero-padded conv2d (groups 1); backward: plain input and bias gradients, TrAct's weight gradient."""

    @staticmethod
    def forward(
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        stride: Pair,
        padding: Pair,
        dilation: Pair,
        l: float,  # noqa: E741
        inv_type: str,
    ) -> Tensor:
        return F.conv2d(x, weight, bias, stride, padding, dilation)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        x, weight, _, stride, padding, dilation, l, inv_type = inputs  # noqa: E741
        ctx.save_for_backward(x, weight)
        ctx.geometry = (stride, padding, dilation)
        ctx.l, ctx.inv_type = l, inv_type

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        stride, padding, dilation = ctx.geometry
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        dtype = compute_dtype(x, weight, grad_output)
        xc, wc, gc = x.to(dtype), weight.to(dtype), grad_output.to(dtype)
        out_channels, features = weight.shape[0], weight[0].numel()
        patches = None
        if need_w:
            # The patch matrix transposed, A^T (n, N), columns ordered (b, h, w): unfold gives (B, n, L), and
            # moving B behind n copies whole rows of L (a row-major A would need an elementwise transpose).
            unfolded = F.unfold(xc, weight.shape[2:], dilation, padding, stride)
            patches = unfolded.transpose(0, 1).reshape(features, -1)
        rows = 0 if patches is None else patches.shape[1]  # N = B H_out W_out
        row_space = need_w and rows < features
        mask = [need_x, need_w and not row_space, need_b]
        grad_x = plain_w = grad_b = None
        if any(mask):
            grad_x, plain_w, grad_b = torch.ops.aten.convolution_backward(
                gc, xc, wc, [out_channels] if need_b else None, stride, padding, dilation, False, [0, 0], 1, mask
            )
        grad_w = None
        if need_w:
            if row_space:  # G^T (A A^T / N + l I_N)^-1 A with G^T (m, N) in the same column order
                g_t = gc.transpose(0, 1).reshape(out_channels, rows)
                system = _shifted(patches.mT @ patches, rows, ctx.l)
                grad_w = _solve_right(system, g_t, ctx.inv_type) @ patches.mT
            else:
                gram = patches @ patches.mT
                grad_w = _feature_space(gram, rows, plain_w.reshape(out_channels, features), ctx.l, ctx.inv_type)
            grad_w = grad_w.reshape(weight.shape).to(weight.dtype)
        return (
            None if grad_x is None else grad_x.to(x.dtype),
            grad_w,
            None if grad_b is None else grad_b.to(weight.dtype),
            None,
            None,
            None,
            None,
            None,
        )


# autograd's C++ entry, without ``Function.apply``'s per-call binding of ``forward``'s signature (the
# arguments are already exactly forward's); under torch.compile and torch.func ``Function.apply`` runs.
_apply_linear = super(torch.autograd.Function, _LinearFunction).apply
_apply_conv2d = super(torch.autograd.Function, _Conv2dFunction).apply


def _traced() -> bool:
    return torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active()


def tract_linear(x: Tensor, weight: Tensor, bias: Tensor | None, l: float, inv_type: str) -> Tensor:  # noqa: E741
    """F.linear(x, weight, bias) with TrAct's weight gradient; ``l`` and ``inv_type`` already validated."""
    if _traced():
        return _LinearFunction.apply(x, weight, bias, l, inv_type)
    return _apply_linear(*_unwrap_dead_wrappers((x, weight, bias, l, inv_type)))


def tract_conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    l: float,  # noqa: E741
    inv_type: str,
) -> Tensor:
    """F.conv2d (zero padding, groups 1, batched input) with TrAct's weight gradient; arguments validated."""
    arguments = (x, weight, bias, stride, padding, dilation, l, inv_type)
    if _traced():
        return _Conv2dFunction.apply(*arguments)
    return _apply_conv2d(*_unwrap_dead_wrappers(arguments))


__all__ = [
    exported.__name__ for exported in (compute_dtype, tract_conv2d, tract_gradient, tract_linear, tract_weight_grad)
]
