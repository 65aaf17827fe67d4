"""GaussianPath: closed-form values, monotone SNR, derivatives, and exact round trips of the conversions."""

from __future__ import annotations

import math

import pytest
import torch
from gradhub_diffusion import PATH_KINDS
from gradhub_diffusion.paths import PREDICTIONS, GaussianPath

T = torch.linspace(0.02, 0.98, 25, dtype=torch.float64)


def _times(path: GaussianPath) -> torch.Tensor:
    return path.t_min + (path.t_max - path.t_min) * T


@pytest.mark.parametrize("kind", PATH_KINDS)
@pytest.mark.parametrize("source", PREDICTIONS)
@pytest.mark.parametrize("target", PREDICTIONS)
def test_conversions_round_trip(kind: str, source: str, target: str) -> None:
    """to_<target> of an output of type <source>, converted back, is the output (float64, 1e-9); and
    every conversion of the exact outputs of (x0, eps) recovers x0."""
    path = GaussianPath(kind=kind)
    generator = torch.Generator().manual_seed(0)
    t = _times(path)
    x0 = torch.randn(len(t), 3, generator=generator, dtype=torch.float64)
    eps = torch.randn(len(t), 3, generator=generator, dtype=torch.float64)
    x_t = path.sample(x0, t, eps)
    exact = {
        "x0": x0,
        "eps": eps,
        "score": -eps / path.sigma(t)[:, None],
        "v": path.alpha(t)[:, None] * eps - path.sigma(t)[:, None] * x0,
        "velocity": path.d_alpha(t)[:, None] * x0 + path.d_sigma(t)[:, None] * eps,
    }
    convert = {
        "x0": path.to_x0,
        "eps": path.to_eps,
        "score": path.to_score,
        "v": path.to_v,
        "velocity": path.to_velocity,
    }
    converted = convert[target](exact[source], x_t, t, source)
    torch.testing.assert_close(converted, exact[target], rtol=1e-9, atol=1e-9)
    back = convert[source](converted, x_t, t, target)
    torch.testing.assert_close(back, exact[source], rtol=1e-9, atol=1e-9)


def test_closed_form_values() -> None:
    """The defaults of each kind, at known points."""
    cosine = GaussianPath(kind="vp_cosine")
    s = 0.008
    assert cosine.alpha(0.5).item() == pytest.approx(
        math.cos(math.pi / 2 * 0.508 / 1.008) / math.cos(math.pi / 2 * s / 1.008)
    )
    assert cosine.alpha(0.0).item() == pytest.approx(1.0) and cosine.sigma(0.0).item() == pytest.approx(0.0, abs=1e-7)
    linear = GaussianPath(kind="vp_linear")
    # the continuous VP schedule with beta in [0.1, 20] matches DDPM's discrete prod(1 - beta_i) closely
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    discrete = torch.cumprod(1 - betas, 0)
    continuous = linear.alpha(torch.arange(1, 1001, dtype=torch.float64) / 1000) ** 2
    assert (continuous - discrete).abs().max() < 1e-3
    ve = GaussianPath(kind="ve")
    assert ve.sigma(0.0).item() == pytest.approx(0.01) and ve.sigma(1.0).item() == pytest.approx(50.0)
    edm = GaussianPath(kind="edm")
    assert (edm.t_min, edm.t_max) == (0.0, 80.0) and edm.sigma(3.5).item() == 3.5 and edm.alpha(3.5).item() == 1.0
    fm = GaussianPath(kind="linear_fm")
    assert fm.alpha(0.25).item() == 0.75 and fm.sigma(0.25).item() == 0.25
    assert fm.lambda_(0.25).item() == pytest.approx(math.log(3.0))


@pytest.mark.parametrize("kind", PATH_KINDS)
def test_snr_strictly_decreasing_and_sigma_positive(kind: str) -> None:
    path = GaussianPath(kind=kind)
    t = torch.linspace(path.t_min, path.t_max, 2001, dtype=torch.float64)[1:]
    assert bool((path.sigma(t) > 0).all())
    snr = path.alpha(t) / path.sigma(t)
    assert bool((snr[1:] < snr[:-1]).all())
    assert bool((path.alpha(t) >= 0).all())


@pytest.mark.parametrize("kind", PATH_KINDS)
def test_derivatives_match_finite_differences(kind: str) -> None:
    path = GaussianPath(kind=kind)
    t = _times(path)
    h = 1e-6 * (path.t_max - path.t_min)
    torch.testing.assert_close(path.d_alpha(t), (path.alpha(t + h) - path.alpha(t - h)) / (2 * h), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(path.d_sigma(t), (path.sigma(t + h) - path.sigma(t - h)) / (2 * h), rtol=1e-6, atol=1e-6)


def test_coefficients_in_float64_cast_at_multiply() -> None:
    """alpha/sigma are float64 whatever t's dtype; sample() keeps x0's dtype."""
    path = GaussianPath(kind="vp_cosine")
    assert path.alpha(torch.tensor([0.3], dtype=torch.float32)).dtype == torch.float64
    x0 = torch.ones(4, 2, dtype=torch.float32)
    assert path.sample(x0, torch.full((4,), 0.3), torch.zeros_like(x0)).dtype == torch.float32


@pytest.mark.parametrize("kind", PATH_KINDS)
def test_points_are_the_tensor_values(kind: str) -> None:
    """points() gives, as Python floats, exactly what alpha/sigma/d_alpha/d_sigma give at each time; and a
    conversion at a PathPoint or a number is bit-identical to one at the 0-d tensor time."""
    path = GaussianPath(kind=kind)
    times = [path.t_min, *_times(path).tolist(), path.t_max]
    points = path.points(times)
    assert [point.t for point in points] == times and path.point(times[3]) == points[3]
    for point in points:
        tensor_time = torch.tensor(point.t, dtype=torch.float64)
        for name in ("alpha", "sigma", "d_alpha", "d_sigma"):
            value, expected = getattr(point, name), getattr(path, name)(tensor_time).item()
            assert value == expected or (math.isnan(value) and math.isnan(expected)), (name, point.t)
    generator = torch.Generator().manual_seed(0)
    x_t, output = torch.randn(2, 4, 3, generator=generator, dtype=torch.float32)
    for point in points[1:-1]:
        for source in PREDICTIONS:
            at_tensor = path.to_v(output, x_t, torch.tensor(point.t, dtype=torch.float64), source)
            assert torch.equal(path.to_v(output, x_t, point, source), at_tensor)
            assert torch.equal(path.to_v(output, x_t, point.t, source), at_tensor)
