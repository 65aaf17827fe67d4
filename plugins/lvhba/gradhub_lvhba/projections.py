"""Ready-made Euclidean projections for LV-HBA's sets X, Y and C = X x Y.

LV-HBA (Yao et al., ICLR 2024, Algorithm 1) projects theta onto Y, lambda and z onto [0, r]^m
and (x, y) onto C = {(x, y): x in X, y in Y, g(x, y) <= 0}. The projection onto C depends on
the problem (the user supplies ``proj_C``); this module gives the common building blocks:

* :func:`box` — onto {v: lower <= v <= upper} (elementwise clamp); either bound may be None;
* :func:`ball` — onto {v: ||v - center|| <= radius}, the norm over the last dimension, so a
  batch of restarts (B, d) is projected row by row;
* :func:`product` — ``proj_C(x, y) = (proj_X(x), proj_Y(y))`` for C = X x Y (no coupling).

Each returns a callable on tensors that builds new tensors (its input is never changed).
An empty set is an error at construction: a box with some lower > upper, a ball with a negative
radius.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from gradhub.errors import UnsupportedInputError
from gradhub_lvhba import LV_HBA

Projection = Callable[[torch.Tensor], torch.Tensor]
PairProjection = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

__all__ = ["PairProjection", "Projection", "ball", "box", "identity", "product"]


def identity(v: torch.Tensor) -> torch.Tensor:
    """The projection onto the whole space (no constraint)."""
    return v


def _bound(name: str, value: Any) -> torch.Tensor | float | None:
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point():
            raise UnsupportedInputError(LV_HBA.name, f"box {name} dtype", value.dtype, f"{name} must be floating point")
        if bool(torch.isnan(value).any()):
            raise UnsupportedInputError(LV_HBA.name, f"box {name}", "a tensor with NaN", f"{name} must not be NaN")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UnsupportedInputError(
            LV_HBA.name, f"box {name}", type(value).__name__, f"{name} must be a number, a tensor or None"
        )
    if value != value:  # NaN
        raise UnsupportedInputError(LV_HBA.name, f"box {name}", value, f"{name} must not be NaN")
    return float(value)


def box(lower: torch.Tensor | float | None = None, upper: torch.Tensor | float | None = None) -> Projection:
    """The projection onto the box {v: lower <= v <= upper} (bounds broadcast against v; None: unbounded).

    Raises :class:`~gradhub.UnsupportedInputError` when the box is empty (lower > upper somewhere).
    """
    low, high = _bound("lower", lower), _bound("upper", upper)
    if low is not None and high is not None:
        if isinstance(low, torch.Tensor) or isinstance(high, torch.Tensor):
            empty = (low - high) > 0  # broadcast like the clamp below
            count, total = int(empty.sum()), empty.numel()
        else:
            count, total = int(low > high), 1
        if count:
            raise UnsupportedInputError(
                LV_HBA.name,
                "box",
                f"lower > upper in {count} of {total} entries",
                "the box must not be empty (lower <= upper everywhere): the constraint set is infeasible",
            )

    def project(v: torch.Tensor) -> torch.Tensor:
        if low is not None:
            v = torch.maximum(v, low.to(v)) if isinstance(low, torch.Tensor) else v.clamp_min(low)
        if high is not None:
            v = torch.minimum(v, high.to(v)) if isinstance(high, torch.Tensor) else v.clamp_max(high)
        return v

    return project


def ball(radius: float, center: torch.Tensor | float | None = None) -> Projection:
    """The projection onto {v: ||v - center||_2 <= radius}, the norm taken over the last dimension.

    A point inside is returned unchanged; one outside moves to ``center + radius (v - center) / ||v - center||``.
    ``radius = 0`` is the single point ``center``; a negative radius (an empty ball) raises
    :class:`~gradhub.UnsupportedInputError`.
    """
    if isinstance(radius, bool) or not isinstance(radius, int | float) or not radius >= 0:
        raise UnsupportedInputError(
            LV_HBA.name, "ball radius", radius, "radius must be a number >= 0 (a negative radius is an empty ball)"
        )
    radius = float(radius)
    if isinstance(center, torch.Tensor) and bool((~torch.isfinite(center)).any()):
        raise UnsupportedInputError(LV_HBA.name, "ball center", "a non-finite tensor", "center must be finite")

    def project(v: torch.Tensor) -> torch.Tensor:
        offset = v if center is None else v - center
        norm = torch.linalg.vector_norm(offset, dim=-1, keepdim=True)
        # scale = min(1, radius / ||offset||), with 1 at the centre itself (no 0 / 0)
        scale = torch.where(norm > radius, radius / torch.where(norm > 0, norm, 1), 1)
        moved = offset * scale
        return moved if center is None else moved + center

    return project


def product(proj_X: Projection | None = None, proj_Y: Projection | None = None) -> PairProjection:
    """``proj_C(x, y) = (proj_X(x), proj_Y(y))``: the projection onto the product C = X x Y (None: the whole space).

    With a coupled lower-level constraint g(x, y) <= 0 this does not enforce it; LV-HBA then keeps
    (x, y) in X x Y only (see the README's "Projections").
    """
    project_x = proj_X if proj_X is not None else identity
    project_y = proj_Y if proj_Y is not None else identity

    def project(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return project_x(x), project_y(y)

    return project
