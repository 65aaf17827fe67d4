"""Shared by the test modules: direct, unvectorised formulas to compare the implementation with, and a tiny
problem (a feature extractor with BatchNorm and a linear classifier, in float64)."""

from __future__ import annotations

import torch
from torch import nn


def _ce(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """CE(p -> q) = -sum_c p_c log q_c, written out with exp and log (no log_softmax)."""
    p = p_logits.exp() / p_logits.exp().sum(1, keepdim=True)
    q = q_logits.exp() / q_logits.exp().sum(1, keepdim=True)
    return -(p * q.log()).sum(1)


def closed_form(z: torch.Tensor, z_teacher: torch.Tensor, z_aug: torch.Tensor | None = None) -> torch.Tensor:
    if z_aug is None:
        return 0.5 * (_ce(z_teacher, z) + _ce(z, z_teacher))
    return 0.25 * (_ce(z_teacher, z) + _ce(z, z_teacher) + _ce(z_teacher, z_aug) + _ce(z_aug, z_teacher))


def reference_contrastive(embeddings: torch.Tensor, temperature: float, mode: str) -> torch.Tensor:
    """SupCon without labels, one anchor at a time: -1/|P| sum_p log exp(s_ap / t) / sum_{k != a} exp(s_ak / t)."""
    count, views, _ = embeddings.shape
    unit = embeddings / embeddings.norm(dim=-1, keepdim=True)
    everything = [(v, n) for v in range(views) for n in range(count)]
    anchors = everything if mode == "all" else [(0, n) for n in range(count)]
    losses = []
    for v, n in anchors:
        anchor = unit[n, v]
        denominator = sum(torch.exp(anchor @ unit[k, w] / temperature) for w, k in everything if (w, k) != (v, n))
        positives = [
            torch.log(torch.exp(anchor @ unit[n, w] / temperature) / denominator) for w in range(views) if w != v
        ]
        losses.append(-sum(positives) / len(positives))
    return torch.stack(losses).mean()


CLASSES, FEATURES, WIDTH = 3, 5, 6


def network(seed: int = 0) -> nn.Sequential:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Sequential(nn.Linear(FEATURES, WIDTH), nn.BatchNorm1d(WIDTH), nn.ReLU()), nn.Linear(WIDTH, CLASSES)
        ).double()


def data(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(count, FEATURES, generator=generator, dtype=torch.float64), torch.arange(count) % CLASSES


def source(batches: int = 2, size: int = 12) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [data(size, 100 + b) for b in range(batches)]
