"""The M-FAC optimizer against a dense reference: F = damp*I + G^T G / m over a zero-initialised window."""

from __future__ import annotations

import pytest
import torch
from gradhub_mfac.optimizer import MFAC
from torch import nn


def dense_reference(
    gradients: list[torch.Tensor], params0: torch.Tensor, params_fn, *, lr, momentum, weight_decay, ngrads, damp
):
    """Replays M-FAC densely: window of the last ngrads directions (zeros first), F^{-1} by torch.linalg.solve."""
    d = params0.numel()
    window = torch.zeros(ngrads, d, dtype=torch.float64)
    buffer = torch.zeros(d, dtype=torch.float64)
    weights = params0.clone()
    for step in range(len(gradients)):
        direction = gradients[step](weights) + weight_decay * weights
        window[step % ngrads] = direction
        fisher = damp * torch.eye(d, dtype=torch.float64) + window.T @ window / ngrads
        update = torch.linalg.solve(fisher, direction)
        if momentum > 0:
            buffer = momentum * buffer + (1 - momentum) * update
            update = buffer
        weights = weights - lr * update
    return weights


def quadratic_problem(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(30, 12, generator=generator, dtype=torch.float64)
    b = torch.randn(30, generator=generator, dtype=torch.float64)
    noise = torch.randn(20, 12, generator=generator, dtype=torch.float64)
    return a, b, noise


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize(("momentum", "weight_decay", "ngrads"), [(0.0, 0.0, 4), (0.9, 0.01, 4), (0.5, 0.0, 16)])
def test_steps_equal_dense_preconditioned_steps(
    foreach: bool, momentum: float, weight_decay: float, ngrads: int
) -> None:
    a, b, noise = quadratic_problem()
    first = nn.Parameter(torch.zeros(5, dtype=torch.float64))
    second = nn.Parameter(torch.zeros(7, dtype=torch.float64))
    optimizer = MFAC(
        [first, second],
        lr=0.05,
        momentum=momentum,
        weight_decay=weight_decay,
        ngrads=ngrads,
        damp=1e-2,
        foreach=foreach,
    )

    def gradient_at(step: int):
        return lambda w: a.T @ (a @ w - b) / 30 + 0.1 * noise[step]  # a noisy gradient: windows of distinct rows

    steps = 10
    for step in range(steps):
        w = torch.cat([first.detach(), second.detach()])
        g = gradient_at(step)(w)
        first.grad, second.grad = g[:5].clone(), g[5:].clone()
        optimizer.step()
    reference = dense_reference(
        [gradient_at(s) for s in range(steps)],
        torch.zeros(12, dtype=torch.float64),
        None,
        lr=0.05,
        momentum=momentum,
        weight_decay=weight_decay,
        ngrads=ngrads,
        damp=1e-2,
    )
    torch.testing.assert_close(torch.cat([first.detach(), second.detach()]), reference, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("ngrads", [1, 6])
def test_first_step_closed_form(ngrads: int) -> None:
    """Zero window, one gradient: u = m g / (m damp + ||g||^2) (m=1: g / (damp + ||g||^2))."""
    generator = torch.Generator().manual_seed(3)
    weight = nn.Parameter(torch.randn(3, 4, generator=generator, dtype=torch.float64))
    start = weight.detach().clone()
    weight.grad = torch.randn(3, 4, generator=generator, dtype=torch.float64)
    lr, damp = 0.1, 1e-3
    MFAC([weight], lr=lr, ngrads=ngrads, damp=damp).step()
    g = weight.grad
    expected = start - lr * ngrads * g / (ngrads * damp + g.square().sum())
    torch.testing.assert_close(weight.detach(), expected, rtol=1e-12, atol=1e-14)


def test_sparse_keeps_zero_weights_and_matches_masked_dense() -> None:
    generator = torch.Generator().manual_seed(4)
    weight = nn.Parameter(torch.randn(10, generator=generator, dtype=torch.float64))
    with torch.no_grad():
        weight[::3] = 0
    mask = weight.detach() != 0
    optimizer = MFAC([weight], lr=0.1, ngrads=3, damp=1e-2, sparse=True)
    window = torch.zeros(3, int(mask.sum()), dtype=torch.float64)
    expected = weight.detach()[mask].clone()
    for step in range(5):
        weight.grad = torch.randn(10, generator=generator, dtype=torch.float64)
        g = weight.grad[mask]
        window[step % 3] = g
        fisher = 1e-2 * torch.eye(window.shape[1], dtype=torch.float64) + window.T @ window / 3
        expected = expected - 0.1 * torch.linalg.solve(fisher, g)
        optimizer.step()
    assert torch.all(weight.detach()[~mask] == 0)
    torch.testing.assert_close(weight.detach()[mask], expected, rtol=1e-10, atol=1e-12)


def test_param_groups_have_separate_windows_and_lrs() -> None:
    generator = torch.Generator().manual_seed(5)
    first = nn.Parameter(torch.zeros(4, dtype=torch.float64))
    second = nn.Parameter(torch.zeros(4, dtype=torch.float64))
    grads = torch.randn(6, 8, generator=generator, dtype=torch.float64)
    together = MFAC([{"params": [first]}, {"params": [second], "lr": 0.05}], lr=0.1, ngrads=3, damp=1e-2)
    alone_first, alone_second = (
        nn.Parameter(torch.zeros(4, dtype=torch.float64)),
        nn.Parameter(torch.zeros(4, dtype=torch.float64)),
    )
    separate = [MFAC([alone_first], lr=0.1, ngrads=3, damp=1e-2), MFAC([alone_second], lr=0.05, ngrads=3, damp=1e-2)]
    for g in grads:
        first.grad, second.grad = g[:4].clone(), g[4:].clone()
        alone_first.grad, alone_second.grad = g[:4].clone(), g[4:].clone()
        together.step()
        for optimizer in separate:
            optimizer.step()
    torch.testing.assert_close(first.detach(), alone_first.detach(), rtol=0, atol=1e-14)
    torch.testing.assert_close(second.detach(), alone_second.detach(), rtol=0, atol=1e-14)


def test_none_gradient_counts_as_zero_in_the_window() -> None:
    """A parameter that loses its gradient is not updated; its newest window slice is zero (G G^T stays exact)."""
    generator = torch.Generator().manual_seed(6)
    kept, skipped = nn.Parameter(torch.zeros(3, dtype=torch.float64)), nn.Parameter(torch.zeros(2, dtype=torch.float64))
    optimizer = MFAC([kept, skipped], lr=0.1, ngrads=2, damp=1e-2)
    g0, g1 = (
        torch.randn(5, generator=generator, dtype=torch.float64),
        torch.randn(3, generator=generator, dtype=torch.float64),
    )
    kept.grad, skipped.grad = g0[:3].clone(), g0[3:].clone()
    optimizer.step()
    skipped_after_first = skipped.detach().clone()
    before = kept.detach().clone()
    kept.grad, skipped.grad = g1.clone(), None
    optimizer.step()
    assert torch.equal(skipped.detach(), skipped_after_first)
    window = torch.stack([g0, torch.cat([g1, torch.zeros(2, dtype=torch.float64)])])
    fisher = 1e-2 * torch.eye(5, dtype=torch.float64) + window.T @ window / 2
    full = torch.linalg.solve(fisher, window[1])
    torch.testing.assert_close(kept.detach(), before - 0.1 * full[:3], rtol=1e-10, atol=1e-12)
    group_state = optimizer.state["mfac group 0"]
    torch.testing.assert_close(group_state["gram"], window @ window.T, rtol=1e-12, atol=1e-12)


def test_state_dict_holds_the_window() -> None:
    weight = nn.Parameter(torch.ones(3, dtype=torch.float64))
    optimizer = MFAC([weight], ngrads=2, momentum=0.5)
    weight.grad = torch.ones(3, dtype=torch.float64)
    optimizer.step()
    state = optimizer.state_dict()["state"]
    assert list(state) == [0]  # every key a parameter index (what torch.distributed.checkpoint maps to names)
    assert set(state[0]) == {"gradient_window", "momentum_buffer", "group_gram", "group_step", "group_skipped_steps"}
    assert state[0]["group_step"] == 1 and state[0]["group_gram"].shape == (2, 2)
    assert state[0]["group_gram"].dtype == torch.float64 and state[0]["group_skipped_steps"] == 0
