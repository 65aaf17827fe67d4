"""The coupled-constraint toy bilevel problem with a closed-form solution (the claim's and the example's).

Per coordinate i = 1..n, with a, b, c ~ N(0, I_n):

    lower level:  y*(x) = argmin_y 0.5 ||y - a||^2  s.t.  g(x, y) = y - x <= 0   ->   y*(x) = min(a, x)
    upper level:  min_x F(x, y*(x)),  F(x, y) = 0.5 ||x - b||^2 + 0.5 ||y - c||^2

The constraint couples x and y, so C = {(x, y): y <= x} and its projection is per coordinate: where
y_i > x_i both move to (x_i + y_i) / 2 (:func:`project_below_diagonal`). The solution, per coordinate,
compares the two pieces of x -> F(x, y*(x)): x >= a (y = a, best x = max(b, a)) and x <= a (y = x,
best x = min((b + c) / 2, a)), and keeps the lower F. Where c_i < a_i the reduced objective has a
concave kink at x = a_i and can have a second local minimiser (the problem is nonconvex in x there):
a first-order method may end at it (README, "Claim check").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["CoupledToy", "coupled_toy", "project_below_diagonal"]


def project_below_diagonal(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """The Euclidean projection onto C = {(x, y): y <= x} (coordinatewise; any batch shape)."""
    middle = (x + y) / 2
    above = y > x
    return torch.where(above, middle, x), torch.where(above, middle, y)


@dataclass
class CoupledToy:
    """The toy's data (rows: one problem per seed) and its functions, projection and solution."""

    a: Tensor
    b: Tensor
    c: Tensor

    def F(self, x: Tensor, y: Tensor) -> Tensor:
        """Upper level 0.5 ||x - b||^2 + 0.5 ||y - c||^2, one value per row."""
        return 0.5 * (x - self.b).square().sum(-1) + 0.5 * (y - self.c).square().sum(-1)

    def f(self, x: Tensor, y: Tensor) -> Tensor:
        """Lower level 0.5 ||y - a||^2, one value per row."""
        return 0.5 * (y - self.a).square().sum(-1)

    def g(self, x: Tensor, y: Tensor) -> Tensor:
        """Lower-level constraint y - x <= 0 (n constraints per row)."""
        return y - x

    proj_C = staticmethod(project_below_diagonal)

    def solution(self) -> tuple[Tensor, Tensor]:
        """(x*, y*): the global bilevel solution, per coordinate the better of the two pieces."""
        a, b, c = self.a, self.b, self.c
        x_right, y_right = torch.maximum(b, a), a
        x_left = torch.minimum((b + c) / 2, a)
        right = 0.5 * (x_right - b).square() + 0.5 * (y_right - c).square()
        left = 0.5 * (x_left - b).square() + 0.5 * (x_left - c).square()
        keep_right = right <= left
        return torch.where(keep_right, x_right, x_left), torch.where(keep_right, y_right, x_left)

    def naive(self) -> tuple[Tensor, Tensor]:
        """The answer that ignores the coupling: y = argmin f = a, x = argmin_x F = b."""
        return self.b.clone(), self.a.clone()


def coupled_toy(
    seeds: Sequence[int] = (1, 2, 3), n: int = 10, *, device: Any = "cpu", dtype: torch.dtype = torch.float64
) -> CoupledToy:
    """The toy, one row per seed: a, b, c drawn in turn (n each) from N(0, I_n), float64 on the host, then moved."""
    rows = []
    for seed in seeds:
        generator = torch.Generator(device="cpu").manual_seed(seed)
        # three draws of n, not one of 3n: torch draws n >= 16 normals in a different order
        draws = [torch.randn(n, generator=generator, dtype=torch.float64, device="cpu") for _ in "abc"]
        rows.append(torch.stack(draws))
    data = torch.stack(rows, dim=1).to(device=device, dtype=dtype)  # (3, seeds, n)
    return CoupledToy(a=data[0], b=data[1], c=data[2])
