"""Differentiable sorting networks: soft-sorted values and the relaxed permutation matrix.

Papers: Felix Petersen, Christian Borgelt, Hilde Kuehne, Oliver Deussen, "Differentiable Sorting
Networks for Scalable Sorting and Ranking Supervision", ICML 2021 (arXiv:2105.04019), and
"Monotonic Differentiable Sorting Networks", ICLR 2022 (arXiv:2203.09630); used by GroCo
(Shvetsova et al., ICCV 2023, arXiv:2301.02009, Sec. 3.2). Reference implementation: PyPI
``diffsort`` 0.2.0 (github.com/Felix-Petersen/diffsort), ``DiffSortNet``; this module is a new
implementation with the same outputs (tested to float64 round-off).

A comparator with inputs ``(a, b)`` (``a`` on the wire that receives the minimum) is relaxed to

    alpha = f(steepness (b - a)),   min = alpha a + (1 - alpha) b,   max = (1 - alpha) a + alpha b,

with ``f`` a sigmoid-shaped CDF (Cauchy by default: ``f(x) = arctan(x) / pi + 1/2``). A layer of
the network is then a doubly-stochastic matrix mixing each pair of wires, and the relaxed
permutation matrix is the product of the layers' matrices, in diffsort's convention
``P[..., i, r]`` = the weight of input ``i`` in the ``r``-th smallest output (ascending), so
``sorted = x @ P`` and ``P.sum(-1) = P.sum(-2) = 1``.

Vectorised per layer: a layer's pairs are two strided views of the wires
(:mod:`gradhub_groco.networks`), so a whole layer is a few elementwise operations over
(pairs x batch); the Python loop runs over layers only. Values are kept wire-major ``(n, B)`` and
the permutation matrix as ``W[r, i, b] = P[b, i, r]``, so that every operation runs over
contiguous batches. The whole network is one autograd node with a hand-written backward (the
derivative of each relaxation is written below): per layer and direction, two passes over the
pairs' rows of ``W`` (O(n^2) per layer and sample, where diffsort's 0/1 matrix products cost O(n^3)).

What differs from diffsort: bitonic networks need a power-of-two ``size`` (diffsort pads the
network); inputs may have any number of leading dimensions (``(..., size)``); float16 and bfloat16
inputs are sorted in float32 and the outputs cast back; non-finite inputs are an error
(``check_finite``); a descending comparator's ``alpha`` is computed as ``f(-x)`` rather than
``1 - f(x)``, equal up to round-off; the Gaussian relaxation's gradient is exact (diffsort's backward
rounds ``1 / steepness`` to float32). The backward is not itself differentiable (no double backward).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import validated
from gradhub.kinds.inputs import require_finite, require_tensor
from gradhub_groco import DIFF_SORT
from gradhub_groco.networks import Layer, scaled_network

__all__ = ["RELAXATIONS", "DiffSortNet", "soft_sort", "sort_wires"]

PHI_EPS = 1e-10
"""Added to ``|b - a|`` before its power in ``logistic_phi`` (and to ``|x|`` in ``optimal``), as in diffsort."""
_INV_PI = 1.0 / math.pi
_INV_SQRT_2PI = 1.0 / math.sqrt(2 * math.pi)

Steepness = float | Tensor


def _cauchy(d: Tensor, s: Steepness, art_lambda: float) -> tuple[Tensor, Tensor]:
    v = d * s
    return torch.atan(v) * _INV_PI + 0.5, s * _INV_PI / (1 + v * v)


def _logistic(d: Tensor, s: Steepness, art_lambda: float) -> tuple[Tensor, Tensor]:
    beta = torch.sigmoid(d * s)
    return beta, s * beta * (1 - beta)


def _logistic_phi(d: Tensor, s: Steepness, art_lambda: float) -> tuple[Tensor, Tensor]:
    # the activation replacement trick (ICML 2021, Sec. 4): sigmoid(s d / (|d| + eps)^lambda)
    magnitude = d.abs() + PHI_EPS
    scale = magnitude.pow(-art_lambda)
    beta = torch.sigmoid(d * s * scale)
    # d/dd [d (|d| + eps)^-lambda] = (|d| + eps)^-lambda - lambda |d| (|d| + eps)^(-lambda - 1)
    slope = scale * (1 - art_lambda * d.abs() / magnitude)
    return beta, s * slope * beta * (1 - beta)


def _gaussian(d: Tensor, s: Steepness, art_lambda: float) -> tuple[Tensor, Tensor]:
    v = d * s
    return torch.special.ndtr(v), s * _INV_SQRT_2PI * torch.exp(-0.5 * v * v)


def _reciprocal(d: Tensor, s: Steepness, art_lambda: float) -> tuple[Tensor, Tensor]:
    v = d * s
    denominator = 2 + v.abs()
    return 0.5 * (v / denominator + 1), s / (denominator * denominator)


def _optimal(d: Tensor, s: Steepness, art_lambda: float) -> tuple[Tensor, Tensor]:
    # ICLR 2022, Eq. 13: linear on [-1/4, 1/4], 1 - 1/(16 x) beyond (and symmetric)
    v = d * s
    magnitude = v.abs() + PHI_EPS
    outside = (v > 0.25).to(v.dtype) - (v < -0.25).to(v.dtype)
    beta = v.clamp(-0.25, 0.25) + 0.5 + outside * (0.25 - 0.0625 / magnitude)
    slope = torch.where(v.abs() <= 0.25, 1.0, 0.0625 / (magnitude * magnitude))
    return beta, s * slope


Relax = Callable[[Tensor, Steepness, float], tuple[Tensor, Tensor]]
RELAXATIONS: dict[str, Relax] = {
    "cauchy": _cauchy,
    "logistic": _logistic,
    "logistic_phi": _logistic_phi,
    "gaussian": _gaussian,
    "reciprocal": _reciprocal,
    "optimal": _optimal,
}
"""``(beta, dbeta/dd) = relax(d, s, art_lambda)``: the comparator weight ``beta = f(s d)`` of a pair whose
values differ by ``d = b - a``, ``s`` the signed steepness (negative for a descending pair), and its derivative."""


def _pairs(tensor: Tensor, layer: Layer) -> tuple[Tensor, Tensor]:
    """The layer's first and second wires as two views of ``tensor`` (wires along dim 0), each (groups, stride, ...)."""
    block = tensor[layer.start : layer.end].view(layer.groups, 2, layer.stride, *tensor.shape[1:])
    return block[:, 0], block[:, 1]


