"""reste_sign: forward exactly sign(x); backward phi (Eq. 10) at reference points, vs autograd of F_o; o = 1 = STE.

Each key criterion is a function of a binariser ``binarize(x, o, t, interval)``; the tests run it on
``reste_sign`` (it passes) and on deliberately wrong estimators (they fail).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from gradhub_reste import RESTE_SIGN
from gradhub_reste.functional import power_surrogate, rectified_derivative, reste_sign
from torch import Tensor

import gradhub

Binarize = Callable[[Tensor, float, float, float], Tensor]
DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def registered(x: Tensor, o: float, t: float, interval: float) -> Tensor:
    return reste_sign(x, o=o, t=t, interval=interval)


def backward_of(binarize: Binarize, x: Tensor, o: float, t: float = 1.5, interval: float = 0.1) -> Tensor:
    """phi(x): the gradient autograd gives through ``binarize`` for an upstream gradient of ones."""
    leaf = x.detach().clone().requires_grad_()
    (gradient,) = torch.autograd.grad(binarize(leaf, o, t, interval).sum(), leaf)
    return gradient


# Reference points of Eq. 10: (x, o, phi) at t = 1.5, interval = 0.1.
PHI_POINTS = [
    (0.5, 3.0, (1 / 3) * 0.5 ** (-2 / 3)),  # 0.52913
    (0.05, 3.0, 0.1 ** (1 / 3) / 0.1),  # 4.6416, the chord branch
    (2.0, 3.0, 0.0),  # beyond t
    (-0.5, 3.0, (1 / 3) * 0.5 ** (-2 / 3)),  # even
    (0.1, 3.0, 0.1 ** (1 / 3) / 0.1),  # |x| = interval: the chord branch (official)
    (-0.1, 3.0, 0.1 ** (1 / 3) / 0.1),
    (0.0, 3.0, 0.1 ** (1 / 3) / 0.1),  # x = 0: the chord branch
    (1.5, 3.0, (1 / 3) * 1.5 ** (-2 / 3)),  # |x| = t: the power branch (official <= t)
    (-1.5, 3.0, (1 / 3) * 1.5 ** (-2 / 3)),
    (1.5000001, 3.0, 0.0),
    (0.5, 1.0, 1.0),  # o = 1: phi = 1 on |x| <= t
    (0.05, 1.0, 1.0),  # 0.1 / 0.1
    (1.5, 1.0, 1.0),
    (-1.2, 1.0, 1.0),
    (2.0, 1.0, 0.0),
    (0.5, 2.0, 0.5 * 0.5**-0.5),
]


def phi_mismatches(binarize: Binarize) -> list[str]:
    """The reference points where the binariser's backward is not phi (float64, relative 1e-12)."""
    wrong = []
    for x, o, expected in PHI_POINTS:
        got = float(backward_of(binarize, torch.tensor([x], dtype=torch.float64), o)[0])
        if not math.isclose(got, expected, rel_tol=1e-12, abs_tol=1e-15):
            wrong.append(f"x={x}, o={o}: {got} != {expected}")
    return wrong


def test_phi_at_the_reference_points() -> None:
    assert phi_mismatches(registered) == []
    assert math.isclose(PHI_POINTS[0][2], 0.52913, abs_tol=5e-6)
    assert math.isclose(PHI_POINTS[1][2], 4.6416, abs_tol=5e-5)


