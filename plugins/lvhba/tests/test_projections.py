"""The ready-made projections are Euclidean projections: idempotent, non-expansive, identity on the set,
and P(v) is the closest point (<v - P(v), w - P(v)> <= 0 for every w in the set). A map that is not a
projection fails these checks."""

from __future__ import annotations

import pytest
import torch
from gradhub_lvhba.problems import project_below_diagonal
from gradhub_lvhba.projections import ball, box, product

from gradhub import UnsupportedInputError

D = torch.float64


def _points(seed: int, *shape: int, scale: float = 3.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=generator, dtype=D)


def check_projection(project, points: torch.Tensor, members: torch.Tensor) -> None:
    """Assert the projection properties on batches of points (rows) and of members of the set (rows)."""
    image = project(points)
    assert torch.allclose(project(image), image, atol=1e-12, rtol=0), "not idempotent"
    assert torch.allclose(project(members), members, atol=1e-12, rtol=0), "moves points of the set"
    # non-expansive: ||P(u) - P(v)|| <= ||u - v|| over all pairs
    distance_in = torch.cdist(points, points, compute_mode="donot_use_mm_for_euclid_dist")
    distance_out = torch.cdist(image, image, compute_mode="donot_use_mm_for_euclid_dist")
    assert (distance_out <= distance_in + 1e-12).all(), "expansive"
    # the obtuse-angle criterion against every member: <v - P(v), w - P(v)> <= 0
    inner = torch.einsum("id,ijd->ij", points - image, members.unsqueeze(0) - image.unsqueeze(1))
    assert (inner <= 1e-10).all(), "not the closest point"


def test_box_is_a_projection():
    lower, upper = torch.tensor([-1.0, 0.0, -2.0], dtype=D), torch.tensor([1.0, 0.5, 3.0], dtype=D)
    project = box(lower, upper)
    members = lower + (upper - lower) * torch.rand(40, 3, generator=torch.Generator().manual_seed(1), dtype=D)
    check_projection(project, _points(0, 60, 3), members)
    check_projection(box(0.0, None), _points(2, 30, 4), _points(3, 30, 4).abs())
    check_projection(box(None, 1.0), _points(4, 30, 4), 1 - _points(5, 30, 4).abs())


def test_ball_is_a_projection_row_by_row():
    center = torch.tensor([0.5, -1.0, 2.0], dtype=D)
    project = ball(1.5, center)
    directions = _points(1, 50, 3)
    members = center + directions / directions.norm(dim=-1, keepdim=True) * 1.5 * torch.rand(
        50, 1, generator=torch.Generator().manual_seed(2), dtype=D
    )
    check_projection(project, _points(0, 60, 3), members)
    # a batch of restarts (B, d): each row is projected on its own
    rows = _points(3, 5, 3)
    assert torch.equal(project(rows), torch.stack([project(row) for row in rows]))
    assert torch.equal(ball(0.0, center)(rows), center.expand(5, 3))
    assert torch.equal(ball(2.0)(torch.zeros(3, dtype=D)), torch.zeros(3, dtype=D))


def test_the_toy_projection_onto_y_below_x_is_a_projection():
    def joint(v):  # (x_i, y_i) pairs as 2-vectors
        x, y = project_below_diagonal(v[..., 0], v[..., 1])
        return torch.stack([x, y], dim=-1)

    points = _points(0, 80, 2)
    members = points.clone()
    members[:, 1] = torch.minimum(members[:, 0], members[:, 1])
    check_projection(joint, points, members)


def test_product_projects_each_factor():
    project = product(box(0.0, 1.0), ball(1.0))
    x, y = _points(0, 4), _points(1, 3)
    px, py = project(x, y)
    assert torch.equal(px, box(0.0, 1.0)(x)) and torch.equal(py, ball(1.0)(y))
    same_x, same_y = product()(x, y)
    assert same_x is x and same_y is y


def test_a_radial_map_onto_the_sphere_is_not_a_projection():
    """Wrong variant: v -> r v / ||v|| (also for points inside) is idempotent but not a projection."""

    def onto_sphere(v):
        return 1.5 * v / v.norm(dim=-1, keepdim=True)

    members = _points(1, 30, 3, scale=0.3)  # inside the ball of radius 1.5
    members = members[members.norm(dim=-1) < 1.5]
    with pytest.raises(AssertionError, match="moves points of the set"):
        check_projection(onto_sphere, _points(0, 30, 3), members)


def test_a_clamp_that_overshoots_is_not_a_projection():
    """Wrong variant: clamping to the box and then scaling by 1.1 is expansive (and not idempotent)."""
    with pytest.raises(AssertionError):
        check_projection(lambda v: 1.1 * v.clamp(-1, 1), _points(0, 30, 3), torch.zeros(1, 3, dtype=D))


def test_empty_sets_are_errors():
    with pytest.raises(UnsupportedInputError, match=r"lv_hba: unsupported box.*lower > upper in 1 of 2.*infeasible"):
        box(torch.tensor([0.0, 2.0], dtype=D), torch.tensor([1.0, 1.0], dtype=D))
    with pytest.raises(UnsupportedInputError, match="lower > upper in 1 of 1"):
        box(1.0, 0.0)
    with pytest.raises(UnsupportedInputError, match=r"ball radius.*-1"):
        ball(-1.0)
    with pytest.raises(UnsupportedInputError, match="box lower"):
        box(float("nan"), 1.0)
    with pytest.raises(UnsupportedInputError, match="box upper"):
        box(0.0, "1")
