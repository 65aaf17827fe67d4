"""The claim checks' testbed: many independent stochastic linear regressions trained as one batch.

Data: ``d = 50``, ``n = 5000`` samples per seed, ``x ~ N(0, diag(logspace(0, -2, d)))``,
``y = <w*, x> + N(0, 0.5^2)``, ``w* ~ N(0, I / d)`` scaled to norm 1. SGD on the mean squared
error ``0.5 (y - <w, x>)^2`` with minibatches of 16 drawn with replacement; every run of a
seed sees the same minibatches (common random numbers), so schedules are compared on equal
noise. The reported loss is the population excess loss ``0.5 (w - w*)^T Sigma (w - w*)``,
known in closed form from the covariance. All runs (seeds x schedules x learning rates) are
one batched tensor computation in float64; the loop is over the T steps only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gradhub.claims import single_thread

DIMENSION, SAMPLES, BATCH, NOISE = 50, 5000, 16, 0.5


@dataclass
class Trajectories:
    """Per step and run: population excess loss ``(T + 1, seeds, runs)`` and gradient norms ``(T, seeds, runs)``."""

    excess_loss: torch.Tensor
    grad_norms: torch.Tensor

    @property
    def final(self) -> torch.Tensor:
        """Final-iterate excess loss, ``(seeds, runs)``."""
        return self.excess_loss[-1]


def train(
    learning_rates: torch.Tensor, seeds: int = 5, start_distance: float = 0.0, record_every: int = 1
) -> Trajectories:
    """Run SGD with per-step learning rates ``learning_rates`` of shape ``(T, runs)`` (shared by seeds)
    or ``(T, seeds, runs)``; the runs start at ``w*`` minus a random vector of norm
    ``start_distance`` (0: at the origin)."""
    with single_thread():
        return _train(learning_rates, seeds, start_distance, record_every)


def _train(learning_rates: torch.Tensor, seeds: int, start_distance: float, record_every: int) -> Trajectories:
    steps = learning_rates.shape[0]
    if learning_rates.dim() == 2:
        learning_rates = learning_rates[:, None, :].expand(steps, seeds, learning_rates.shape[1])
    runs = learning_rates.shape[2]
    generator = torch.Generator().manual_seed(1234)
    scales = torch.logspace(0, -2, DIMENSION, dtype=torch.float64)
    inputs = torch.randn(seeds, SAMPLES, DIMENSION, generator=generator, dtype=torch.float64) * scales.sqrt()
    target = torch.randn(seeds, DIMENSION, generator=generator, dtype=torch.float64)
    target = target / target.norm(dim=1, keepdim=True)
    labels = (inputs @ target[:, :, None]).squeeze(2)
    labels = labels + NOISE * torch.randn(seeds, SAMPLES, generator=generator, dtype=torch.float64)
    if start_distance > 0:
        offset = torch.randn(seeds, DIMENSION, generator=generator, dtype=torch.float64)
        start = target - start_distance * offset / offset.norm(dim=1, keepdim=True)
    else:
        start = torch.zeros(seeds, DIMENSION, dtype=torch.float64)
    weights = start[:, None, :].repeat(1, runs, 1)  # (seeds, runs, d)
    # flat row indices into (seeds * SAMPLES, d): index_select is far cheaper than 2-D advanced indexing
    indices = torch.randint(0, SAMPLES, (steps, seeds, BATCH), generator=generator)
    indices = (indices + SAMPLES * torch.arange(seeds)[None, :, None]).reshape(steps, seeds * BATCH)
    flat_inputs, flat_labels = inputs.reshape(seeds * SAMPLES, DIMENSION), labels.reshape(seeds * SAMPLES)

    def excess(weights: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((weights - target[:, None, :]).square() * scales).sum(-1)

    losses = [excess(weights)]
    norms = torch.empty(steps, seeds, runs, dtype=torch.float64)
    for step in range(steps):
        batch_inputs = flat_inputs.index_select(0, indices[step]).view(seeds, BATCH, DIMENSION)
        batch_labels = flat_labels.index_select(0, indices[step]).view(seeds, BATCH)
        residuals = torch.baddbmm(-batch_labels[:, :, None], batch_inputs, weights.transpose(1, 2))
        gradients = torch.bmm(residuals.transpose(1, 2), batch_inputs) / BATCH  # (seeds, runs, d)
        norms[step] = gradients.norm(dim=2)
        weights = weights - learning_rates[step][:, :, None] * gradients
        if (step + 1) % record_every == 0 or step + 1 == steps:
            losses.append(excess(weights))
    return Trajectories(torch.stack(losses), norms)
