"""gns_radius: the empirical radius against a closed form."""

from __future__ import annotations

import math

import torch
from gradhub_gns.radius import gns_radius, gns_radius_at
from torch import nn

D = torch.float64


def _half_square(x):
    return 0.5 * x.square().sum()


def test_exact_hessian_of_a_quadratic_gives_the_largest_radius():
    x = torch.tensor([1.0, -2.0, 0.5], dtype=D)
    result = gns_radius_at(_half_square, x, r_max=100.0, generator=torch.Generator().manual_seed(0))
    assert float(result.radius) == 100.0
    assert float(result.relative_error.max()) < 1e-12


def test_scaled_hessian_radius_matches_closed_form():
    # f = ||x||^2 / 2, H = c I: the error is r |1 - c| / ||x|| in every direction.
    x = torch.tensor([3.0, 4.0], dtype=D)  # ||x|| = 5
    c, rel_tol = 0.5, 0.5
    result = gns_radius_at(
        _half_square, x, c * torch.eye(2, dtype=D), rel_tol=rel_tol, r_min=1e-3, r_max=1e3, n_grid=61
    )
    threshold = rel_tol * 5.0 / abs(1 - c)  # = 5
    below = result.radii[result.radii <= threshold * (1 + 1e-12)]
    assert math.isclose(float(result.radius), float(below.max()), rel_tol=1e-12)


def test_probe_is_seeded_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)).double()
    before = [p.detach().clone() for p in model.parameters()]
    inputs = torch.randn(5, 2, dtype=D)

    def loss(prediction):
        return (prediction - 1).square().mean()

    first = gns_radius(model, loss, inputs, generator=torch.Generator().manual_seed(1), n_dirs=3)
    second = gns_radius(model, loss, inputs, generator=torch.Generator().manual_seed(1), n_dirs=3)
    assert torch.equal(first.relative_error, second.relative_error)
    assert 0 < float(first.radius) <= 1e3
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_runs_on_the_device_of_x_without_a_host_read():
    """On the meta device (a stand-in for an accelerator: nothing there can be read back, and a host tensor
    mixed in is an error) the directions, the grid and the result live on x's device."""
    x = torch.tensor([1.0, -2.0, 0.5], dtype=D, device="meta")
    result = gns_radius_at(_half_square, x, n_dirs=3, n_grid=7)
    assert {t.device.type for t in (result.radius, result.radii, result.relative_error)} == {"meta"}
    assert result.relative_error.shape == (4, 7)
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)).to(device="meta", dtype=D)
    probe = gns_radius(model, lambda p: p.square().mean(), torch.zeros(5, 2, dtype=D, device="meta"), n_dirs=2)
    assert probe.radius.device.type == "meta"


def test_radii_are_the_float64_log_grid():
    x = torch.tensor([3.0, 4.0], dtype=D)
    result = gns_radius_at(_half_square, x, r_min=1e-3, r_max=10.0, n_grid=9)
    assert torch.equal(result.radii, torch.logspace(-3, 1, 9, dtype=D))
    assert result.radii[0].item() == 1e-3 and result.radii[-1].item() == 10.0
