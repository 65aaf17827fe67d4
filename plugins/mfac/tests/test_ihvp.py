"""The static and dynamic IHVPs against the dense (damp*I + G^T G / m)^{-1} in float64."""

from __future__ import annotations

import torch
from gradhub_mfac.ihvp import SlidingWindowIHVP, StaticIHVP, dynamic_ihvp, static_ihvp


def dense_inverse(grads: torch.Tensor, damp: float) -> torch.Tensor:
    m, d = grads.shape
    return torch.linalg.inv(damp * torch.eye(d, dtype=torch.float64) + grads.T @ grads / m)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def random(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_static_mul_diag_entries_match_dense() -> None:
    grads, x, damp = random(8, 60), random(60, seed=1), 1e-2
    inverse = dense_inverse(grads, damp)
    ihvp = StaticIHVP(grads, damp)
    assert relative_error(ihvp.mul(x), inverse @ x) <= 1e-10
    assert relative_error(ihvp.diag(), inverse.diagonal()) <= 1e-10
    rows, columns = torch.tensor([0, 3, 59, 17]), torch.tensor([0, 41, 2, 17])
    torch.testing.assert_close(ihvp.entry(rows, columns), inverse[rows, columns], rtol=1e-10, atol=1e-10)
    assert abs(float(ihvp.entry(5, 9)) - float(inverse[5, 9])) <= 1e-10 * float(inverse.abs().max())


def test_static_small_damp_and_more_gradients_than_weights() -> None:
    for m, d, damp in ((8, 60, 1e-5), (30, 12, 1e-3)):
        grads, x = random(m, d, seed=m), random(d, seed=d)
        assert relative_error(StaticIHVP(grads, damp).mul(x), dense_inverse(grads, damp) @ x) <= 1e-9


def test_static_factors_equal_the_official_sherman_morrison_recursion() -> None:
    """v_i = F_{i-1}^{-1} g_i, c_i = m + g_i^T v_i (Eq. 4-5, HInvFastBatch): v_i v_i^T / c_i = w_i w_i^T / damp."""
    grads, damp = random(8, 30), 1e-2
    m = grads.shape[0]
    vs, cs = [], []
    for i in range(m):  # the official sequential recursion, as a reference
        v = grads[i] / damp
        for j in range(i):
            v = v - (vs[j] @ grads[i]) / cs[j] * vs[j]
        vs.append(v)
        cs.append(m + grads[i] @ v)
    official = torch.stack([v / c.sqrt() for v, c in zip(vs, cs)])
    ours = StaticIHVP(grads, damp).factors[0] / damp**0.5
    torch.testing.assert_close(official.abs(), ours.abs(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(official, ours * torch.sign(official[:, :1] * ours[:, :1]), rtol=1e-10, atol=1e-12)


def test_blocked_matches_dense_block_diagonal() -> None:
    grads, x, damp, blocksize = random(6, 50), random(50, seed=3), 1e-2, 16
    inverse = torch.zeros(50, 50, dtype=torch.float64)
    for start in range(0, 50, blocksize):
        block = slice(start, min(start + blocksize, 50))
        inverse[block, block] = dense_inverse(grads[:, block], damp)
    ihvp = StaticIHVP.blocked(grads, blocksize, damp)
    assert relative_error(ihvp.mul(x), inverse @ x) <= 1e-10
    assert relative_error(ihvp.diag(), inverse.diagonal()) <= 1e-10
    rows, columns = torch.tensor([0, 1, 20, 49]), torch.tensor([15, 40, 31, 48])
    torch.testing.assert_close(ihvp.entry(rows, columns), inverse[rows, columns], rtol=1e-10, atol=1e-12)
    batched = StaticIHVP(grads[:, :48].reshape(6, 3, 16).transpose(0, 1), damp)
    assert relative_error(batched.mul(x[:48].reshape(3, 16)).reshape(-1), inverse[:48, :48] @ x[:48]) <= 1e-10


def test_dynamic_matches_dense_at_every_push_and_after_the_window_wraps() -> None:
    m, d, damp = 8, 60, 1e-2
    grads, x = random(m + 3, d), random(d, seed=1)
    window = SlidingWindowIHVP(d, m, damp, dtype=torch.float64)
    for count in range(1, m + 4):
        window.update(grads[count - 1])
        last = grads[max(0, count - m) : count]
        padded = torch.cat([last, torch.zeros(m - last.shape[0], d, dtype=torch.float64)])  # zero rows count in m
        assert relative_error(window.mul(x), dense_inverse(padded, damp) @ x) <= 1e-10, count
    assert relative_error(window.mul(x), dense_inverse(grads[3:], damp) @ x) <= 1e-10


def test_dynamic_update_mul_replaces_then_multiplies() -> None:
    m, d, damp = 4, 20, 1e-3
    grads = random(7, d)
    window = SlidingWindowIHVP(d, m, damp, dtype=torch.float64)
    for g in grads[:6]:
        window.update(g)
    result = window.update_mul(grads[6])
    assert relative_error(result, dense_inverse(grads[3:], damp) @ grads[6]) <= 1e-10


def test_woodbury_closed_form() -> None:
    """(damp I + G^T G / m)^{-1} = (I - G^T (m damp I + G G^T)^{-1} G) / damp."""
    grads, damp = random(5, 25), 0.3
    m = grads.shape[0]
    closed = (
        torch.eye(25, dtype=torch.float64)
        - grads.T @ torch.linalg.inv(m * damp * torch.eye(m, dtype=torch.float64) + grads @ grads.T) @ grads
    ) / damp
    torch.testing.assert_close(closed, dense_inverse(grads, damp), rtol=1e-11, atol=1e-11)


def test_solver_functions_match_dense() -> None:
    grads, x, damp = random(11, 40), random(40, seed=2), 0.05
    static = static_ihvp(grads, x, damp=damp)
    assert static.converged and relative_error(static.solution, dense_inverse(grads, damp) @ x) <= 1e-10
    dynamic = dynamic_ihvp(grads, x, ngrads=8, damp=damp)
    assert dynamic.converged and relative_error(dynamic.solution, dense_inverse(grads[3:], damp) @ x) <= 1e-10
    blocked = static_ihvp(grads, x, damp=damp, blocksize=40)
    torch.testing.assert_close(blocked.solution, static.solution, rtol=1e-12, atol=1e-12)
