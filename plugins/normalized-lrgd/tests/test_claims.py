"""The paper's claim checks pass, and each criterion fails for a deliberately wrong implementation."""

from __future__ import annotations

import torch
from gradhub_normalized_lrgd import claims
from gradhub_normalized_lrgd.solvers import lr_gd, perceptron_step


def test_perceptron_limit() -> None:
    result = claims.perceptron_limit()
    assert result.passed, result.report()
    assert result.measured["max relative difference w_t/gamma vs v_t"] <= 1e-12


def test_perceptron_limit_fails_without_the_tie_weight() -> None:
    # tie=0 ignores the all-zero margins at w_0 = 0: v stays 0, which LR+GD's sigmoid(0) = 1/2 does not.
    result = claims._check_limit(perceptron=lambda X, y, v: perceptron_step(X, y, v, tie=0.0))
    assert not result.passed


def test_perceptron_limit_fails_for_a_sum_instead_of_a_mean() -> None:
    result = claims._check_limit(
        perceptron=lambda X, y, v: perceptron_step(X, y, v) * 1.0 + (perceptron_step(X, y, v) - v) * (X.shape[0] - 1)
    )
    assert not result.passed


def test_large_steps_loss_unreliable() -> None:
    result = claims.large_steps_loss_unreliable()
    assert result.passed, result.report()
    assert len(result.figures) == 2


def test_large_steps_fails_for_a_gradient_with_the_wrong_sign_of_the_margin() -> None:
    def wrong_lr_gd(X, y, *, lr, max_iter):
        # sigmoid(+m) instead of sigmoid(-m): weights the well-classified points.
        from gradhub_normalized_lrgd import solvers

        original = solvers.lr_gd_step
        solvers.lr_gd_step = lambda X, y, w, lr: (
            w + lr * (X.T @ (y * torch.sigmoid(solvers.margins(X, y, w)))) / X.shape[0]
        )
        try:
            return lr_gd(X, y, lr=lr, max_iter=min(max_iter, 200))
        finally:
            solvers.lr_gd_step = original

    assert not claims._check_large_steps(solve=wrong_lr_gd).passed


def test_normalized_faster() -> None:
    result = claims.normalized_faster()
    assert result.passed, result.report()
    assert len(result.figures) == 3


def test_normalized_faster_fails_without_the_division_by_the_loss() -> None:
    assert not claims._check_normalized(lambda params, lr: torch.optim.SGD(params, lr=lr)).passed
