"""The Adam baseline: hand-written gradients equal autograd's, batched runs equal separate runs."""

from __future__ import annotations

import torch
from convex_relu_testkit import D, classification, regression
from gradhub_convex_relu.arrangements import augment
from gradhub_convex_relu.network import (
    _objectives_and_gradients,
    network_objective,
    recover_network,
    train_relu_network,
)


def test_hand_written_gradients_equal_autograd():
    X, y = regression()
    data = augment(X, True)
    generator = torch.Generator().manual_seed(0)
    for loss, targets in (("squared", y), ("logistic", classification()[1])):
        first = torch.randn(3, 7, 3, generator=generator, dtype=D)
        second = torch.randn(3, 7, generator=generator, dtype=D)
        first.grad, second.grad = torch.zeros_like(first), torch.zeros_like(second)
        values = _objectives_and_gradients(data, targets, first, second, 0.01, loss)
        a, b = first.detach().clone().requires_grad_(True), second.detach().clone().requires_grad_(True)
        prediction = (torch.relu(data @ a.mT) @ b.unsqueeze(-1)).squeeze(-1)
        if loss == "squared":
            fit = 0.5 * (prediction - targets).square().sum(-1)
        else:
            fit = torch.nn.functional.softplus(-targets * prediction).sum(-1)
        reference = fit + 0.005 * (a.square().sum((-2, -1)) + b.square().sum(-1))
        reference.sum().backward()
        torch.testing.assert_close(values, reference.detach())
        torch.testing.assert_close(first.grad, a.grad)
        torch.testing.assert_close(second.grad, b.grad)


def test_batched_runs_equal_separate_runs():
    X, y = regression()
    together = train_relu_network(X, y, 5, beta=1e-3, seeds=(0, 1, 2), steps=50)
    alone = train_relu_network(X, y, 5, beta=1e-3, seeds=(1,), steps=50)
    torch.testing.assert_close(together.objectives[1:2], alone.objectives)
    torch.testing.assert_close(together.first[1:2], alone.first)
    assert together.history.shape == (51, 3)


def test_adam_run_objective_is_the_network_objective():
    X, y = regression()
    runs = train_relu_network(X, y, 4, beta=1e-2, seeds=(3,), steps=20)
    weights = runs.first[0]
    network = torch.nn.Sequential(
        torch.nn.Linear(2, 4).double(), torch.nn.ReLU(), torch.nn.Linear(4, 1, bias=False).double()
    )
    with torch.no_grad():
        network[0].weight.copy_(weights[:, :2])
        network[0].bias.copy_(weights[:, 2])
        network[2].weight.copy_(runs.second[0].unsqueeze(0))
    torch.testing.assert_close(network_objective(network, X, y, beta=1e-2), runs.objectives[0])


def test_recovered_network_penalises_the_bias():
    weights = torch.zeros(2, 1, 3, dtype=D)
    weights[0, 0] = torch.tensor([0.0, 0.0, 4.0], dtype=D)  # only a bias: the neuron outputs relu(2) * 2
    network = recover_network(weights, include_bias=True)
    X = torch.zeros(1, 2, dtype=D)
    assert network(X).item() == 4.0
    assert network_objective(network, X, torch.tensor([4.0], dtype=D), beta=1.0).item() == 4.0
