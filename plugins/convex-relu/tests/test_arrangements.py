"""Hyperplane arrangements: unique {0, 1} patterns, supplied gates included, exact enumeration counts every cell."""

from __future__ import annotations

import math

import torch
from convex_relu_testkit import D, regression
from gradhub_convex_relu.arrangements import augment, enumerate_gates, patterns_of, sample_arrangements


def _cells(n: int, d: int) -> int:
    """Regions of a central arrangement of n hyperplanes in general position in R^d."""
    return 2 * sum(math.comb(n - 1, k) for k in range(d))


def test_sampled_patterns_are_unique_binary_and_nonzero():
    X, _ = regression(30)
    patterns, gates = sample_arrangements(X, 200, seed=3, include_bias=True)
    assert patterns.dtype == D and set(patterns.unique().tolist()) <= {0.0, 1.0}
    assert torch.unique(patterns.T, dim=0).shape[0] == patterns.shape[1]
    assert bool(patterns.any(dim=0).all())
    torch.testing.assert_close(patterns, patterns_of(augment(X, True), gates), rtol=0, atol=0)
    again = sample_arrangements(X, 200, seed=3, include_bias=True)
    assert torch.equal(again.patterns, patterns) and torch.equal(again.gates, gates)


def test_supplied_gates_come_first():
    X, _ = regression(30)
    h = torch.tensor([[0.3, -1.0], [1.0, 0.2], [0.1, 0.5]], dtype=D)
    patterns, gates = sample_arrangements(X, 50, seed=0, include_bias=True, gates=h)
    expected = patterns_of(augment(X, True), h)
    torch.testing.assert_close(patterns[:, :2], expected, rtol=0, atol=0)
    torch.testing.assert_close(gates[:, :2], h, rtol=0, atol=0)


def test_exact_enumeration_finds_every_cell():
    """n = 12 points with a bias column in general position: 2 sum_{k<3} C(11, k) = 134 cells, less the zero one."""
    X, _ = regression(12, seed=7)
    exact = sample_arrangements(X, 1, include_bias=True, exact=True)
    assert exact.patterns.shape[1] == _cells(12, 3) - 1
    sampled = sample_arrangements(X, 2000, seed=0, include_bias=True)
    found = {tuple(column.tolist()) for column in exact.patterns.T}
    assert {tuple(column.tolist()) for column in sampled.patterns.T} <= found


def test_wrong_variant_rays_without_perturbation_miss_cells():
    """The d - 1 intersection rays alone (no perturbation into the cells around them) find too few patterns."""
    X, _ = regression(12, seed=7)
    data = augment(X, True)
    rows = torch.combinations(torch.arange(12), r=2)
    rays = torch.linalg.svd(data[rows], full_matrices=True).Vh[:, -1, :]
    patterns = patterns_of(data, torch.cat([rays, -rays]).T)
    found = torch.unique(patterns.T[patterns.T.any(dim=1)], dim=0).shape[0]
    assert found < _cells(12, 3) - 1
    assert enumerate_gates("t", data).shape[1] > found