class _WrongEstimator(torch.autograd.Function):
    """sign forward; a backward phi computed by ``ctx.phi`` (the wrong variants below)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, phi: Callable[[Tensor], Tensor]) -> Tensor:
        ctx.save_for_backward(x)
        ctx.phi = phi
        return torch.sign(x)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        return grad_output * ctx.phi(x), None


def wrong(phi: Callable[[Tensor, float, float, float], Tensor]) -> Binarize:
    return lambda x, o, t, interval: _WrongEstimator.apply(x, lambda v: phi(v, o, t, interval))


def _branches(chord: Callable[..., Any], power: Callable[..., Tensor], inside: str = "<=") -> Callable[..., Tensor]:
    def phi(x: Tensor, o: float, t: float, interval: float) -> Tensor:
        m = x.abs()
        in_chord = m <= interval if inside == "<=" else m < interval
        return torch.where(in_chord, chord(o, interval), torch.where(m <= t, power(m.clamp_min(interval), o), 0.0))

    return phi


WRONG_VARIANTS = {
    # the chord's value instead of its slope: interval^(1/o), not interval^(1/o) / interval
    "chord value, not slope": _branches(lambda o, i: i ** (1 / o), lambda m, o: m ** ((1 - o) / o) / o),
    # the interval boundary on the power branch (|x| < interval for the chord)
    "boundary |x| = interval on the power branch": _branches(
        lambda o, i: i ** (1 / o) / i, lambda m, o: m ** ((1 - o) / o) / o, inside="<"
    ),
    # the derivative at the interval instead of the chord slope: (1/o) interval^((1-o)/o)
    "tangent, not chord, inside": _branches(lambda o, i: i ** ((1 - o) / o) / o, lambda m, o: m ** ((1 - o) / o) / o),
    # o inverted: the derivative of sign(x)|x|^o
    "exponent inverted": _branches(lambda o, i: i**o / i, lambda m, o: o * m ** (o - 1)),
    # no clipping at t
    "not clipped at t": lambda x, o, t, i: _branches(
        lambda o, i: i ** (1 / o) / i, lambda m, o: m ** ((1 - o) / o) / o
    )(x, o, math.inf, i),
}


@pytest.mark.parametrize("variant", WRONG_VARIANTS)
def test_wrong_estimators_fail_the_point_criterion(variant: str) -> None:
    assert phi_mismatches(wrong(WRONG_VARIANTS[variant])) != []


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("o", (1.0, 2.5))
def test_forward_is_exactly_sign(dtype: torch.dtype, o: float) -> None:
    x = (torch.randn(5, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3).to(dtype)
    x[0, :4] = torch.tensor([0.0, -0.0, 0.1, -1.5], dtype=dtype)
    y = reste_sign(x, o=o)
    assert y.dtype == dtype and y.shape == x.shape
    assert torch.equal(y, torch.sign(x))
    assert y[0, 0] == 0 and y[0, 1] == 0  # sign(0) = 0, as official torch.sign
    assert torch.equal(reste_sign(torch.tensor(-2.0, dtype=dtype)), torch.tensor(-1.0, dtype=dtype))  # 0-d


def _power_branch_points() -> Tensor:
    """float64 points with interval < |x| < t, away from both boundaries (both signs)."""
    grid = torch.linspace(0.11, 1.49, 40, dtype=torch.float64)
    return torch.cat([grid, -grid])


@pytest.mark.parametrize("o", (1.0, 1.3, 2.0, 3.0, 5.0))
def test_backward_is_the_derivative_of_the_power_surrogate(o: float) -> None:
    """On interval < |x| < t: phi equals autograd's derivative of sign(x)|x|^(1/o) (float64)."""
    x = _power_branch_points().requires_grad_()
    (expected,) = torch.autograd.grad((torch.sign(x) * x.abs() ** (1 / o)).sum(), x)
    torch.testing.assert_close(backward_of(registered, x, o), expected, rtol=1e-13, atol=0)


@pytest.mark.parametrize("o", (1.5, 3.0))
def test_gradcheck_of_power_surrogate_with_reste_backward(o: float) -> None:
    """gradcheck (float64, those points only) of F_o(x) in the forward with reste_sign's backward."""

    def surrogate_forward(x: Tensor) -> Tensor:
        binary = reste_sign(x, o=o)
        return power_surrogate(x, o).detach() + (binary - binary.detach())

    assert torch.autograd.gradcheck(surrogate_forward, (_power_branch_points().requires_grad_(),))
    inverted = wrong(WRONG_VARIANTS["exponent inverted"])

    def inverted_forward(x: Tensor) -> Tensor:
        binary = inverted(x, o, 1.5, 0.1)
        return power_surrogate(x, o).detach() + (binary - binary.detach())

    x = _power_branch_points().requires_grad_()
    assert not torch.autograd.gradcheck(inverted_forward, (x,), raise_exception=False)


