"""The per-sample l1-ball projection against a direct solution, its properties, and a wrong variant."""

from __future__ import annotations

import itertools

import pytest
import torch
from gradhub_gifd.projection import kkt_residual, project_l1_ball

import gradhub
from gradhub.errors import UnsupportedInputError


def brute_force(v: torch.Tensor, radius: float) -> torch.Tensor:
    """The closest point of the l1 ball, by trying every support size k of the soft threshold.

    Every candidate ``sign(v) max(|v| - theta_k, 0)``, ``theta_k = (sum of the k largest |v| - r) / k``, that
    lies in the ball is feasible; the projection is the feasible one closest to ``v`` (or ``v`` inside).
    """
    if v.abs().sum() <= radius:
        return v.clone()
    magnitude = v.abs()
    best, distance = None, float("inf")
    for k in range(1, v.numel() + 1):
        theta = (magnitude.topk(k).values.sum() - radius) / k
        candidate = v.sign() * (magnitude - theta).clamp_min(0)
        if candidate.abs().sum() <= radius * (1 + 1e-12) and (candidate - v).norm() < distance:
            best, distance = candidate, (candidate - v).norm()
    return best


def l2_ball(x: torch.Tensor, radius: float) -> torch.Tensor:
    """A WRONG projection: onto the l2 ball (rescaling), per sample."""
    rows = x.reshape(x.shape[0], -1)
    return (rows * (radius / rows.norm(dim=1, keepdim=True)).clamp(max=1)).reshape(x.shape)


def global_l1(x: torch.Tensor, radius: float) -> torch.Tensor:
    """A WRONG projection: the whole batch as one vector (not per sample)."""
    return project_l1_ball(x.reshape(1, -1), radius).reshape(x.shape)


def samples(seed: int, shape: tuple[int, ...] = (6, 3)) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("seed", range(5))
def test_matches_brute_force_per_sample(seed: int) -> None:
    x = samples(seed, (8, 3)) * torch.linspace(0.1, 3, 8, dtype=torch.float64)[:, None]  # inside and outside
    radius = 1.3
    projected = project_l1_ball(x, radius)
    expected = torch.stack([brute_force(row, radius) for row in x])
    torch.testing.assert_close(projected, expected, rtol=0, atol=1e-12)
    assert bool((projected.abs().sum(1) <= radius + 1e-12).all())


def test_wrong_projections_fail_the_same_check() -> None:
    x, radius = samples(0, (8, 3)) * 2, 1.3
    expected = torch.stack([brute_force(row, radius) for row in x])
    for wrong in (l2_ball, global_l1):
        assert (wrong(x, radius) - expected).abs().max() > 1e-2, wrong.__name__


@pytest.mark.parametrize("seed", range(3))
def test_kkt_conditions_hold(seed: int) -> None:
    """Feasible, stationary (x - p = theta sign(p) on the support, |x - p| <= theta off it), complementary."""
    x, radius = samples(seed, (5, 4, 3)) * 2, 2.0
    p = project_l1_ball(x, radius).reshape(5, -1)
    rows = x.reshape(5, -1)
    u = rows - p
    theta = u.abs().amax(1, keepdim=True)
    support = p != 0
    assert bool((p.abs().sum(1) <= radius + 1e-12).all())
    torch.testing.assert_close(u[support], (theta * p.sign()).expand_as(p)[support], rtol=0, atol=1e-12)
    assert bool((u[~support].abs() <= theta.expand_as(u)[~support] + 1e-12).all())
    torch.testing.assert_close(p.abs().sum(1), torch.full((5,), radius, dtype=torch.float64), rtol=0, atol=1e-12)
    assert kkt_residual(x, p.reshape(x.shape), torch.full((5,), radius, dtype=torch.float64)) < 1e-12
    assert kkt_residual(x, l2_ball(x, radius), torch.full((5,), radius, dtype=torch.float64)) > 1e-2


def test_identity_inside_and_for_infinite_radius() -> None:
    x = samples(1) * 0.01
    assert torch.equal(project_l1_ball(x, 10.0), x)
    big = samples(2) * 100
    radii = torch.tensor([float("inf"), 1.0, float("inf"), 2.0, 3.0, float("inf")], dtype=torch.float64)
    projected = project_l1_ball(big, radii)
    assert torch.equal(projected[radii.isinf()], big[radii.isinf()])
    torch.testing.assert_close(projected[~radii.isinf()].abs().sum(1), radii[~radii.isinf()], rtol=0, atol=1e-10)
    assert torch.isfinite(projected).all()


def test_idempotent_and_non_expansive() -> None:
    x, y, radius = samples(3, (50, 7)) * 2, samples(4, (50, 7)) * 2, 1.5
    px, py = project_l1_ball(x, radius), project_l1_ball(y, radius)
    torch.testing.assert_close(project_l1_ball(px, radius), px, rtol=0, atol=1e-13)
    assert bool(((px - py).norm(dim=1) <= (x - y).norm(dim=1) + 1e-12).all())


def test_batched_equals_one_sample_at_a_time() -> None:
    x = samples(5, (4, 2, 3))
    radii = torch.tensor([0.5, 1.0, 2.0, 4.0], dtype=torch.float64)
    rows = [project_l1_ball(x[i : i + 1], float(radii[i])) for i in range(4)]
    assert torch.equal(project_l1_ball(x, radii), torch.cat(rows))


def test_solver_frame_reports_convergence_and_kkt_residuals() -> None:
    solve = gradhub.get("l1_ball_projection")
    x = samples(6, (3, 4)) * 3
    result = solve(x, 1.0, tol=1e-12)
    assert result.converged and result.iterations == 1
    assert result.residuals[0] > 1 and result.residuals[1] <= 1e-12
    assert torch.equal(result.solution, project_l1_ball(x, 1.0))
    inside = solve(x * 1e-3, 100.0)
    assert inside.converged and inside.iterations == 0 and torch.equal(inside.solution, x * 1e-3)


@pytest.mark.parametrize("radius", [0.0, -1.0, torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0, 1.0], dtype=torch.float64)])
def test_radius_must_be_positive(radius: object) -> None:
    with pytest.raises(UnsupportedInputError, match=r"l1_ball_projection.*radius.*> 0"):
        project_l1_ball(samples(0), radius)


def test_bad_inputs_are_named() -> None:
    with pytest.raises(UnsupportedInputError, match="radius shape"):
        project_l1_ball(samples(0), torch.ones(3, dtype=torch.float64))
    with pytest.raises(UnsupportedInputError, match="x must be a floating-point tensor"):
        project_l1_ball([1.0, 2.0], 1.0)  # type: ignore[arg-type]
    with pytest.raises(UnsupportedInputError, match="radius"):
        project_l1_ball(samples(0), "1")  # type: ignore[arg-type]


def test_three_vectors_exhaustively() -> None:
    """Tiny cases on a grid of 3-vectors, including ties and zeros."""
    values = (-2.0, -0.5, 0.0, 0.5, 2.0)
    x = torch.tensor(list(itertools.product(values, repeat=3)), dtype=torch.float64)
    projected = project_l1_ball(x, 1.0)
    expected = torch.stack([brute_force(row, 1.0) for row in x])
    torch.testing.assert_close(projected, expected, rtol=0, atol=1e-12)
