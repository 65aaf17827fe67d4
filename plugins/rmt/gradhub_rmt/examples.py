"""Seeded examples for the conformance suite: logits for the loss, a tiny test stream for the solver.

Everything is drawn on the host from a seeded generator and moved, so every device sees the same
problem; the modules are built under ``torch.random.fork_rng`` with the seed (the global generator
is left as it was).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from gradhub.kinds.loss import LossExample
from gradhub.kinds.schedule import ScheduleExample
from gradhub.kinds.solver import SolverExample

CLASSES = 3
FEATURES = 4
ANGLE = 0.3
"""Rotation of the test stream from the source (radians)."""


def _randn(shape: tuple[int, ...], generator: torch.Generator, device: Any, dtype: torch.dtype) -> torch.Tensor:
    drawn = torch.randn(shape, generator=generator, dtype=torch.float64, device=generator.device)
    return drawn.to(device=device, dtype=dtype)


def student_teacher_logits(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> LossExample:
    """Student, teacher and augmented-student logits of 5 samples over 4 classes."""
    generator = torch.Generator().manual_seed(seed)
    return LossExample(inputs=tuple(2 * _randn((5, 4), generator, device, dtype) for _ in range(3)))


def official_momentum(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> ScheduleExample:
    """The official teacher momentum 0.999 over 20 steps."""
    return ScheduleExample(hparams={"momentum": 0.999}, steps=20)


def _blobs(count: int, generator: torch.Generator, angle: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three Gaussian classes around the unit circle in the first two of FEATURES coordinates, rotated by ``angle``."""
    labels = torch.arange(count, device=generator.device) % CLASSES
    centre_angles = 2 * math.pi * labels.double() / CLASSES + angle
    points = 0.3 * torch.randn(count, FEATURES, generator=generator, dtype=torch.float64, device=generator.device)
    points[:, 0] += 2 * centre_angles.cos()
    points[:, 1] += 2 * centre_angles.sin()
    return points, labels


def small_network(seed: int, device: Any, dtype: torch.dtype) -> nn.Sequential:
    """Features Linear(4, 8) - BatchNorm - ReLU, classifier Linear(8, 3): an ``nn.Sequential`` RMT splits itself.

    A good source model by construction: feature k < 3 is the projection on class k's direction, and
    the classifier reads class k from feature k (the other five features are the seeded initialisation).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = nn.Sequential(
            nn.Sequential(nn.Linear(FEATURES, 8), nn.BatchNorm1d(8), nn.ReLU()), nn.Linear(8, CLASSES)
        )
    angles = 2 * math.pi * torch.arange(CLASSES, dtype=torch.float64, device="cpu") / CLASSES  # set, then moved
    with torch.no_grad():
        first, head = network[0][0], network[1]
        first.weight[:CLASSES] = 0
        first.weight[:CLASSES, 0], first.weight[:CLASSES, 1] = angles.cos(), angles.sin()
        first.bias[:CLASSES] = 0
        head.weight.zero_()
        head.weight[:, :CLASSES] = 2 * torch.eye(CLASSES, device="cpu")
        head.bias.zero_()
    return network.to(device=device, dtype=dtype)


def gaussian_stream(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> SolverExample:
    """RMT (source replay, warm-up and contrastive loss all on) over 4 batches of 16 rotated blobs.

    The stream's classes are rotated by ANGLE from the source's; student and teacher agree to a
    symmetric cross-entropy below ``tol`` within the stream. ``residual`` recomputes the last batch's
    clean-view SCE from the returned logits.
    """
    generator = torch.Generator().manual_seed(seed)
    network = small_network(seed, device, dtype)
    batches = [_blobs(16, generator, angle=ANGLE)[0].to(device=device, dtype=dtype) for _ in range(4)]
    source = []
    for _ in range(2):
        x, y = _blobs(16, generator)
        source.append((x.to(device=device, dtype=dtype), y.to(device)))
    tol = 0.05
    hparams = {
        "tol": tol,
        "max_iter": 4,
        "lr": 0.1,
        "teacher_momentum": 0.5,
        "lambda_ce_trg": 1.0,
        "lambda_cont": 0.5,
        "lambda_ce_src": 0.5,
        "temperature": 0.5,
        "projection_dim": 4,
        "contrast_mode": "all",
        "warmup_samples": 32,
        "source_loader": source,
        # A host generator: the same augmentation noise and projector on every device (drawn, then moved).
        "generator": torch.Generator().manual_seed(seed),
    }

    def residual(solution: Any) -> float:
        p_logits, q_logits = solution.student[-16:].double(), solution.teacher[-16:].double()
        p, q = p_logits.softmax(1), q_logits.softmax(1)
        forward = -(q * p_logits.log_softmax(1)).sum(1)
        backward = -(p * q_logits.log_softmax(1)).sum(1)
        return float((0.5 * (forward + backward)).mean())

    return SolverExample(args=(network, batches), hparams=hparams, residual=residual)