@pytest.mark.parametrize("dtype", DTYPES)
def test_o_one_is_the_clipped_ste_bit_for_bit(dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(1)
    x = (2 * torch.randn(200, generator=generator, dtype=torch.float64)).to(dtype)
    x[:6] = torch.tensor([0.0, 0.1, -0.1, 1.5, -1.5, 1.6], dtype=dtype)
    upstream = torch.randn(200, generator=generator, dtype=torch.float64).to(dtype)
    leaf = x.clone().requires_grad_()
    (gradient,) = torch.autograd.grad((reste_sign(leaf, o=1.0) * upstream).sum(), leaf)
    assert torch.equal(gradient, upstream * (x.abs() <= 1.5).to(dtype))
    assert torch.equal(backward_of(registered, x, 1.0), (x.abs() <= 1.5).to(dtype))


@pytest.mark.parametrize("dtype", (torch.float16, torch.bfloat16))
def test_half_precision_computes_phi_in_float32(dtype: torch.dtype) -> None:
    """The power in float32, one rounding of the product back to the input's dtype."""
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(300, generator=generator).to(dtype)
    upstream = torch.randn(300, generator=generator).to(dtype)
    leaf = x.clone().requires_grad_()
    (gradient,) = torch.autograd.grad((reste_sign(leaf, o=2.7) * upstream).sum(), leaf)
    assert gradient.dtype == dtype
    expected = (upstream.float() * rectified_derivative(x.float(), 2.7, 1.5, 0.1)).to(dtype)
    assert torch.equal(gradient, expected)
    assert rectified_derivative(x, 2.7, 1.5, 0.1).dtype == torch.float32
    assert bool(torch.isfinite(gradient).all())


def test_rectified_derivative_is_finite_and_bounded() -> None:
    """The chord keeps phi bounded by interval^((1-o)/o) near 0, where the true derivative is infinite."""
    x = torch.tensor([0.0, 1e-30, -1e-12, 0.1, 0.1000001, 1.5, 1e30, math.inf, -math.inf], dtype=torch.float64)
    phi = rectified_derivative(x, 3.0, 1.5, 0.1)
    assert bool(torch.isfinite(phi).all())
    assert float(phi.max()) == pytest.approx(0.1 ** (-2 / 3), rel=1e-12)
    assert phi[-3:].tolist() == [0.0, 0.0, 0.0]


def test_nan_input_follows_torch_sign_and_gets_no_gradient_as_official() -> None:
    """No finiteness check on the hot path (as official): NaN gives torch.sign's value (0 on this build) and a
    zero gradient; infinities give +-1 and a zero gradient (|x| > t)."""
    x = torch.tensor([math.nan, 0.5, math.inf, -math.inf], requires_grad=True)
    y = reste_sign(x, o=2.0)
    torch.testing.assert_close(y.detach(), torch.sign(x.detach()), rtol=0, atol=0, equal_nan=True)
    (gradient,) = torch.autograd.grad(y.nansum(), x)
    assert gradient.tolist() == [0.0, float(rectified_derivative(torch.tensor(0.5), 2.0, 1.5, 0.1)), 0.0, 0.0]


def test_registry_and_defaults() -> None:
    assert gradhub.get(RESTE_SIGN.name) is reste_sign
    x = torch.tensor([0.05, 0.5, 1.4, 1.6], requires_grad=True)
    reste_sign(x).sum().backward()  # defaults o = 1, t = 1.5, interval = 0.1
    assert x.grad.tolist() == [1.0, 1.0, 1.0, 0.0]


def test_torch_func_transforms_agree() -> None:
    x = torch.tensor([0.05, -0.3, 0.8, 2.0], dtype=torch.float64)
    phi = rectified_derivative(x, 2.0, 1.5, 0.1)
    jacobian_reverse = torch.func.jacrev(lambda v: reste_sign(v, o=2.0))(x)
    jacobian_forward = torch.func.jacfwd(lambda v: reste_sign(v, o=2.0))(x)
    assert torch.equal(jacobian_reverse, torch.diag(phi))
    assert torch.equal(jacobian_forward, torch.diag(phi))
    batch = torch.stack([x, -x, 2 * x])
    per_row = torch.func.vmap(torch.func.grad(lambda v: reste_sign(v, o=2.0).sum()))(batch)
    assert torch.equal(per_row, torch.stack([rectified_derivative(row, 2.0, 1.5, 0.1) for row in batch]))


def test_a_call_binds_no_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside torch.func and torch.compile a call goes to autograd's C++ entry: torch's Function.apply binds
    forward's signature on every call for Functions with setup_context; ours must not. Gradients are unchanged."""
    import inspect

    x = torch.tensor([0.05, 0.5, 2.0], requires_grad=True)
    reste_sign(x, o=3.0)  # the first call fills the hyperparameter binding caches
    bound = []
    original = inspect.Signature.bind
    monkeypatch.setattr(inspect.Signature, "bind", lambda *a, **k: (bound.append(1), original(*a, **k))[1])
    monkeypatch.setattr(inspect, "signature", lambda *a, **k: (bound.append(1), pytest.fail("signature built")))
    reste_sign(x, o=3.0).sum().backward()
    assert bound == []
    assert torch.equal(x.grad, rectified_derivative(x.detach(), 3.0, 1.5, 0.1))


def test_power_surrogate_limits() -> None:
    x = torch.linspace(-2, 2, 101, dtype=torch.float64)
    assert torch.equal(power_surrogate(x, 1.0), x)
    far = power_surrogate(x, 1e6)
    torch.testing.assert_close(far[x != 0], torch.sign(x)[x != 0], rtol=0, atol=1e-4)
