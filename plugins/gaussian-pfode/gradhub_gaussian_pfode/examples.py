"""Seeded examples for the conformance suite, and the Gaussians and mixtures the tests and claims share.

``flow_to_half``: the flow map of a 6-D Gaussian with a random rotation and eigenvalues
``logspace(1, -2)``, 8 samples from sigma_T = 80 to sigma = 0.5; its independent residual compares
with the closed form written with the example's own rotation (no eigendecomposition).
``mixture_skip_two``: a 4-D mixture of four isotropic Gaussians (gradhub-diffusion's exact denoiser as
the "model"), its Gaussian approximation from the mixture's exact moments, a 6-step EDM grid and a jump
over the first two steps.
"""

from __future__ import annotations

from typing import Any

import torch
from gradhub_diffusion.gmm import GaussianMixture
from gradhub_diffusion.samplers import edm_sigmas
from torch import Tensor

from gradhub.kinds.sampler import SamplerExample
from gradhub.kinds.solver import SolverExample
from gradhub_gaussian_pfode.gaussian import GaussianPFODE


def random_rotation(
    dim: int, generator: torch.Generator, dtype: torch.dtype = torch.float64, device: Any = "cpu"
) -> Tensor:
    """A random orthogonal matrix (QR of a Gaussian matrix, signs fixed), drawn in float64 on the generator's device."""
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64, device=generator.device))
    return (q * torch.sign(torch.diagonal(r))).to(device=device, dtype=dtype)


def mixture_moments(mixture: GaussianMixture) -> tuple[Tensor, Tensor]:
    """Mean and covariance of ``sum_k w_k N(mu_k, s^2 I)``: ``s^2 I + sum_k w_k (mu_k - m)(mu_k - m)^T``."""
    weights, means = mixture.weights, mixture.means
    mean = weights @ means
    centred = means - mean
    cov = (centred.T * weights) @ centred
    return mean, cov + mixture.std**2 * torch.eye(means.shape[1], dtype=means.dtype, device=means.device)


def flow_to_half(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> SolverExample:
    generator = torch.Generator(device="cpu").manual_seed(seed)
    dim, sigma_T, sigma = 6, 80.0, 0.5
    rotation = random_rotation(dim, generator, torch.float64)
    lam = torch.logspace(1, -2, dim, dtype=torch.float64, device="cpu")
    mean = torch.randn(dim, generator=generator, dtype=torch.float64, device="cpu")
    x_T = mean + sigma_T * torch.randn(8, dim, generator=generator, dtype=torch.float64, device="cpu")
    gaussian = GaussianPFODE(mean.to(device, dtype), ((rotation * lam) @ rotation.T).to(device, dtype))
    x_T = x_T.to(device, dtype)
    gain = ((lam + sigma**2) / (lam + sigma_T**2)).sqrt()
    expected = mean + ((x_T.cpu().double() - mean) @ rotation * gain) @ rotation.T

    def residual(solution: Tensor) -> float:
        error = (solution.cpu().double() - expected).norm() / (x_T.cpu().double() - mean).norm()
        return float(error)

    return SolverExample(args=(gaussian, x_T, sigma_T, sigma), hparams={}, residual=residual)


def four_mixture(dim: int = 4, dtype: torch.dtype = torch.float64, device: Any = "cpu") -> GaussianMixture:
    """Four isotropic components (std 0.5) at +-1.5 on the first two axes, weights 0.4, 0.3, 0.2, 0.1."""
    means = torch.zeros(4, dim, dtype=dtype, device=device)
    means[:, :2] = torch.tensor([[1.5, 1.5], [1.5, -1.5], [-1.5, 1.5], [-1.5, -1.5]], dtype=dtype, device=device)
    weights = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=dtype, device=device)
    return GaussianMixture(means, 0.5, weights)


def mixture_skip_two(device: Any = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> SamplerExample:
    mixture = four_mixture(dtype=dtype, device=device)
    gaussian = GaussianPFODE(*mixture_moments(mixture))
    generator = torch.Generator(device=device).manual_seed(seed)
    sigmas = edm_sigmas(6, device=device)
    x_T = torch.randn(8, 4, generator=generator, device=device, dtype=dtype) * float(sigmas[0])
    return SamplerExample(model=mixture.denoiser, args=(gaussian, x_T, sigmas), hparams={"skip_to_index": 2})
