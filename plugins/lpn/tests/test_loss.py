"""Proximal matching: its values, its gradient, its schedule, and (by quadrature) its Bayes minimiser.

The references are computed here, independently of the plugin: the Laplacian posterior's mean by
``scipy.integrate.quad``, its mode by ``scipy.optimize.minimize_scalar``, and the expected losses by the
trapezoid rule on a dense float64 grid.
"""

from __future__ import annotations

import math

import pytest
import torch
from gradhub_lpn.claims import laplace_mmse, soft_threshold
from gradhub_lpn.loss import ProximalMatchingLoss, default_gamma_min, proximal_matching_loss, proximal_matching_schedule
from gradhub_lpn.training import proximal_matching_stages
from scipy import integrate, optimize


def test_zero_at_the_target() -> None:
    target = torch.randn(5, 2, 3, dtype=torch.float64)
    assert ProximalMatchingLoss(0.3)(target.clone(), target).item() == 0.0


def test_hand_example() -> None:
    """||(1, 2, 2) - 0|| = 3 and gamma = 3: 1 - exp(-9/9) = 1 - 1/e (sample-wise norm over all coordinates)."""
    prediction = torch.tensor([[1.0, 2.0, 2.0]], dtype=torch.float64)
    value = ProximalMatchingLoss(3.0)(prediction, torch.zeros_like(prediction))
    assert value.item() == pytest.approx(1 - math.exp(-1), abs=1e-15)
    # the same sample as a 1 x 3 "image": the norm runs over every coordinate of a sample
    image = prediction.reshape(1, 1, 1, 3)
    assert ProximalMatchingLoss(3.0)(image, torch.zeros_like(image)).item() == pytest.approx(1 - math.exp(-1))
    # a coordinate-wise loss (the wrong reading: 1 - exp(-d_i^2 / gamma^2) averaged) gives another value
    coordinatewise = (1 - torch.exp(-(prediction**2) / 9)).mean().item()
    assert abs(coordinatewise - (1 - math.exp(-1))) > 0.3


def test_reductions_and_normalisation() -> None:
    prediction, target = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    values = ProximalMatchingLoss(1.5, reduction="none")(prediction, target)
    expected = 1 - torch.exp(-(prediction - target).square().sum(1) / 1.5**2)
    torch.testing.assert_close(values, expected, rtol=1e-15, atol=0)
    assert ProximalMatchingLoss(1.5)(prediction, target).item() == pytest.approx(expected.mean().item(), rel=1e-14)
    assert ProximalMatchingLoss(1.5, reduction="sum")(prediction, target).item() == pytest.approx(expected.sum().item())
    normalised = ProximalMatchingLoss(1.5, normalize=True, reduction="none")(prediction, target)
    c_gamma = (math.pi * 1.5**2) ** (-4 / 2)  # the paper's (pi gamma^2)^(-n/2), n = 4
    torch.testing.assert_close(normalised, 1 - c_gamma * (1 - expected), rtol=1e-13, atol=0)


def test_gradient_vanishes_for_outliers() -> None:
    """d/dpred = 2 (pred - x) exp(-d^2 / gamma^2) / gamma^2: it peaks near d = gamma / sqrt(2) and vanishes far away
    (robust to outliers), unlike L2's 2 (pred - x)."""
    gamma = 0.5
    distances = torch.tensor([0.1, gamma / math.sqrt(2), 2.0, 5.0, 50.0], dtype=torch.float64)
    prediction = distances.unsqueeze(1).requires_grad_()
    ProximalMatchingLoss(gamma, reduction="sum")(prediction, torch.zeros_like(prediction)).backward()
    gradient = prediction.grad.squeeze(1)
    expected = 2 * distances * torch.exp(-(distances**2) / gamma**2) / gamma**2
    torch.testing.assert_close(gradient, expected, rtol=1e-12, atol=1e-300)
    assert gradient.argmax().item() == 1
    assert gradient[3].item() < 1e-40 and gradient[4].item() == 0.0


