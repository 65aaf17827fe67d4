"""One forward pass per probe call (the gradient graph is kept across products), and Lanczos draws
a random vector only where it breaks down; the kept graph gives the same numbers as the dense matrices."""

from __future__ import annotations

import torch
from gradhub_hessian_spectrum.curvature import CurvatureOperator, ggn_vector_product, hvp, prepare
from gradhub_hessian_spectrum.lanczos import lanczos, ritz_decomposition
from gradhub_hessian_spectrum.spectrum import ggn_decomposition, hessian_spectrum, spectral_density
from torch import nn


def small_mlp() -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    """32 parameters, 16 samples, float64."""
    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).double()
    inputs = torch.randn(16, 3, generator=generator, dtype=torch.float64)
    return model, (inputs, torch.randint(0, 2, (16,), generator=generator))


def reference_hessian(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The dense Hessian by jacrev(jacrev(L)) from the parameters (no kept graph)."""
    return prepare("test", model, nn.functional.cross_entropy, data).dense_hessian()


def counted(model: nn.Module) -> list[int]:
    """Counts the model's forward calls (functional_call goes through ``__call__``, so hooks fire)."""
    calls: list[int] = []
    model.register_forward_hook(lambda *_: calls.append(1))
    return calls


def test_one_forward_per_probe_call_however_many_products():
    model, data = small_mlp()
    dense = reference_hessian(model, data)
    calls = counted(model)
    vectors = torch.randn(5, 32, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    product = hvp(model, nn.functional.cross_entropy, data)
    assert len(calls) == 1  # built when the closure is made
    for vector in vectors:
        torch.testing.assert_close(product(vector), dense @ vector, rtol=0, atol=1e-10)
    assert len(calls) == 1
    ggn = ggn_vector_product(model, nn.functional.cross_entropy, data)
    for vector in vectors:
        ggn(vector)
    assert len(calls) == 2

    generator = torch.Generator().manual_seed(0)
    calls.clear()
    hessian_spectrum(model, nn.functional.cross_entropy, data, method="lanczos", k=12, generator=generator)
    assert len(calls) == 1  # 12 products
    calls.clear()
    spectral_density(model, nn.functional.cross_entropy, data, n_probes=3, m=10, generator=generator)
    assert len(calls) == 1  # 10 batched products of 3 rows
    calls.clear()
    ggn_decomposition(model, nn.functional.cross_entropy, data, method="lanczos", k=8, generator=generator)
    assert len(calls) == 1  # H, G and R runs share one graph


def test_chunked_data_evaluates_each_chunk_per_product():
    """batch_size < N keeps one chunk's graph at a time (memory), so each product runs each chunk once."""
    model, data = small_mlp()
    calls = counted(model)
    vector = torch.randn(32, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    chunked = hvp(model, nn.functional.cross_entropy, data, batch_size=5)  # 16 samples: 4 chunks
    assert len(calls) == 0
    first = chunked(vector)
    assert len(calls) == 4
    torch.testing.assert_close(first, hvp(model, nn.functional.cross_entropy, data)(vector), rtol=0, atol=1e-12)
    torch.testing.assert_close(
        ggn_vector_product(model, nn.functional.cross_entropy, data, batch_size=5)(vector),
        ggn_vector_product(model, nn.functional.cross_entropy, data)(vector),
        rtol=0,
        atol=1e-12,
    )


def test_batched_products_match_single_ones():
    model, data = small_mlp()
    problem = prepare("test", model, nn.functional.cross_entropy, data)
    operator = CurvatureOperator(problem, hessian=True, ggn=True)
    vectors = torch.randn(3, problem.dim, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    for which in ("hessian", "ggn", "residual"):
        batched = operator(which, vectors)
        singles = torch.cat([operator(which, row[None]) for row in vectors])
        torch.testing.assert_close(batched, singles, rtol=0, atol=1e-12)
    dense = reference_hessian(model, data)
    torch.testing.assert_close(operator("hessian", vectors), vectors @ dense, rtol=0, atol=1e-10)
    torch.testing.assert_close(
        operator("residual", vectors), vectors @ dense - operator("ggn", vectors), rtol=0, atol=1e-12
    )


def test_products_of_a_loss_without_curvature_are_zero():
    """A loss linear in theta has no second-order graph: the products are zeros, not an autograd error."""
    model = nn.Linear(3, 1, bias=False).double()
    data = (torch.randn(4, 3, generator=torch.Generator().manual_seed(8), dtype=torch.float64), torch.zeros(4, 1))
    vector = torch.ones(3, dtype=torch.float64)

    def mean(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return outputs.mean()

    assert torch.equal(hvp(model, mean, data)(vector), torch.zeros(3, dtype=torch.float64))
    assert torch.equal(ggn_vector_product(model, mean, data)(vector), torch.zeros(3, dtype=torch.float64))


def matrix_with_spectrum(eigenvalues: torch.Tensor, seed: int) -> torch.Tensor:
    dim = eigenvalues.numel()
    generator = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))[0]
    matrix = basis @ torch.diag(eigenvalues) @ basis.T
    return (matrix + matrix.T) / 2


def unit_start(dim: int, seed: int) -> torch.Tensor:
    start = torch.randn(1, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return start / start.norm()


def test_lanczos_draws_nothing_without_breakdown():
    eigenvalues = torch.linspace(1, 10, 40, dtype=torch.float64)
    matrix = matrix_with_spectrum(eigenvalues, seed=9)
    generator = torch.Generator().manual_seed(0)
    before = generator.get_state()
    start = unit_start(40, 10)
    alphas, betas = lanczos(lambda v: v @ matrix, start, 40, product_dtype=torch.float64, generator=generator)
    assert torch.equal(generator.get_state(), before)
    assert (betas > 1e-3).all()
    ritz = ritz_decomposition(alphas, betas)[0][0]
    torch.testing.assert_close(ritz, eigenvalues, rtol=0, atol=1e-10)  # k = P: the whole spectrum


def test_lanczos_draws_one_vector_per_planted_breakdown():
    """Rank 3 and a start with a null-space part: the Krylov space is 4-dimensional, so steps 4..9 each break
    down and each draws exactly one fresh vector (the generator advances by six draws of P normals, no more)."""
    dim, steps = 20, 10
    vectors = torch.linalg.qr(torch.randn(dim, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64))[0]
    matrix = vectors @ torch.diag(torch.tensor([5.0, 2.0, 1.0], dtype=torch.float64)) @ vectors.T
    generator = torch.Generator().manual_seed(0)
    alphas, betas = lanczos(
        lambda v: v @ matrix, unit_start(dim, 11), steps, product_dtype=torch.float64, generator=generator
    )
    broken = (betas[0] == 0).nonzero().flatten().tolist()
    assert broken == [3, 4, 5, 6, 7, 8]
    expected = torch.Generator().manual_seed(0)
    for _ in broken:
        torch.randn(1, dim, dtype=torch.float64, generator=expected)
    assert torch.equal(generator.get_state(), expected.get_state())
    ritz = ritz_decomposition(alphas, betas)[0][0]
    torch.testing.assert_close(ritz[-3:], torch.tensor([1.0, 2.0, 5.0], dtype=torch.float64), rtol=0, atol=1e-10)
    torch.testing.assert_close(ritz[:-3], torch.zeros(7, dtype=torch.float64), rtol=0, atol=1e-10)


def test_lanczos_float32_products_one_pass_keeps_the_basis_orthogonal():
    """k = P with float32 products and well separated outliers (where plain Lanczos grows ghost copies of
    converged eigenvalues): every Ritz value matches an eigenvalue to float32 accuracy, none repeats."""
    eigenvalues = (
        torch.cat(
            [torch.tensor([100.0, 60.0, 30.0], dtype=torch.float64), torch.linspace(-1, 1, 57, dtype=torch.float64)]
        )
        .sort()
        .values
    )
    matrix = matrix_with_spectrum(eigenvalues, seed=12).float()
    alphas, betas = lanczos(
        lambda v: v @ matrix,
        unit_start(60, 13),
        60,
        product_dtype=torch.float32,
        generator=torch.Generator().manual_seed(0),
    )
    ritz = ritz_decomposition(alphas, betas)[0][0]
    torch.testing.assert_close(ritz, eigenvalues, rtol=0, atol=1e-3)  # ~ 80 eps(float32) |A|
