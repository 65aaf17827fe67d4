"""The two-layer ReLU network behind a convex solution, its non-convex objective, and an Adam baseline on it.

Paper: "Efficient Global Optimization of Two-layer ReLU Networks: Quadratic-time Algorithms and
Adversarial Training", Yatong Bai, Tanmay Gautam, Somayeh Sojoudi, SIMODS 2023, arXiv:2201.01965
(§2, the recovery of Pilanci & Ergen, ICML 2020, Theorem 1).

The non-convex problem is ``min l(sum_j (X u_j)_+ alpha_j, y) + beta/2 sum_j (||u_j||^2 + alpha_j^2)``
(weight decay beta/2 on both layers; with the bias column the first layer's bias is part of u_j and
is penalised too). From convex weights (v_i, w_i) every non-zero block gives one neuron:
``u = v_i / sqrt(||v_i||), alpha = +sqrt(||v_i||)`` and ``u = w_i / sqrt(||w_i||), alpha = -sqrt(||w_i||)``.
Where the cone constraints hold, (X u)_+ = D_i X u, so the network's output on X is
sum_i D_i X (v_i - w_i), and its weight decay is beta/2 (||v_i|| + ||v_i||) = beta ||v_i||: the
non-convex objective of the recovered network equals the convex objective (the scaling identity).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gradhub.errors import UnsupportedInputError
from gradhub.kinds.inputs import require_tensor
from gradhub.progress import ProgressCallback, tracker
from gradhub_convex_relu.arrangements import augment
from gradhub_convex_relu.problem import DTYPES, check_data, loss_gradient, loss_value

RECOVER = "recover_network"
TRAIN = "train_relu_network"


def recover_network(weights: Tensor, *, include_bias: bool = True) -> nn.Sequential:
    """``Sequential(Linear(d0, m), ReLU(), Linear(m, 1, bias=False))`` from convex weights (2, P, d).

    One neuron per non-zero block (m of them; m = 0 gives the zero network); ``include_bias``: the
    last of the d coordinates is the first layer's bias (d0 = d - 1). Same device and dtype as ``weights``.
    """
    require_tensor(RECOVER, "weights", weights, dtypes=DTYPES, dim=3)
    if weights.shape[0] != 2 or weights.shape[2] < 1 + int(include_bias):
        raise UnsupportedInputError(
            RECOVER, "weights shape", tuple(weights.shape), "weights must be (2, P, d): [v; w] blocks, d >= 1 + bias"
        )
    P, d = weights.shape[1], weights.shape[2]
    blocks = weights.detach().reshape(2 * P, d)
    norms = torch.linalg.vector_norm(blocks, dim=-1)
    signs = torch.cat([weights.new_ones(P), -weights.new_ones(P)])
    keep = norms > 0
    scale = norms[keep].sqrt()
    first = blocks[keep] / scale.unsqueeze(-1)
    second = signs[keep] * scale
    d0 = d - 1 if include_bias else d
    width = first.shape[0]
    options = {"device": weights.device, "dtype": weights.dtype}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Initializing zero-element tensors is a no-op")
        network = nn.Sequential(
            nn.Linear(d0, width, bias=include_bias, **options), nn.ReLU(), nn.Linear(width, 1, bias=False, **options)
        )
    with torch.no_grad():
        network[0].weight.copy_(first[:, :d0])
        if include_bias:
            network[0].bias.copy_(first[:, d0])
        network[2].weight.copy_(second.unsqueeze(0))
    return network


def network_objective(network: nn.Module, X: Tensor, y: Tensor, *, beta: float, loss: str = "squared") -> Tensor:
    """The non-convex objective ``l(network(X), y) + beta/2 sum_p ||p||^2`` over all parameters (biases too)."""
    X, targets = check_data("network_objective", X, y, loss)
    prediction = network(X).reshape(-1)
    decay = sum(parameter.square().sum() for parameter in network.parameters())
    return loss_value(loss, prediction, targets) + 0.5 * beta * decay


@dataclass
class TrainingRuns:
    """Adam runs on the non-convex objective, one per seed (batched)."""

    objectives: Tensor
    """(S,) the final non-convex objective of each run."""
    history: Tensor
    """(steps + 1, S) the objective before each step and after the last."""
    first: Tensor
    """(S, m, d) first-layer weights (bias last when included)."""
    second: Tensor
    """(S, m) output weights."""


def train_relu_network(
    X: Tensor,
    y: Tensor,
    width: int,
    *,
    beta: float,
    seeds: Sequence[int] = tuple(range(10)),
    steps: int = 3000,
    lr: float = 1e-2,
    loss: str = "squared",
    include_bias: bool = True,
    progress: ProgressCallback | None = None,
) -> TrainingRuns:
    """Train ``len(seeds)`` networks of ``width`` ReLU neurons on the non-convex objective with Adam, all at once.

    The networks are one batch of weights (S, m, d) and (S, m); each run's gradient is its own (by
    hand, see :func:`_objectives_and_gradients`: no autograd graph per step) and ``torch.optim.Adam``
    is elementwise, so this is S independent full-batch runs in one loop. Initial weights are drawn
    like ``nn.Linear``'s (uniform in +-1/sqrt(fan_in)) from a host generator per seed. Smooth losses
    only (squared, logistic).
    """
    if loss not in ("squared", "logistic"):
        raise UnsupportedInputError(TRAIN, "loss", repr(loss), "loss must be 'squared' or 'logistic' (smooth)")
    X, targets = check_data(TRAIN, X, y, loss)
    for name, value in (("width", width), ("steps", steps)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UnsupportedInputError(TRAIN, name, repr(value), f"{name} must be an int >= 1")
    if not seeds:
        raise UnsupportedInputError(TRAIN, "seeds", repr(seeds), "give at least one seed")
    data = augment(X, include_bias)
    d0, d = X.shape[1], data.shape[1]
    firsts, seconds = [], []
    for seed in seeds:  # initialisation only: one draw per run
        generator = torch.Generator(device="cpu").manual_seed(seed)
        firsts.append((2 * torch.rand(width, d, generator=generator, dtype=torch.float64, device="cpu") - 1) / d0**0.5)
        seconds.append((2 * torch.rand(width, generator=generator, dtype=torch.float64, device="cpu") - 1) / width**0.5)
    first = torch.stack(firsts).to(device=X.device, dtype=X.dtype)
    second = torch.stack(seconds).to(device=X.device, dtype=X.dtype)
    first.grad, second.grad = torch.zeros_like(first), torch.zeros_like(second)
    optimizer = torch.optim.Adam([first, second], lr=lr)
    history = []
    with tracker(progress, total=steps, task=TRAIN) as bar:
        for _ in range(steps):
            values = _objectives_and_gradients(data, targets, first, second, beta, loss)
            history.append(values)
            optimizer.step()
            bar.update(objective=values.amin())
        final = _objectives_and_gradients(data, targets, first, second, beta, loss)
    history.append(final)
    return TrainingRuns(final, torch.stack(history), first, second)


def _objectives_and_gradients(
    data: Tensor, targets: Tensor, first: Tensor, second: Tensor, beta: float, loss: str
) -> Tensor:
    """Each run's objective, with its gradient written into ``first.grad`` and ``second.grad`` (backprop by hand).

    ``yhat = relu(X U^T) alpha``; with g = dl/dyhat: d/d alpha = relu(X U^T)^T g + beta alpha and
    d/dU = ((g alpha^T) o 1[X U^T > 0])^T X + beta U (ReLU's derivative 0 at 0, as autograd takes it).
    """
    pre = data @ first.mT  # (S, n, m)
    hidden = torch.relu(pre)
    prediction = (hidden @ second.unsqueeze(-1)).squeeze(-1)  # (S, n)
    upstream = loss_gradient(loss, prediction, targets)
    torch.add((hidden.mT @ upstream.unsqueeze(-1)).squeeze(-1), second, alpha=beta, out=second.grad)
    back = (upstream.unsqueeze(-1) * second.unsqueeze(-2)) * (pre > 0)
    torch.add(back.mT @ data, first, alpha=beta, out=first.grad)
    decay = first.square().sum((-2, -1)) + second.square().sum(-1)
    return loss_value(loss, prediction, targets) + 0.5 * beta * decay
