"""``gns_radius``: an empirical stand-in for the paper's gradient-normalised smoothness gamma(x).

Paper: "Gradient-Normalized Smoothness for Optimization with Approximate Hessians",
Andrei Semenov, Martin Jaggi, Nikita Doikov, 2025 (ICLR 2026), arXiv:2506.13710.
Official code: https://github.com/epfml/grad-norm-smooth (it has no such probe).

The paper's gamma(x) is (Definition 1) the largest radius r for which the first-order model of the
gradient, grad f(x) + H(x)(y - x), stays within a fraction of ||grad f(x)||_* for ||y - x|| <= r;
its exact accuracy constant is a free choice of the analysis. This probe measures it on a
grid: for sampled unit directions u (``n_dirs`` random ones from ``generator`` plus
-grad f/||grad f||) and radii r on a log grid [r_min, r_max], it evaluates

    ||grad f(x + r u) - grad f(x) - r H u|| <= rel_tol * ||grad f(x)||          (Euclidean, B = I)

and returns the largest grid radius up to which the test holds for every direction and every
smaller radius. All (direction, radius) gradients are one ``torch.func.vmap`` call -- no loop over
directions or radii. Diagnostic only: it is a gradhub addition, not in the paper or its code.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import validated
from gradhub.kinds.inputs import require_generator, require_tensor
from gradhub_gns import GNS_RADIUS


@dataclass
class GNSRadius:
    radius: torch.Tensor
    """The largest grid radius that passes the test (0 if even ``r_min`` fails), 0-d."""
    gradient_norm: torch.Tensor
    """||grad f(x)||, 0-d."""
    relative_error: torch.Tensor
    """(directions, radii): ||grad f(x + r u) - grad f(x) - r H u|| / ||grad f(x)||."""
    radii: torch.Tensor
    """The log grid."""


@validated(GNS_RADIUS)
def gns_radius_at(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    H: torch.Tensor | None = None,
    *,
    rel_tol: float,
    n_dirs: int,
    r_min: float,
    r_max: float,
    n_grid: int,
    generator: torch.Generator | None = None,
) -> GNSRadius:
    """The empirical radius of ``fn`` at the vector ``x`` for the (approximate) Hessian ``H`` (default exact)."""
    require_tensor(GNS_RADIUS.name, "x", x, dim=1)
    require_generator(GNS_RADIUS.name, generator, x, "x")
    x = x.detach()
    d = x.numel()
    gradient_of = torch.func.grad(lambda point: fn(point).reshape(()))
    gradient = gradient_of(x)
    if H is None:
        H = torch.func.hessian(lambda point: fn(point).reshape(()))(x)
    if not isinstance(H, torch.Tensor) or H.shape != (d, d):
        shown = tuple(H.shape) if isinstance(H, torch.Tensor) else type(H).__name__
        raise UnsupportedInputError(GNS_RADIUS.name, "H", shown, f"H must be a ({d}, {d}) tensor")
    H = H.detach().to(x.dtype)
    norm = torch.linalg.vector_norm(gradient)
    random = torch.randn(n_dirs, d, generator=generator, dtype=torch.float64, device=x.device).to(x.dtype)
    directions = torch.cat([random, -gradient.unsqueeze(0)])
    directions = directions / torch.linalg.vector_norm(directions, dim=1, keepdim=True).clamp_min(1e-300)
    radii = torch.logspace(math.log10(r_min), math.log10(r_max), n_grid, dtype=torch.float64, device=x.device)
    radii = radii.to(x.dtype)
    steps = radii.view(1, -1, 1) * directions.unsqueeze(1)  # (directions, radii, d)
    moved = torch.func.vmap(gradient_of)((x + steps).reshape(-1, d)).reshape(steps.shape)
    error = torch.linalg.vector_norm(moved - gradient - steps @ H.mT, dim=-1) / norm.clamp_min(1e-300)
    passing = (error <= rel_tol).all(dim=0).to(torch.int64).cumprod(dim=0)  # every smaller radius passes too
    count = passing.sum()
    largest = radii.index_select(0, (count - 1).clamp_min(0).reshape(1)).reshape(())  # no read-back of count
    radius = torch.where(count > 0, largest, torch.zeros((), dtype=x.dtype, device=x.device))
    return GNSRadius(radius=radius, gradient_norm=norm, relative_error=error, radii=radii)


@validated(GNS_RADIUS)
def gns_radius(
    model: nn.Module,
    loss: Callable[[torch.Tensor], torch.Tensor],
    *inputs: torch.Tensor,
    generator: torch.Generator | None = None,
    rel_tol: float,
    n_dirs: int,
    r_min: float,
    r_max: float,
    n_grid: int,
) -> GNSRadius:
    """The empirical radius of ``theta -> loss(model_theta(*inputs))`` at the model's current parameters.

    The model is called functionally (``torch.func.functional_call``) at perturbed parameters;
    it is never modified. Its parameters are flattened into one vector (small models only: the
    exact Hessian is d x d).
    """
    if not isinstance(model, nn.Module):
        raise UnsupportedInputError(GNS_RADIUS.name, "model", type(model).__name__, "model must be a torch.nn.Module")
    names = [name for name, parameter in model.named_parameters() if parameter.requires_grad]
    if not names:
        raise UnsupportedInputError(GNS_RADIUS.name, "model", "no trainable parameters", "the model needs parameters")
    parameters = dict(model.named_parameters())
    shapes = [parameters[name].shape for name in names]
    sizes = [parameters[name].numel() for name in names]
    flat = torch.cat([parameters[name].detach().reshape(-1) for name in names])
    buffers = dict(model.named_buffers())

    def objective(theta: torch.Tensor) -> torch.Tensor:
        pieces = theta.split(sizes)
        values = {name: piece.view(shape) for name, piece, shape in zip(names, pieces, shapes)}
        return loss(torch.func.functional_call(model, {**values, **buffers}, inputs))

    return gns_radius_at(
        objective,
        flat,
        rel_tol=rel_tol,
        n_dirs=n_dirs,
        r_min=r_min,
        r_max=r_max,
        n_grid=n_grid,
        generator=generator,
    )


# The public names, from the objects themselves: each method's name is written once, in its spec.
__all__ = [
    exported.__name__
    for exported in (
        GNSRadius,
        gns_radius,
        gns_radius_at,
    )
]
