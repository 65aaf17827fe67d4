"""Hyperplane arrangements: the diagonal patterns D_i = diag(1[X h_i >= 0]) of the convex program.

Paper: "Efficient Global Optimization of Two-layer ReLU Networks: Quadratic-time Algorithms and
Adversarial Training", Yatong Bai, Tanmay Gautam, Somayeh Sojoudi, SIMODS 2023, arXiv:2201.01965
(§2, after Pilanci & Ergen, ICML 2020). No official code was published; the first author's
unofficial cvxpy script (github.com/Bai-YT/Convex-NN-Training, ``generate_D``) samples h ~ N(0, I)
and keeps the unique columns of 1[X h >= 0], as here.

The patterns are a tensor ``patterns`` (n, P) in {0, 1} (X's dtype) with the gate vectors ``gates``
(d, P) that produce them (column i of ``patterns`` is ``1[X gates[:, i] >= 0]``), so a gated-ReLU
predictor can be evaluated on new data. Duplicates are dropped (the first sample of a pattern
keeps its gate) and so is the all-zero pattern: D_i = 0 contributes nothing to the prediction and
its block is zero at every optimum (it only adds to the penalty).

``exact=True`` enumerates every pattern: each cell of the central arrangement of the n hyperplanes
{h : x_k^T h = 0} in R^d touches a ray where d - 1 of them meet; perturbing that ray h0 (both
orientations) by ``delta A^+ s`` for every sign vector s in {-1, +1}^(d-1) (A the d - 1 rows of X
through it) visits every cell around it. With the data in general position (no d rows linearly
dependent) that is every cell, 2 sum_{k<d} C(n-1, k) of them; this is the paper's "exact" formulation,
exponential in d (only for tiny problems: at most ``MAX_CANDIDATES`` candidate gates).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from gradhub.errors import UnsupportedInputError

MAX_CANDIDATES = 4_000_000
"""The most candidate gates ``exact=True`` builds: C(n, d - 1) 2^d of them."""


class Arrangements(NamedTuple):
    """Sampled (or enumerated) arrangements: ``patterns`` (n, P) in {0, 1}, ``gates`` (d, P) with
    ``patterns = 1[X gates >= 0]`` (X with its bias column when one is used)."""

    patterns: Tensor
    gates: Tensor


def augment(X: Tensor, include_bias: bool) -> Tensor:
    """``[X, 1]`` (n, d0 + 1) when ``include_bias``, else ``X``."""
    if not include_bias:
        return X
    return torch.cat([X, X.new_ones(X.shape[0], 1)], dim=1)


def patterns_of(X: Tensor, gates: Tensor) -> Tensor:
    """``1[X h >= 0]`` for every gate column h, as X's dtype (ties count as active, like ReLU's subgradient 1)."""
    return (X @ gates >= 0).to(X.dtype)


def unique_patterns(method: str, X: Tensor, gates: Tensor) -> Arrangements:
    """The distinct, non-zero patterns of ``gates`` on ``X``, each with the first gate that produced it."""
    patterns = patterns_of(X, gates)
    count = patterns.shape[1]
    # torch.unique sorts; the smallest column index per distinct pattern keeps the sampling order.
    _, inverse = torch.unique(patterns.T, dim=0, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), count, dtype=torch.long, device=X.device)
    first = first.scatter_reduce(0, inverse, torch.arange(count, device=X.device), reduce="amin")
    keep = first.sort().values
    keep = keep[patterns[:, keep].any(dim=0)]
    if keep.numel() == 0:
        raise UnsupportedInputError(
            method,
            "arrangements",
            "no non-zero pattern 1[X h >= 0] (every gate leaves every sample inactive)",
            "X must have a sample with x^T h >= 0 for some gate h: use include_bias=True, more arrangements, "
            "or gates that activate some samples",
        )
    return Arrangements(patterns[:, keep], gates[:, keep])


def sample_arrangements(
    X: Tensor,
    P: int,
    seed: int = 0,
    *,
    include_bias: bool = False,
    gates: Tensor | None = None,
    exact: bool = False,
    method: str = "sample_arrangements",
) -> Arrangements:
    """Patterns ``D = 1[X h >= 0]`` of ``P`` gates h ~ N(0, I_d), duplicates and the zero pattern dropped.

    ``X`` (n, d0) is augmented with a column of ones when ``include_bias`` (then d = d0 + 1).
    ``gates`` (d, k): gate vectors whose patterns are included first (each kept unless it repeats an
    earlier one). ``exact``: enumerate every pattern instead of sampling (see the module docstring;
    ``P`` and ``seed`` are then unused). The draws are made on the host with a ``torch.Generator``
    seeded ``seed`` and moved to X's device, so a seed gives the same gates on every device.
    """
    if not isinstance(P, int) or isinstance(P, bool) or P < 1:
        raise UnsupportedInputError(method, "P", repr(P), "the number of sampled arrangements must be an int >= 1")
    data = augment(X, include_bias)
    d = data.shape[1]
    if exact:
        candidates = enumerate_gates(method, data)
    else:
        generator = torch.Generator(device="cpu").manual_seed(seed)
        drawn = torch.randn(d, P, generator=generator, dtype=torch.float64, device="cpu")
        candidates = drawn.to(device=data.device, dtype=data.dtype)
    if gates is not None:
        if not isinstance(gates, Tensor) or gates.dim() != 2 or gates.shape[0] != d:
            shown = tuple(gates.shape) if isinstance(gates, Tensor) else type(gates).__name__
            raise UnsupportedInputError(method, "gates", shown, f"gates must be a (d, k) tensor with d = {d}")
        if gates.device != data.device:
            raise UnsupportedInputError(method, "gates device", gates.device, f"gates must be on X's {data.device}")
        candidates = torch.cat([gates.to(data.dtype), candidates], dim=1)
    return unique_patterns(method, data, candidates)


def enumerate_gates(method: str, X: Tensor) -> Tensor:
    """One gate in every cell of the central arrangement {x_k^T h = 0} (X in general position); (d, K).

    For every set A of d - 1 rows: h0 spans A's null space; each cell around the ray h0 is reached by
    ``+-h0 + delta A^+ s``, s in {-1, +1}^(d-1), with delta small enough that no other row changes sign.
    """
    n, d = X.shape
    if d == 1:
        return torch.tensor([[1.0, -1.0]], dtype=X.dtype, device=X.device)
    subsets = math.comb(n, d - 1)
    if subsets * 2**d > MAX_CANDIDATES:
        raise UnsupportedInputError(
            method,
            "exact",
            f"True with n={n}, d={d}: {subsets * 2**d} candidate gates",
            f"exact enumeration builds C(n, d-1) 2^d <= {MAX_CANDIDATES} candidates; sample instead (exact=False)",
        )
    work = X.to(torch.float64)
    rows = torch.combinations(torch.arange(n, device=X.device), r=d - 1)  # (C, d-1)
    if rows.dim() == 1:  # d - 1 == 1: combinations returns a flat tensor
        rows = rows.unsqueeze(1)
    A = work[rows]  # (C, d-1, d)
    ray = torch.linalg.svd(A, full_matrices=True).Vh[:, -1, :]  # (C, d): A ray = 0
    pseudo = torch.linalg.pinv(A)  # (C, d, d-1)
    corners = torch.cartesian_prod(*[torch.tensor([-1.0, 1.0], dtype=torch.float64, device=X.device)] * (d - 1))
    corners = corners.reshape(-1, d - 1)  # (S, d-1), S = 2^(d-1)
    directions = torch.einsum("cij,sj->csi", pseudo, corners)  # (C, S, d): A direction = s
    # delta: half the smallest |x_k^T h0| / |x_k^T direction| over the rows not in A.
    inside = torch.zeros(rows.shape[0], n, dtype=torch.bool, device=X.device)
    inside.scatter_(1, rows, True)
    level = (work @ ray.T).T.abs()  # (C, n)
    slope = torch.einsum("nd,csd->csn", work, directions).abs()  # (C, S, n)
    ratio = torch.where(slope > 0, level.unsqueeze(1) / slope, math.inf).masked_fill(inside.unsqueeze(1), math.inf)
    delta = 0.5 * ratio.amin(dim=2).clamp(max=1.0)  # (C, S)
    step = delta.unsqueeze(-1) * directions  # (C, S, d)
    candidates = torch.stack([ray.unsqueeze(1) + step, -ray.unsqueeze(1) + step], dim=1)  # (C, 2, S, d)
    return candidates.reshape(-1, d).T.to(X.dtype).contiguous()
