"""``GaussianPFODE.fit``: PCA of data (eigh or thin SVD, float64), rank truncation, shrinkage, sorted eigenpairs."""

from __future__ import annotations

import torch
from gradhub_gaussian_pfode.gaussian import GaussianPFODE


def _data(count: int, dim: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    scales = torch.logspace(0.5, -1.5, dim, dtype=torch.float64)
    mixing = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))[0]
    noise = torch.randn(count, dim, generator=generator, dtype=torch.float64)
    return ((noise * scales) @ mixing.T + 3.0).to(dtype)


def test_fit_is_the_sample_mean_and_covariance_sorted():
    data = _data(500, 6)
    gaussian = GaussianPFODE.fit(data)
    assert torch.allclose(gaussian.mean, data.mean(0), rtol=1e-13, atol=1e-13)
    assert torch.allclose(gaussian.covariance(), torch.cov(data.T), rtol=1e-11, atol=1e-13)
    assert bool((gaussian.lam[:-1] >= gaussian.lam[1:]).all())
    assert torch.allclose(gaussian.U.T @ gaussian.U, torch.eye(6, dtype=torch.float64), atol=1e-13)
    assert gaussian.rank == 6 and gaussian.floor == 0.0


def test_fewer_samples_than_dimensions_uses_the_thin_svd():
    data = _data(12, 30)
    gaussian = GaussianPFODE.fit(data)
    assert gaussian.rank == 12
    assert torch.allclose(gaussian.covariance(), torch.cov(data.T), rtol=1e-11, atol=1e-12)
    eigenvalues = torch.linalg.eigvalsh(torch.cov(data.T)).flip(0)[:11]
    assert torch.allclose(gaussian.lam[:11], eigenvalues, rtol=1e-10, atol=1e-12)


def test_rank_truncation_keeps_the_top_directions():
    data = _data(400, 8)
    sample = torch.cov(data.T)
    values, vectors = torch.linalg.eigh(sample)
    values, vectors = values.flip(0)[:3], vectors.flip(1)[:, :3]
    gaussian = GaussianPFODE.fit(data, rank=3)
    assert gaussian.rank == 3 and gaussian.floor == 0.0
    assert torch.allclose(gaussian.lam, values, rtol=1e-11)
    assert torch.allclose(gaussian.covariance(), (vectors * values) @ vectors.T, rtol=1e-10, atol=1e-12)


def test_shrinkage_towards_the_isotropic_variance():
    data, alpha = _data(400, 8), 0.3
    sample = torch.cov(data.T)
    isotropic = torch.trace(sample) / 8
    eye = torch.eye(8, dtype=torch.float64)
    full = GaussianPFODE.fit(data, shrinkage=alpha)
    assert torch.allclose(full.covariance(), (1 - alpha) * sample + alpha * isotropic * eye, rtol=1e-10, atol=1e-12)
    low = GaussianPFODE.fit(data, rank=2, shrinkage=alpha)
    values, vectors = torch.linalg.eigh(sample)
    top = (vectors[:, -2:] * values[-2:]) @ vectors[:, -2:].T
    assert abs(low.floor - alpha * float(isotropic)) < 1e-12
    assert torch.allclose(low.covariance(), (1 - alpha) * top + alpha * isotropic * eye, rtol=1e-10, atol=1e-12)


def test_fit_of_image_shaped_float32_data_keeps_float64_parameters():
    data = _data(300, 12, dtype=torch.float32).reshape(300, 3, 2, 2)
    gaussian = GaussianPFODE.fit(data, rank=4)
    assert gaussian.dtype == torch.float64 and gaussian.mean.shape == (3, 2, 2)
    assert torch.allclose(gaussian.mean, data.double().mean(0), rtol=1e-12, atol=1e-12)
    x = torch.randn(5, 3, 2, 2, generator=torch.Generator().manual_seed(1)) * 80
    out = gaussian.solve(x, 80.0, 0.0)
    assert out.dtype == torch.float32 and out.shape == x.shape


def test_fit_recovers_a_known_gaussian():
    generator = torch.Generator().manual_seed(3)
    rotation = torch.linalg.qr(torch.randn(5, 5, generator=generator, dtype=torch.float64))[0]
    lam = torch.tensor([4.0, 2.0, 1.0, 0.5, 0.1], dtype=torch.float64)
    data = 1.0 + (torch.randn(40000, 5, generator=generator, dtype=torch.float64) * lam.sqrt()) @ rotation.T
    gaussian = GaussianPFODE.fit(data)
    truth = (rotation * lam) @ rotation.T
    assert float((gaussian.covariance() - truth).norm() / truth.norm()) < 0.03
    assert torch.allclose(gaussian.lam, lam, rtol=0.05)
