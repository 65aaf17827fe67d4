"""Learned proximal networks: input-convex potentials psi_theta whose gradient is the learned prox.

Paper: "What's in a Prior? Learned Proximal Networks for Inverse Problems", Zhenghan Fang, Sam Buchanan,
Jeremias Sulam, ICLR 2024, arXiv:2310.14344. Official code:
https://github.com/ZhenghanFang/learned-proximal-networks (``exps/laplacian/network.py``: the fully
connected LPN; ``lpn/networks/lpn_mnist.py``: the convolutional one).

The potential (paper Sec. 3.1, Eq. 3.1; y flattened to a vector of n entries):

    z_1     = s(H_0 y)                                  H_0 unconstrained, no bias (official)
    z_{k+1} = s(W_k z_k + H_k y + b_k),  k = 1..L       W_k >= 0 elementwise, H_k unconstrained
    psi(y)  = w^T z_{L+1} + h^T y + b  [+ alpha ||y||^2]  w >= 0

with s(t) = log(1 + exp(beta t)) / beta, the softplus: convex and non-decreasing, so every z_k is convex in
y and psi is convex (a non-negative combination of convex functions of convex, non-decreasing maps).
softplus, not ReLU: psi must be smooth for f = grad psi to be continuous. The learned proximal operator is

    f_theta(y) = grad_y psi(y)      (Prop. 3.1: f_theta = prox_{R_theta} for some R_theta, Gribonval-Nikolova)

computed by autograd, batched over samples; the graph is kept (``create_graph``) whenever gradients are on,
so a loss on f(y) trains theta through the double backward.

Choices settled from the official code:

* parameter layout and names: ``lin`` (``lin[0]`` = H_0, then the W's, the last one w) and ``res`` (the
  passthroughs H_k with their biases, the last one h and b) exactly as in the official modules, so official
  state dicts load into these classes;
* the constraint: after every optimizer step ``clip_weights()`` clamps every ``lin[1:]`` weight at 0 (the
  official ``wclip``); :meth:`convexity_violation` reports how far the weights are from it;
* initialisation: the constructor calls ``init_weights(-10, 0.1)`` (W = exp(N(-10, 0.1^2)), tiny and
  positive, as the official ``get_model`` does for every image model), so psi is convex from the start; the
  official 1-D notebook skips it and starts from PyTorch's default init clipped after the first step;
* the strong-convexity term is the code's ``alpha ||y||^2`` (gradient 2 alpha y), not the paper's
  ``(alpha / 2) ||y||^2``: configs written for the official code (MNIST: alpha = 0.01) mean the same here.

What differs: the input is validated (shape, dtype, finite) with errors naming the method; the caller's
tensor is never set to require grad (the official forward sets ``x.requires_grad = True`` on it); under
``torch.no_grad()`` the gradient is taken without keeping its graph (inference memory ~2x a forward).
"""

from __future__ import annotations

import torch
import torch.nn.functional as functional
from torch import Tensor, nn

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import validated
from gradhub.kinds.inputs import require_finite, require_tensor
from gradhub_lpn import LPN as LPN_SPEC
from gradhub_lpn import LPN_CONV


def potential_and_gradient(model: nn.Module, y: Tensor, create_graph: bool) -> tuple[Tensor, Tensor]:
    """``(psi(y) of shape (B,), grad_y psi(y) shaped like y)`` for any module with ``scalar(y) -> (B, 1)``.

    The networks of this module are evaluated without their input checks (the caller made them once),
    other modules (the official ones) through their ``scalar``. Gradients are enabled inside (also under
    ``torch.no_grad()``); ``y`` itself is differentiated only when it already requires grad (so a graph
    through it, e.g. gradcheck's, is kept), otherwise a detached alias is. With ``create_graph=False``
    both results are detached.
    """
    if torch.is_inference_mode_enabled():
        name = getattr(model, "method", type(model).__name__)
        raise UnsupportedInputError(
            name,
            "mode",
            "torch.inference_mode()",
            "the learned prox is a gradient taken by autograd: run it under torch.no_grad() instead",
        )
    with torch.enable_grad():
        inner = y if y.requires_grad else y.detach().requires_grad_(True)
        potential = model._potential if isinstance(model, _ProximalNetwork) else model.scalar
        psi = potential(inner).reshape(y.shape[0])
        (gradient,) = torch.autograd.grad(psi.sum(), inner, create_graph=create_graph)
    if not create_graph:
        psi = psi.detach()
    return psi, gradient