def test_schedule_is_the_official_ramp() -> None:
    """4 stages of total // 4 steps: gamma_min * 8, 4, 2, 1, the last also after ``total``."""
    gammas = [proximal_matching_schedule(step, 8, 0.1) for step in range(10)]
    assert gammas == pytest.approx([0.8, 0.8, 0.4, 0.4, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1], rel=1e-15)
    assert [proximal_matching_schedule(s, 10, 1.0, n_stages=3) for s in (0, 2, 3, 5, 6, 9)] == [4, 4, 2, 2, 1, 1]
    assert default_gamma_min(28 * 28) == pytest.approx(0.08 * 28)
    stages = proximal_matching_stages(100, 40, 0.25)
    assert [(s.loss, s.steps, s.lr, s.gamma) for s in stages] == [
        ("l1", 100, 1e-3, None),
        ("pm", 10, 1e-4, 2.0),
        ("pm", 10, 1e-4, 1.0),
        ("pm", 10, 1e-4, 0.5),
        ("pm", 10, 1e-4, 0.25),
    ]


def _posterior_density(x: float, y: float) -> float:
    """Unnormalised p(x | y) for p(x) ~ exp(-|x|), y = x + N(0, 1)."""
    return math.exp(-abs(x) - (x - y) ** 2 / 2)


def _scipy_mmse(y: float) -> float:
    numerator = integrate.quad(lambda x: x * _posterior_density(x, y), -40, 40, points=[0.0, y], limit=200)[0]
    return numerator / integrate.quad(lambda x: _posterior_density(x, y), -40, 40, points=[0.0, y], limit=200)[0]


def _scipy_map(y: float) -> float:
    return optimize.minimize_scalar(
        lambda x: abs(x) + (x - y) ** 2 / 2, bounds=(-10, 10), method="bounded", options={"xatol": 1e-10}
    ).x


def test_quadrature_references() -> None:
    """MMSE by scipy quadrature (0.24, 0.39, 0.50 at y = 0.5, 0.8, 1.0, to two digits), MAP by scipy minimisation
    (soft-thresholding at 1); the claim's dense-grid helpers agree with both."""
    ys = [0.5, 0.8, 1.0, -2.0, 3.0]
    mmse = [_scipy_mmse(y) for y in ys]
    assert mmse[:3] == pytest.approx([0.24, 0.39, 0.50], abs=0.006)
    torch.testing.assert_close(
        laplace_mmse(torch.tensor(ys)).double(), torch.tensor(mmse, dtype=torch.float64), rtol=0, atol=1e-6
    )
    maps = torch.tensor([_scipy_map(y) for y in ys], dtype=torch.float64)
    torch.testing.assert_close(soft_threshold(torch.tensor(ys, dtype=torch.float64)), maps, rtol=0, atol=1e-6)


def _bayes_minimiser(y: float, loss) -> float:
    """argmin_z E[loss(z, x) | y] on a grid of z (step 0.005), the expectation by the trapezoid rule over x."""
    x = torch.linspace(-12, 12, 4_001, dtype=torch.float64)
    weights = torch.exp(-x.abs() - (x - y) ** 2 / 2)
    z = torch.linspace(-1, 3, 801, dtype=torch.float64)
    pairs = torch.cartesian_prod(z, x)  # (z_i, x_j), z major
    risk = loss(pairs[:, :1], pairs[:, 1:]).reshape(len(z), len(x)) @ weights
    return z[risk.argmin()].item()


@pytest.mark.parametrize("y", [0.7, 1.6])
def test_bayes_minimiser_tends_to_the_map(y: float) -> None:
    """Thm. 3.2: the minimiser of the expected proximal-matching loss tends to the MAP as gamma -> 0, while
    the L2 loss gives the MMSE (both references from scipy)."""
    map_value, mmse_value = _scipy_map(y), _scipy_mmse(y)

    def pm(gamma: float):
        return lambda z, x: proximal_matching_loss(z, x, gamma, reduction="none")

    errors = [abs(_bayes_minimiser(y, pm(gamma)) - map_value) for gamma in (1.0, 0.3, 0.05)]
    assert errors[0] > errors[1] > errors[2] and errors[2] <= 0.05
    assert abs(_bayes_minimiser(y, lambda z, x: (z - x).square().squeeze(1)) - mmse_value) <= 0.003
    assert abs(mmse_value - map_value) >= 0.25  # the two estimators differ here
