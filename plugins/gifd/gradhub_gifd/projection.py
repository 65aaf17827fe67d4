"""Euclidean projection onto an l1 ball, per sample (Duchi, Shalev-Shwartz, Singer, Chandra, ICML 2008).

GIFD (Fang et al., ICCV 2023, §3.2) keeps each intermediate feature ``h_k`` within an l1 ball
around its starting point: after every Adam step ``h_k <- h_k^0 + P_r(h_k - h_k^0)``, with ``P_r``
the projection onto ``{v : ||v||_1 <= r}`` of every sample (each flattened); official code:
``inversefed/utils.py::project_onto_l1_ball``.

For ``v`` with ``||v||_1 > r`` the projection is ``sign(v) max(|v| - theta, 0)``, where ``theta > 0``
solves ``sum_i max(|v_i| - theta, 0) = r``; sorting ``|v|`` in decreasing order as ``mu`` with
cumulative sums ``c``, ``rho = max{j : mu_j j > c_j - r}`` and ``theta = (c_rho - r) / rho``
(Duchi et al. 2008, Fig. 1). Inside the ball the projection is ``v`` itself. Every sample is
projected at once (one sort over the batch; no loop over samples).

:func:`project_l1_ball` returns the tensor; :func:`l1_ball_projection` is the registered solver
(``gradhub.get(L1_BALL_PROJECTION.name)``): the same projection in the solver kind's frame, which
reports the KKT residual of its answer (:func:`kkt_residual`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from gradhub.errors import UnsupportedInputError
from gradhub.kinds.inputs import require_same_device, require_tensor, require_values
from gradhub.kinds.solver import Iterate, solver
from gradhub_gifd import L1_BALL_PROJECTION


def project_l1_ball(x: torch.Tensor, radius: float | torch.Tensor) -> torch.Tensor:
    """Project every sample ``x[b]`` (flattened) onto ``{v : ||v||_1 <= radius_b}``.

    ``x``: (B, ...), at least 1-D (a 1-D ``x`` is one batch of scalars: use ``x[None]`` for one vector).
    ``radius``: a positive number or a tensor of B positive radii (``inf``: no constraint for that
    sample). Differentiable almost everywhere; inside the ball it is the identity.
    """
    method = L1_BALL_PROJECTION.name
    require_tensor(method, "x", x, min_dim=1)
    radii = _radii(method, radius, x)
    return _project(x, radii)


def _radii(method: str, radius: Any, x: torch.Tensor) -> torch.Tensor:
    """``radius`` as a (B,) tensor in ``x``'s dtype and device, every entry > 0 (checked, one host read)."""
    batch = x.shape[0]
    if isinstance(radius, torch.Tensor):
        require_tensor(method, "radius", radius, dtype="real", dim=(0, 1))
        require_same_device(method, x=x, radius=radius)
        if radius.dim() == 1 and radius.shape[0] != batch:
            raise UnsupportedInputError(
                method, "radius shape", tuple(radius.shape), f"a number or one radius per sample ({batch},)"
            )
        radii = radius.to(x.dtype).expand(batch)
    elif isinstance(radius, (int, float)) and not isinstance(radius, bool):
        radii = torch.full((batch,), float(radius), dtype=x.dtype, device=x.device)
    else:
        raise UnsupportedInputError(method, "radius", type(radius).__name__, "a positive number or a tensor of radii")
    require_values(method, "radius", ~(radii > 0), radii, "every radius must be > 0 (inf: unconstrained)")
    return radii


def _project(x: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """The batched sort-based projection (no checks): Duchi et al. 2008, Fig. 1, one row per sample."""
    rows = x.reshape(x.shape[0], -1)
    magnitude = rows.abs()
    norms = magnitude.sum(1)
    inside = norms <= radii
    # A radius above the norm would give theta < 0; project such rows onto their own sphere instead
    # (theta = 0, the identity), so no inf or NaN arises for inf radii, and select them exactly below.
    target = torch.minimum(radii, norms)
    mu = magnitude.sort(dim=1, descending=True).values
    cumulative = mu.cumsum(1)
    index = torch.arange(1, rows.shape[1] + 1, device=x.device)
    support = mu * index > cumulative - target[:, None]
    rho = (support * index).amax(1).clamp_min(1)
    theta = (cumulative.gather(1, (rho - 1)[:, None]).squeeze(1) - target) / rho
    projected = rows.sign() * (magnitude - theta[:, None]).clamp_min(0)
    return torch.where(inside[:, None], rows, projected).reshape(x.shape)


def kkt_residual(x: torch.Tensor, projection: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """The largest relative violation, over samples, of the optimality conditions of ``p = P_r(x)``.

    With ``u = x - p`` and ``theta = ||u||_inf`` (the multiplier), ``p`` is the projection iff
    ``||p||_1 <= r`` (feasible), ``u_i = theta sign(p_i)`` wherever ``p_i != 0`` (stationary;
    ``|u_i| <= theta`` elsewhere holds by the choice of theta) and ``theta (r - ||p||_1) = 0``
    (complementary). Feasibility is relative to ``r``, the rest to ``||x||_inf``. ``p = x`` scores
    its infeasibility ``(||x||_1 - r)_+ / r``.
    """
    rows, kept = x.reshape(x.shape[0], -1), projection.reshape(x.shape[0], -1)
    tiny = torch.finfo(rows.dtype).tiny
    scale = rows.abs().amax(1).clamp_min(tiny)
    moved = rows - kept
    theta = moved.abs().amax(1)
    norms = kept.abs().sum(1)
    finite = torch.isfinite(radii)
    safe_radii = torch.where(finite, radii, norms.clamp_min(1.0))
    feasibility = torch.where(finite, (norms - safe_radii).clamp_min(0) / safe_radii, torch.zeros_like(norms))
    stationarity = torch.where(kept != 0, (moved - theta[:, None] * kept.sign()).abs(), 0).amax(1) / scale
    slack = torch.where(finite, (safe_radii - norms).clamp_min(0) / safe_radii, torch.ones_like(norms))
    complementary = theta / scale * slack
    return torch.stack([feasibility, stationarity, complementary]).amax()


@solver(L1_BALL_PROJECTION)
def l1_ball_projection(
    x: torch.Tensor, radius: float | torch.Tensor, *, tol: float, max_iter: int
) -> Iterator[Iterate]:
    """Project every sample of ``x`` (B, ...) onto the l1 ball of ``radius`` (a number or B radii).

    A direct method: one iteration is the exact projection. The residual is :func:`kkt_residual`
    (before the iteration: the relative infeasibility of ``x`` itself); ``solution`` is the projection.
    """
    method = L1_BALL_PROJECTION.name
    require_tensor(method, "x", x, min_dim=1)
    radii = _radii(method, radius, x)
    yield Iterate(x.clone(), kkt_residual(x, x, radii))
    projection = _project(x, radii)
    yield Iterate(projection, kkt_residual(x, projection, radii))
