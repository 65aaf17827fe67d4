"""The binarisers against the paper's equations (Eq. 4-5, the sign(0) policy, periodicity, the triangle surrogate)."""

from __future__ import annotations

import math

import pytest
import torch
from gradhub_biper.functional import biper_binarize, sign_act

OMEGAS = (1.0, 7.5, 20.0, 30.0)


def _weights(seed: int = 0, n: int = 4096) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 0.3 * torch.randn(n, generator=generator, dtype=torch.float64)


@pytest.mark.parametrize("omega", OMEGAS)
def test_forward_is_square_wave(omega: float) -> None:
    w = _weights()
    out = biper_binarize(w, freq=omega)
    expected = torch.sign(torch.sin(omega * w))
    assert out.dtype == w.dtype and out.shape == w.shape
    assert torch.equal(out, expected)  # no exact zero of sin among random float64 weights
    assert set(out.unique().tolist()) == {-1.0, 1.0}


def test_sign_zero_policy_is_plus_one() -> None:
    w = torch.tensor([0.0, -0.0, math.pi / 20 * 0, 1.0], dtype=torch.float64)
    out = biper_binarize(w, freq=20.0)
    assert out[:3].tolist() == [1.0, 1.0, 1.0]
    assert torch.equal(sign_act(torch.tensor([0.0, -0.0, -2.0, 3.0])), torch.tensor([1.0, 1.0, -1.0, 1.0]))
    assert biper_binarize(torch.tensor([float("nan")]), freq=20.0).item() == 0  # as torch.sign


@pytest.mark.parametrize("omega", OMEGAS)
def test_backward_is_sine_derivative_exactly(omega: float) -> None:
    w = _weights(1).requires_grad_(True)
    g = _weights(2)
    (biper_binarize(w, freq=omega) * g).sum().backward()
    expected = g * omega * torch.cos(omega * w.detach())
    assert torch.equal(w.grad, expected)


def test_backward_is_not_identity_or_other_frequency() -> None:
    w = _weights(1).requires_grad_(True)
    (biper_binarize(w, freq=20.0)).sum().backward()
    assert not torch.allclose(w.grad, torch.ones_like(w))
    assert not torch.allclose(w.grad, 30.0 * torch.cos(30.0 * w.detach()))


@pytest.mark.parametrize("k", (-3, 1, 5))
def test_periodicity(k: int) -> None:
    omega = 20.0
    w = _weights(3, 512)
    phase = torch.remainder(omega * w, math.pi)
    w = w[(phase > 1e-3) & (phase < math.pi - 1e-3)]  # away from the jumps, where round-off could flip a sign
    shifted = (w + 2 * math.pi * k / omega).requires_grad_(True)
    w = w.clone().requires_grad_(True)
    g = _weights(4, w.numel())
    out, out_shifted = biper_binarize(w, freq=omega), biper_binarize(shifted, freq=omega)
    assert torch.equal(out, out_shifted)
    (out * g).sum().backward()
    (out_shifted * g).sum().backward()
    torch.testing.assert_close(w.grad, shifted.grad, rtol=0, atol=1e-11)


def test_sign_act_triangle_surrogate() -> None:
    x = torch.tensor([0.25, -0.25, 1.2, -1.2, 0.0, 0.999, 1.0], dtype=torch.float64, requires_grad=True)
    upstream = torch.tensor([2.0, 3.0, 5.0, 7.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    out = sign_act(x)
    assert out.tolist() == [1.0, -1.0, 1.0, -1.0, 1.0, 1.0, 1.0]
    (out * upstream).sum().backward()
    assert x.grad[0] == 1.5 * 2.0 and x.grad[1] == 1.5 * 3.0
    assert x.grad[2] == 0 and x.grad[3] == 0 and x.grad[6] == 0
    assert x.grad[4] == 2.0
    torch.testing.assert_close(x.grad[5], torch.tensor(0.002, dtype=torch.float64))


def test_bfloat16_phase_computed_in_float32() -> None:
    w32 = _weights(5).float()
    wbf = w32.to(torch.bfloat16).requires_grad_(True)
    omega = 200.0
    out = biper_binarize(wbf, freq=omega)
    assert out.dtype == torch.bfloat16
    exact = torch.sign(torch.sin(omega * wbf.detach().float()))
    assert torch.equal(out.float(), exact)
    out.float().sum().backward()
    expected = (omega * torch.cos(omega * wbf.detach().float())).to(torch.bfloat16)
    assert torch.equal(wbf.grad, expected)
    # the naive bfloat16 phase loses it: a wrong implementation would differ on many weights
    naive = torch.sign(torch.sin(omega * wbf.detach())).float()
    assert (naive != exact).float().mean() > 0.01
