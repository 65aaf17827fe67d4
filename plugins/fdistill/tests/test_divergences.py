"""The weighting table h(r) = f''(r) r^2: values at r = 1 and agreement with autograd on each generator f."""

from __future__ import annotations

import pytest
import torch
from gradhub_fdistill import DIVERGENCES
from gradhub_fdistill.divergences import GENERATORS, WEIGHTS, f_weight

from gradhub.errors import HyperparameterError, UnsupportedInputError

R = torch.logspace(-2, 1.5, 41, dtype=torch.float64)  # ratios 0.01 .. 31.6


def second_derivative(f, r: torch.Tensor) -> torch.Tensor:
    """f''(r) by double autograd (elementwise f)."""
    r = r.clone().requires_grad_(True)
    (first,) = torch.autograd.grad(f(r).sum(), r, create_graph=True)
    (second,) = torch.autograd.grad(first.sum(), r)
    return second


def proportional(a: torch.Tensor, b: torch.Tensor) -> bool:
    """a = c b for one constant c > 0 (to 1e-10 relative)."""
    ratio = a / b
    return bool((ratio > 0).all()) and torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-10, atol=0)


def test_the_table_covers_the_spec_divergences_in_order():
    assert tuple(WEIGHTS) == DIVERGENCES == tuple(GENERATORS)


@pytest.mark.parametrize(
    ("divergence", "at_one"), [("rkl", 1), ("kl", 1), ("js", 0.5), ("sf", 0.5), ("neyman", 1), ("sh", 1), ("jf", 2)]
)
def test_h_at_one(divergence, at_one):
    value = f_weight(torch.ones(3, dtype=torch.float64), divergence)
    assert torch.equal(value, torch.full((3,), float(at_one), dtype=torch.float64))


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_h_is_f_second_derivative_times_r_squared(divergence):
    """h(r) = f''(r) r^2 up to a positive constant (1, except neyman 2 and sh 1/2), by autograd on f."""
    f = GENERATORS[divergence]
    assert f(torch.ones((), dtype=torch.float64)).abs() < 1e-15  # f(1) = 0: a divergence of p from itself is 0
    by_autograd = second_derivative(f, R) * R**2
    assert proportional(by_autograd, f_weight(R, divergence))
    constant = (by_autograd / f_weight(R, divergence))[0].item()
    assert constant == pytest.approx({"neyman": 2.0, "sh": 0.5}.get(divergence, 1.0), rel=1e-12)


@pytest.mark.parametrize("divergence", ["kl", "js", "sf", "neyman", "sh", "jf"])
def test_wrong_h_without_r_squared_fails_the_autograd_check(divergence):
    """The same criterion rejects h = f''(r) (the r^2 forgotten); rkl's f'' = 1/r^2 is not 1 either."""
    f = GENERATORS[divergence]
    assert not proportional(second_derivative(f, R), f_weight(R, divergence))
    assert not proportional(second_derivative(GENERATORS["rkl"], R), f_weight(R, "rkl"))


def test_wrong_table_entries_fail_the_autograd_check():
    """h = 1/r for forward KL, or r for reverse KL (the ratio inverted), is not f'' r^2 of their f."""
    kl = second_derivative(GENERATORS["kl"], R) * R**2
    assert not proportional(kl, f_weight(R, "neyman"))
    assert not proportional(second_derivative(GENERATORS["rkl"], R) * R**2, f_weight(R, "kl"))
    assert not proportional(second_derivative(GENERATORS["js"], R) * R**2, f_weight(R, "sf"))


def test_reverse_kl_is_dmd_ones_and_keeps_shape_dtype_device():
    r = torch.rand(4, 3, dtype=torch.float32) + 0.1
    for divergence in DIVERGENCES:
        h = f_weight(r, divergence)
        assert h.shape == r.shape and h.dtype == r.dtype and h.device == r.device
    assert torch.equal(f_weight(r, "rkl"), torch.ones_like(r))


def test_neyman_is_finite_at_zero_ratio():
    assert torch.isfinite(f_weight(torch.zeros(2), "neyman")).all()


def test_unknown_divergence_and_bad_ratio_are_clear_errors():
    with pytest.raises(HyperparameterError, match=r"f_weight.*divergence.*'tv'.*rkl, kl, js"):
        f_weight(torch.ones(2), "tv")
    with pytest.raises(UnsupportedInputError, match=r"f_weight.*r.*floating"):
        f_weight(torch.ones(2, dtype=torch.int64), "kl")
    with pytest.raises(UnsupportedInputError, match=r"f_weight.*r"):
        f_weight([1.0, 2.0], "kl")
