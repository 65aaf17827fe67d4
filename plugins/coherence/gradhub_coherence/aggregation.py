"""Robust means of per-example gradients: the winsorized mean and the median of means.

Paper: Chatterjee & Zielinski, "On the Generalization Mystery in Deep Learning", 2022,
arXiv 2203.10036, Sec. 9 (modifications of GD that suppress weak gradient directions;
winsorized GD from Chatterjee, "Coherent Gradients", ICLR 2020, and M3 / RM3 from
Zielinski et al., "Weak and Strong Gradient Directions", 2020). No official code exists.

Both functions are pure, vectorised along the example dimension (``dim 0``) and every
coordinate at once: no Python loop over examples or coordinates.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["median", "median_of_means", "winsorized_mean"]


def winsorized_mean(samples: Tensor, c: int) -> Tensor:
    """Coordinate-wise winsorized mean of ``samples`` (shape ``(m, ...)``) over dim 0.

    For each coordinate k the values ``v_(1) <= ... <= v_(m)`` are clamped to
    ``[v_(c+1), v_(m-c)]`` and averaged, i.e. the c smallest and c largest are replaced
    by the (c+1)-th smallest and largest. ``c = 0`` is the plain mean (computed as
    ``samples.mean(0)``, bit for bit what averaging the gradients gives). Requires
    ``m > 2c``. One sort along dim 0 (O(m log m) per coordinate); the clamped mean is
    ``(c * v_(c+1) + sum_{j=c+1}^{m-c} v_(j) + c * v_(m-c)) / m``.
    """
    m = samples.shape[0]
    if c == 0:
        return samples.mean(0)
    ordered = samples.sort(dim=0).values
    low, high = ordered[c], ordered[m - 1 - c]
    middle = ordered[c : m - c].sum(0)
    return (middle + c * (low + high)) / m


def median(values: Tensor) -> Tensor:
    """Coordinate-wise median over dim 0; for an even count, the mean of the two middle values."""
    n = values.shape[0]
    if n == 1:
        return values[0]
    ordered = values.sort(dim=0).values
    if n % 2:
        return ordered[n // 2]
    return (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def group_means(samples: Tensor, n_groups: int) -> Tensor:
    """Means of ``n_groups`` contiguous groups of ``samples`` (sizes differ by at most one).

    Example i goes to group ``floor(i * n_groups / m)`` (the split of ``torch.tensor_split``);
    the means are one matrix product with the ``(n_groups, m)`` averaging matrix, so the
    result is deterministic on every device (no atomics).
    """
    m = samples.shape[0]
    if m % n_groups == 0:
        return samples.reshape(n_groups, m // n_groups, *samples.shape[1:]).mean(1)
    group = torch.arange(m, device=samples.device) * n_groups // m
    assignment = (group.unsqueeze(0) == torch.arange(n_groups, device=samples.device).unsqueeze(1)).to(samples.dtype)
    weights = assignment / assignment.sum(1, keepdim=True)
    return (weights @ samples.reshape(m, -1)).reshape(n_groups, *samples.shape[1:])


def median_of_means(samples: Tensor, n_groups: int = 3) -> Tensor:
    """M3: the coordinate-wise median of the ``n_groups`` group means of ``samples`` (dim 0)."""
    return median(group_means(samples, n_groups))