class _SortingNetwork(torch.autograd.Function):
    """The relaxed network on wire-major values ``x`` (n, B): ``(sorted (n, B), W (n, n, B))``.

    Per layer and pair ``(a, b)`` (``a`` on the first wire), ``d = b - a``, ``beta = f(s d)`` the weight
    each wire keeps of itself, ``t = (1 - beta) d``:

        values:       a <- a + t,   b <- b - t
        permutation:  D = W_a - W_b,   W_a <- W_a - (1 - beta) D,   W_b <- W_b + (1 - beta) D

    Backward, with ``G`` the gradient of ``W`` and ``g`` of the values, per layer from the last:

        E = G_a - G_b,   dL/dbeta = sum_i E D + (g_b - g_a) d,   G_a <- G_a - (1 - beta) E,   G_b <- G_b + (1 - beta) E
        dL/dd = beta (g_b - g_a) + dL/dbeta dbeta/dd,   h = (g_b - g_a) - dL/dd,   g_a <- g_a + h,   g_b <- g_b - h
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, layers: tuple[tuple[Layer, Steepness], ...], relax: Relax, art_lambda: float):
        n, batch = x.shape
        x = x.clone(memory_format=torch.contiguous_format)
        W = torch.eye(n, dtype=x.dtype, device=x.device).unsqueeze(-1).repeat(1, 1, batch)
        saved = []
        for layer, steepness in layers:
            a, b = _pairs(x, layer)
            d = b - a
            beta, slope = relax(d, steepness, art_lambda)
            gamma = 1 - beta
            moved = gamma * d
            a.add_(moved)
            b.sub_(moved)
            W_a, W_b = _pairs(W, layer)
            difference = W_a - W_b
            keep = gamma.unsqueeze(2)
            W_a.addcmul_(difference, keep, value=-1)
            W_b.addcmul_(difference, keep)
            saved += [d, beta, slope, difference]
        ctx.layers = layers
        ctx.save_for_backward(*saved)
        ctx.set_materialize_grads(False)
        return x, W

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_values: Tensor | None, grad_W: Tensor | None) -> tuple[Tensor | None, None, None, None]:
        saved = ctx.saved_tensors
        if grad_values is None and grad_W is None:
            return None, None, None, None
        reference = saved[0]
        n, batch = grad_values.shape if grad_values is not None else grad_W.shape[1:]  # type: ignore[union-attr]
        g = (
            grad_values.clone(memory_format=torch.contiguous_format)
            if grad_values is not None
            else torch.zeros(n, batch, dtype=reference.dtype, device=reference.device)
        )
        G = grad_W.clone(memory_format=torch.contiguous_format) if grad_W is not None else None
        for index in range(len(ctx.layers) - 1, -1, -1):
            layer = ctx.layers[index][0]
            d, beta, slope, difference = saved[4 * index : 4 * index + 4]
            g_a, g_b = _pairs(g, layer)
            spread = g_b - g_a
            grad_beta = spread * d
            if G is not None:
                G_a, G_b = _pairs(G, layer)
                excess = G_a - G_b
                grad_beta += (excess * difference).sum(2)
                keep = (1 - beta).unsqueeze(2)
                G_a.addcmul_(excess, keep, value=-1)
                G_b.addcmul_(excess, keep)
            grad_d = beta * spread + grad_beta * slope
            h = spread - grad_d
            g_a.add_(h)
            g_b.sub_(h)
        return g, None, None, None


def sort_wires(
    x: Tensor, sorting_network: str, steepness: float, relaxation: str, art_lambda: float
) -> tuple[Tensor, Tensor]:
    """Relaxed ascending sort of the columns of ``x`` (n, B): ``(sorted (n, B), W (n, n, B))`` with ``W[r, i, b]``
    the weight of input ``i`` in rank ``r`` of sample ``b`` (``P[b] = W[..., b].T``).

    No input checks (see :class:`DiffSortNet`): ``x`` is a floating tensor, ``relaxation`` a key of
    :data:`RELAXATIONS` and, for ``"bitonic"``, ``n`` a power of two. Computed in ``x``'s dtype.
    """
    n, batch = x.shape
    layers = scaled_network(sorting_network, n, float(steepness), x.device, x.dtype)
    if not layers:  # n = 1: nothing to compare
        return x, torch.ones(1, 1, batch, dtype=x.dtype, device=x.device)
    return _SortingNetwork.apply(x, layers, RELAXATIONS[relaxation], art_lambda)


def soft_sort(
    x: Tensor, sorting_network: str, steepness: float, relaxation: str, art_lambda: float
) -> tuple[Tensor, Tensor]:
    """Relaxed ascending sort of ``x`` (..., n) along its last dimension: ``(sorted, P)``, P of shape (..., n, n)
    with ``P[..., i, r]`` the weight of input ``i`` in rank ``r`` (contiguous).

    No input checks (see :class:`DiffSortNet`). Computed in ``x``'s dtype.
    """
    n = x.shape[-1]
    values, W = sort_wires(x.reshape(-1, n).T, sorting_network, steepness, relaxation, art_lambda)
    return values.T.reshape(x.shape), W.permute(2, 1, 0).contiguous().view(*x.shape, n)


@validated(DIFF_SORT)
class DiffSortNet(nn.Module):
    """A differentiable sorting network (Petersen et al. 2021/2022), as ``diffsort.DiffSortNet``.

    ``forward(x)`` takes ``x`` of shape ``(..., size)`` (usually ``(B, size)``) and returns
    ``(sorted_x, P)``: the relaxed ascending sort and the relaxed permutation matrix of shape
    ``(..., size, size)`` with ``sorted_x = x @ P`` (``P[..., i, r]``: input ``i`` at rank ``r``).
    As ``steepness`` grows, ``sorted_x`` tends to ``x.sort(-1).values`` and ``P`` to the one-hot
    matrix of ``x.argsort(-1)`` (``P[b, argsort[b, r], r] = 1``). The module holds no parameters;
    the network's layers are cached per size, device, dtype and steepness.
    """

    def __init__(
        self,
        size: int,
        sorting_network: str,
        steepness: float,
        relaxation: str,
        art_lambda: float,
        check_finite: bool,
    ) -> None:
        super().__init__()
        self.size = size
        self.sorting_network = sorting_network
        self.steepness = steepness
        self.relaxation = relaxation
        self.art_lambda = art_lambda
        self.check_finite = check_finite

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        method = self.method  # type: ignore[attr-defined]
        if not (isinstance(x, Tensor) and x.is_floating_point() and x.dim() >= 1):
            require_tensor(method, "x", x, min_dim=1, what=f"of shape (..., size={self.size})")
        if x.shape[-1] != self.size:
            raise UnsupportedInputError(
                method, "x shape", tuple(x.shape), f"x must have shape (..., size={self.size}): the last dimension"
            )
        if self.check_finite:
            require_finite(method, "x", x)
        wide = x if x.dtype in (torch.float32, torch.float64) else x.float()
        values, P = soft_sort(wide, self.sorting_network, self.steepness, self.relaxation, self.art_lambda)
        return values.to(x.dtype), P.to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"size={self.size}, sorting_network={self.sorting_network!r}, steepness={self.steepness}, "
            f"relaxation={self.relaxation!r}, art_lambda={self.art_lambda}"
        )