def _softplus(t: Tensor, beta: float) -> Tensor:
    # threshold=20 (PyTorch's default): linear above beta t > 20, which is exact to float64 round-off.
    return functional.softplus(t, beta=beta, threshold=20.0)


class _ProximalNetwork(nn.Module):
    """What both LPNs share: the prox as a gradient, the constraint, the initialisation, the prior."""

    lin: nn.ModuleList
    res: nn.ModuleList
    alpha: float

    def _check(self, y: Tensor) -> None:  # pragma: no cover - each network defines its own
        raise NotImplementedError

    def _potential(self, y: Tensor) -> Tensor:  # pragma: no cover - each network defines its own
        raise NotImplementedError

    def _check_dtype(self, y: Tensor) -> None:
        weight = self.lin[0].weight
        if y.dtype != weight.dtype:
            raise UnsupportedInputError(
                self.method,
                "input dtype",
                y.dtype,
                f"the input must be {weight.dtype} like the network's weights (convert the input with "
                f".to({weight.dtype}), or the network with .to({y.dtype}))",
            )
        if y.device != weight.device:
            raise UnsupportedInputError(
                self.method, "input device", y.device, f"the input must be on the network's device ({weight.device})"
            )

    def scalar(self, y: Tensor) -> Tensor:
        """psi_theta(y), shape (B, 1): the convex potential (Eq. 3.1)."""
        self._check(y)
        return self._potential(y)

    def forward(self, y: Tensor) -> Tensor:
        """f_theta(y) = grad_y psi_theta(y), shaped like ``y``: the learned proximal operator (Prop. 3.1)."""
        self._check(y)
        return potential_and_gradient(self, y, create_graph=torch.is_grad_enabled())[1]

    @torch.no_grad()
    def init_weights(self, mean: float = -10.0, std: float = 0.1) -> None:
        """W weights (``lin[1:]``) <- exp(N(mean, std^2)): small and positive (official ``init_weights``)."""
        for layer in self.lin[1:]:
            layer.weight.normal_(mean, std).exp_()

    @torch.no_grad()
    def clip_weights(self) -> None:
        """Project onto the constraint W >= 0 (``lin[1:]`` clamped at 0); call after every optimizer step."""
        for layer in self.lin[1:]:
            layer.weight.clamp_(min=0)

    @torch.no_grad()
    def convexity_violation(self) -> float:
        """``max(0, -min W)`` over the constrained weights: 0 exactly when psi is guaranteed convex."""
        lowest = torch.stack([layer.weight.min() for layer in self.lin[1:]]).min()
        return float((-lowest).clamp(min=0))

    def invert(self, x: Tensor, **solver_options: object) -> Tensor:
        """y with f(y) = x, from :func:`gradhub_lpn.prior.lpn_prior` (``tol``, ``max_iter``, ``progress``)."""
        from gradhub_lpn.prior import solve_or_warn

        return solve_or_warn(self, x, solver_options).solution

    def prior(self, x: Tensor, **solver_options: object) -> Tensor:
        """R_theta(x), shape (B,), up to an additive constant (paper Sec. 3.2; :func:`lpn_prior`)."""
        from gradhub_lpn.prior import solve_or_warn

        return solve_or_warn(self, x, solver_options).prior


@validated(LPN_SPEC)
class LPN(_ProximalNetwork):
    """Fully connected LPN over vectors: ``scalar(y)`` = psi(y) (B, 1), ``forward(y)`` = grad psi(y).

    ``y`` is (B, in_dim), or (B, *shape) with ``in_dim`` entries per sample (flattened inside).
    """

    def __init__(self, in_dim: int, hidden: int, layers: int, beta: float, alpha: float) -> None:
        super().__init__()
        self.in_dim, self.hidden, self.layers, self.beta, self.alpha = in_dim, hidden, layers, beta, alpha
        self.lin = nn.ModuleList(
            [
                nn.Linear(in_dim, hidden, bias=False),
                *(nn.Linear(hidden, hidden, bias=False) for _ in range(layers)),
                nn.Linear(hidden, 1, bias=False),
            ]
        )
        self.res = nn.ModuleList([*(nn.Linear(in_dim, hidden) for _ in range(layers)), nn.Linear(in_dim, 1)])
        self.init_weights()

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, hidden={self.hidden}, layers={self.layers}, beta={self.beta}, alpha={self.alpha}"

    def _check(self, y: Tensor) -> None:
        require_tensor(self.method, "y", y, min_dim=2, what="of shape (B, in_dim) (a batch)")
        if y.shape[1:].numel() != self.in_dim:
            raise UnsupportedInputError(
                self.method,
                "y shape",
                tuple(y.shape),
                f"y must be (B, {self.in_dim}) or (B, *shape) with {self.in_dim} entries per sample",
            )
        self._check_dtype(y)
        require_finite(self.method, "y", y)

    def _potential(self, y: Tensor) -> Tensor:
        flat = y.reshape(y.shape[0], self.in_dim)
        z = _softplus(self.lin[0](flat), self.beta)
        for weight, passthrough in zip(self.lin[1:-1], self.res[:-1]):
            z = _softplus(weight(z) + passthrough(flat), self.beta)
        psi = self.lin[-1](z) + self.res[-1](flat)
        if self.alpha:
            psi = psi + self.alpha * flat.square().sum(1, keepdim=True)
        return psi


