"""Correctness: closed-form steps, the perceptron limit (Observation 1), bounds, stability."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from gradhub_normalized_lrgd.examples import separable_data
from gradhub_normalized_lrgd.optimizer import NormalizedLRGD
from gradhub_normalized_lrgd.solvers import (
    batch_perceptron,
    logistic_gradient,
    logistic_loss,
    lr_gd,
    lr_gd_step,
    perceptron_step,
)

import gradhub

HAND_X = torch.tensor([[1.0, 2.0], [-1.0, 0.5], [0.5, -3.0]], dtype=torch.float64)
HAND_Y = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)


def _closure(optimizer, X, y, w):
    def closure():
        optimizer.zero_grad()
        loss = logistic_loss(X, y, w)
        loss.backward()
        return loss

    return closure


def test_registry_returns_the_implementations() -> None:
    for implementation in (NormalizedLRGD, lr_gd, batch_perceptron):
        assert gradhub.get(implementation.spec.name) is implementation


def test_loss_and_gradient_match_autograd_and_the_formula() -> None:
    w = torch.tensor([0.3, -0.7], dtype=torch.float64, requires_grad=True)
    loss = logistic_loss(HAND_X, HAND_Y, w)
    expected = torch.log1p(torch.exp(-HAND_Y * (HAND_X @ w.detach()))).mean()
    assert torch.allclose(loss.detach(), expected, rtol=1e-14)
    (autograd,) = torch.autograd.grad(loss, w)
    assert torch.allclose(logistic_gradient(HAND_X, HAND_Y, w.detach()), autograd, rtol=1e-13)


@pytest.mark.parametrize("gamma", [0.5, 3.0, 1e6])
def test_one_lr_gd_step_from_zero(gamma: float) -> None:
    w1 = lr_gd_step(HAND_X, HAND_Y, torch.zeros(2, dtype=torch.float64), gamma)
    expected = gamma / 3 * (HAND_Y[:, None] * HAND_X).sum(0) / 2
    assert torch.allclose(w1, expected, rtol=1e-15)
    solver = lr_gd(HAND_X, HAND_Y, lr=gamma, max_iter=1)
    assert torch.allclose(solver.solution, expected, rtol=1e-15)


@pytest.mark.parametrize("gamma", [0.1, 1.0, 7.0])
@pytest.mark.parametrize("foreach", [False, True])
def test_normalized_step_at_zero(gamma: float, foreach: bool) -> None:
    w = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    optimizer = NormalizedLRGD([w], lr=gamma, foreach=foreach)
    loss = optimizer.step(_closure(optimizer, HAND_X, HAND_Y, w))
    assert math.isclose(loss.item(), math.log(2), rel_tol=1e-15)
    expected = gamma * (HAND_Y[:, None] * HAND_X).sum(0) / (2 * 3) / math.log(2)
    assert torch.allclose(w.detach(), expected, rtol=1e-14)


def test_normalized_step_equals_the_formula_anywhere() -> None:
    X, y, _ = separable_data(n=50, d=4, seed=3)
    w0 = torch.randn(5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    w = w0.clone().requires_grad_(True)
    optimizer = NormalizedLRGD([w], lr=0.7, eps=0.01)
    optimizer.step(_closure(optimizer, X, y, w))
    expected = w0 - 0.7 * logistic_gradient(X, y, w0) / (logistic_loss(X, y, w0) + 0.01)
    assert torch.allclose(w.detach(), expected, rtol=1e-13)


def test_normalized_step_is_lr_gd_with_step_gamma_over_f_across_parameters() -> None:
    # Splitting w over two tensors (and two param groups) changes nothing: f is one function of all of them.
    X, y, _ = separable_data(n=40, d=3, seed=2)
    w0 = torch.randn(4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    first, second = w0[:2].clone().requires_grad_(True), w0[2:].clone().requires_grad_(True)
    optimizer = NormalizedLRGD([{"params": [first]}, {"params": [second]}], lr=0.3)

    def closure():
        optimizer.zero_grad()
        loss = logistic_loss(X, y, torch.cat([first, second]))
        loss.backward()
        return loss

    optimizer.step(closure)
    expected = w0 - 0.3 / logistic_loss(X, y, w0) * logistic_gradient(X, y, w0)
    assert torch.allclose(torch.cat([first, second]).detach(), expected, rtol=1e-13)


@pytest.mark.parametrize("foreach", [False, True])
def test_grad_norm_step_has_length_lr(foreach: bool) -> None:
    X, y, _ = separable_data(n=60, d=6, seed=4)
    w = torch.randn(7, dtype=torch.float64, generator=torch.Generator().manual_seed(3)).requires_grad_(True)
    for lr in (0.25, 2.0):
        before = w.detach().clone()
        optimizer = NormalizedLRGD([w], lr=lr, normalize="grad_norm", foreach=foreach)
        optimizer.step(_closure(optimizer, X, y, w))
        assert math.isclose((w.detach() - before).norm().item(), lr, rel_tol=1e-13)


def test_normalized_direction_is_bounded_by_max_norm_along_the_run() -> None:
    X, y, _ = separable_data(n=200, d=10, margin=0.05, seed=0)
    radius = X.norm(dim=1).max().item()
    w = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
    optimizer = NormalizedLRGD([w], lr=1.0)
    closure = _closure(optimizer, X, y, w)
    for _ in range(200):
        current = w.detach().clone()
        ratio = logistic_gradient(X, y, current).norm() / logistic_loss(X, y, current)
        assert ratio.item() <= radius * (1 + 1e-12)
        optimizer.step(closure)


def test_loss_decreases_and_data_get_separated() -> None:
    X, y, _ = separable_data(n=200, d=10, margin=0.05, seed=1)
    w = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
    optimizer = NormalizedLRGD([w], lr=1.0)
    closure = _closure(optimizer, X, y, w)
    losses = [optimizer.step(closure).item() for _ in range(40)]
    assert all(b < a for a, b in itertools.pairwise(losses))
    assert bool((y * (X @ w.detach()) > 0).all())
    run = lr_gd(X, y, lr=1.0, max_iter=5000)
    assert run.converged and bool((run.losses[1:] < run.losses[:-1]).all())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_perceptron_is_the_large_step_limit(seed: int) -> None:
    X, y, _ = separable_data(n=100, d=5, margin=0.05, seed=seed)
    gamma = 1e9
    w = torch.zeros(X.shape[1], dtype=torch.float64)
    v = torch.zeros_like(w)
    for t in range(30):
        w, v = lr_gd_step(X, y, w, gamma), perceptron_step(X, y, v)
        if t == 0:
            assert torch.allclose(v, (y[:, None] * X).sum(0) / (2 * X.shape[0]), rtol=1e-15)
        assert torch.equal(torch.sign(y * (X @ w)), torch.sign(y * (X @ v)))
        assert torch.allclose(w / gamma, v, rtol=1e-9, atol=1e-12)
    assert lr_gd(X, y, lr=gamma).iterations == batch_perceptron(X, y).iterations


def test_perceptron_stops_when_separated_and_reports_residuals() -> None:
    X, y, _ = separable_data(n=100, d=5, seed=5)
    result = batch_perceptron(X, y, max_iter=500)
    assert result.converged and result.residuals[0].item() == 1.0 and result.residuals[-1].item() == 0.0
    assert bool((y * (X @ result.solution) > 0).all())
    assert (
        not bool((y * (X @ perceptron_step(X, y, torch.zeros(6, dtype=torch.float64))) > 0).all())
        or result.iterations == 1
    )


def test_tol_stops_at_a_fraction_of_misclassified_points() -> None:
    X, y, _ = separable_data(n=200, d=10, margin=0.05, seed=0)
    loose = lr_gd(X, y, lr=0.1, tol=0.05, max_iter=5000)
    strict = lr_gd(X, y, lr=0.1, tol=0.0, max_iter=5000)
    assert loose.converged and loose.residuals[-1].item() <= 0.05 < loose.residuals[-2].item()
    assert loose.iterations < strict.iterations


def test_float32_stays_finite_for_huge_margins() -> None:
    X, y, _ = separable_data(n=100, d=5, seed=0, dtype=torch.float32)
    w = (torch.linalg.lstsq(X.double(), y.double()[:, None]).solution.squeeze(1)).float()
    w = (w / (y * (X @ w)).abs().min() * 1e4).requires_grad_(True)  # margins up to ~1e4 and beyond
    optimizer = NormalizedLRGD([w], lr=1.0)
    for _ in range(3):
        loss = optimizer.step(_closure(optimizer, X, y, w))
        assert torch.isfinite(loss) and bool(torch.isfinite(w).all())
    big = lr_gd(X, y, w0=w.detach(), lr=1e4, max_iter=3)
    assert bool(torch.isfinite(big.losses).all()) and bool(torch.isfinite(big.solution).all())
    assert torch.isfinite(logistic_gradient(X, -y, w.detach())).all()
    assert torch.isfinite(logistic_loss(X, -y, w.detach()))
