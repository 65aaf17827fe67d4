"""Isotropic Gaussian mixtures and their exact denoisers, for examples, tests and claim checks.

"The Principles of Diffusion Models" (Lai et al. 2025, arXiv:2510.21890) uses mixtures of
Gaussians as the case where the posterior mean ``E[x0 | x_t]`` is known in closed form. For data
``x0 ~ sum_k pi_k N(mu_k, s^2 I)`` and ``x_t = alpha x0 + sigma eps``: given component k,
``x_t ~ N(alpha mu_k, (alpha^2 s^2 + sigma^2) I)`` and
``E[x0 | x_t, k] = mu_k + alpha s^2 / (alpha^2 s^2 + sigma^2) (x_t - alpha mu_k)``; the exact
denoiser weights these by the posterior responsibilities (a softmax over components). With
alpha = 1 it is the ideal denoiser ``D*(x; sigma)`` of Karras et al. 2022; ``s = 0`` is a mixture of point masses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from gradhub.kinds.inputs import require_generator
from gradhub_diffusion.paths import GaussianPath, _broadcast

__all__ = ["GaussianMixture", "square_mixture"]


class GaussianMixture:
    """``sum_k weights_k N(means_k, std^2 I)`` in ``d`` dimensions (means: (K, d)); equal weights by default,
    on the means' device."""

    def __init__(self, means: Tensor, std: float, weights: Tensor | None = None) -> None:
        self.means = means
        self.std = float(std)
        count = means.shape[0]
        self.weights = (
            weights if weights is not None else torch.full((count,), 1 / count, dtype=means.dtype, device=means.device)
        )

    def to(self, device: Any = None, dtype: torch.dtype | None = None) -> GaussianMixture:
        return GaussianMixture(self.means.to(device, dtype), self.std, self.weights.to(device, dtype))

    def sample(self, count: int, generator: torch.Generator | None = None) -> Tensor:
        """``count`` draws, on the means' device, from ``generator`` (None, or a generator on that device)."""
        require_generator(type(self).__name__, generator, self.means, "means")
        device = self.means.device
        components = torch.multinomial(self.weights, count, replacement=True, generator=generator)
        noise = torch.randn(count, self.means.shape[1], generator=generator, device=device, dtype=self.means.dtype)
        return self.means[components] + self.std * noise

    def posterior_mean(self, x: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        """``E[x0 | x_t = x]`` for ``x_t = alpha x0 + sigma eps``; alpha, sigma of shape () or (batch,)."""
        means = self.means.to(x.dtype)
        alpha, sigma = _broadcast(alpha, x), _broadcast(sigma, x)
        variance = alpha**2 * self.std**2 + sigma**2  # (batch, 1) or ()
        # ||x - alpha mu_k||^2 up to the k-independent ||x||^2, as matrix products (no (batch, K, d) tensor)
        logits = self.weights.to(x.dtype).log() + (2 * alpha * (x @ means.T) - alpha**2 * means.square().sum(1)) / (
            2 * variance
        )
        # softmax written out (torch.softmax over a short last dimension is slow on CPU), clamped so
        # that negligible weights stay normal floats: subnormal arithmetic is ~100x slower on CPU
        unnormalised = (logits - logits.amax(-1, keepdim=True)).clamp_min(-600).exp()
        responsibilities = unnormalised / unnormalised.sum(-1, keepdim=True)  # (batch, K)
        gain = alpha * self.std**2 / variance
        # sum_k r_k (mu_k + gain (x - alpha mu_k)) = (1 - gain alpha) sum_k r_k mu_k + gain x
        return (1 - gain * alpha) * (responsibilities @ means) + gain * x

    def denoiser(self, x: Tensor, sigma: Tensor) -> Tensor:
        """The exact EDM-form denoiser ``D*(x; sigma)`` (alpha = 1)."""
        return self.posterior_mean(x, torch.ones_like(sigma), sigma)

    def path_denoiser(self, path: GaussianPath) -> Callable[[Tensor, Tensor], Tensor]:
        """The exact x0 prediction on ``path``: ``model(x_t, t)``."""

        def model(x: Tensor, t: Tensor) -> Tensor:
            t64 = t.to(torch.float64)
            return self.posterior_mean(x, path.alpha(t64), path.sigma(t64))

        return model

    def nearest_mode_distance(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Distance to the closest mean and its index, per sample."""
        distances = torch.cdist(x.to(self.means.dtype), self.means)
        return distances.min(dim=1)


def square_mixture(dtype: torch.dtype = torch.float64, device: Any = None) -> GaussianMixture:
    """The 2-D mixture of the claim checks: four equal components at (+-2, +-2), std 0.3."""
    means = torch.tensor([[2.0, 2.0], [2.0, -2.0], [-2.0, 2.0], [-2.0, -2.0]], dtype=dtype, device=device)
    return GaussianMixture(means, 0.3)