@validated(LPN_CONV)
class ConvLPN(_ProximalNetwork):
    """Convolutional LPN over (B, in_channels, img_size, img_size) images (official ``lpn_mnist.LPN``).

    Layers (S = img_size; every conv 3x3, padding 1; x_s = bilinear resize of the input to s x s):

        z = s(conv_s1(y))                                      S     (lin[0], no bias)
        z = s(W conv_s2(z) + conv_s2(x_S))                     S/2   (lin[1], res[0])
        z = s(W conv_s1(z) + conv_s1(x_{S/2}))                 S/2   (lin[2], res[1])
        z = s(W conv_s2(z) + conv_s2(x_{S/2}))                 S/4   (lin[3], res[2])
        z = s(W dense(z) + dense(x_{S/4}))                     head  (lin[4], res[3])
        psi = w^T z + alpha ||y||^2                                  (lin[5])

    The bilinear resize is linear in y, so the passthroughs keep psi convex. As in the official code the
    last layer has no passthrough and no bias; resizing to the input's own size is the identity and skipped.
    """

    def __init__(self, in_channels: int, hidden: int, img_size: int, head: int, beta: float, alpha: float) -> None:
        super().__init__()
        self.in_channels, self.hidden, self.img_size, self.head = in_channels, hidden, img_size, head
        self.beta, self.alpha = beta, alpha
        quarter = img_size // 4
        self.sizes = (img_size, img_size // 2, img_size // 2, quarter)

        def conv(channels_in: int, stride: int, bias: bool) -> nn.Conv2d:
            return nn.Conv2d(channels_in, hidden, 3, stride=stride, padding=1, bias=bias)

        self.lin = nn.ModuleList(
            [
                conv(in_channels, 1, False),
                conv(hidden, 2, False),
                conv(hidden, 1, False),
                conv(hidden, 2, False),
                nn.Linear(hidden * quarter * quarter, head, bias=False),
                nn.Linear(head, 1, bias=False),
            ]
        )
        self.res = nn.ModuleList(
            [
                conv(in_channels, 2, True),
                conv(in_channels, 1, True),
                conv(in_channels, 2, True),
                nn.Linear(quarter * quarter * in_channels, head),
            ]
        )
        self.init_weights()

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, hidden={self.hidden}, img_size={self.img_size}, head={self.head}, "
            f"beta={self.beta}, alpha={self.alpha}"
        )

    def _check(self, y: Tensor) -> None:
        shape = (self.in_channels, self.img_size, self.img_size)
        require_tensor(self.method, "y", y, dim=4, what=f"of shape (B, {', '.join(map(str, shape))})")
        if tuple(y.shape[1:]) != shape:
            raise UnsupportedInputError(
                self.method, "y shape", tuple(y.shape), f"y must be (B, {', '.join(map(str, shape))})"
            )
        self._check_dtype(y)
        require_finite(self.method, "y", y)

    def _resized(self, y: Tensor, size: int) -> Tensor:
        if size == y.shape[-1]:
            return y
        return functional.interpolate(y, size=(size, size), mode="bilinear", align_corners=False)

    def _potential(self, y: Tensor) -> Tensor:
        z = _softplus(self.lin[0](y), self.beta)
        for weight, passthrough, size in zip(self.lin[1:4], self.res[:3], self.sizes[:3]):
            z = _softplus(weight(z) + passthrough(self._resized(y, size)), self.beta)
        batch = y.shape[0]
        coarse = self._resized(y, self.sizes[3]).reshape(batch, -1)
        z = _softplus(self.lin[4](z.reshape(batch, -1)) + self.res[3](coarse), self.beta)
        psi = self.lin[5](z)
        if self.alpha:
            psi = psi + self.alpha * y.reshape(batch, -1).square().sum(1, keepdim=True)
        return psi
