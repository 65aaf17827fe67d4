"""Closed-form checks: HVP vs dense, quadratic spectrum, linear regression, SLQ, path ends."""

from __future__ import annotations

import torch
from gradhub_hessian_spectrum.curvature import ggn_vector_product, hvp
from gradhub_hessian_spectrum.path import loss_along_path
from gradhub_hessian_spectrum.spectrum import ggn_decomposition, hessian_spectrum, outlier_count, spectral_density
from torch import nn


def small_mlp(seed: int = 0) -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).double()
    inputs = torch.randn(16, 3, generator=generator, dtype=torch.float64)
    return model, (inputs, torch.randint(0, 2, (16,), generator=generator))


def reference_hessian(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Independent dense Hessian: torch.autograd.functional.hessian on a hand-written forward."""
    (w1, b1, w2, b2) = [p.detach() for p in model.parameters()]
    sizes = [w1.numel(), b1.numel(), w2.numel(), b2.numel()]

    def loss(flat: torch.Tensor) -> torch.Tensor:
        a, b, c, d = flat.split(sizes)
        hidden = torch.tanh(data[0] @ a.view_as(w1).T + b)
        return nn.functional.cross_entropy(hidden @ c.view_as(w2).T + d, data[1])

    return torch.autograd.functional.hessian(loss, torch.cat([w1.reshape(-1), b1, w2.reshape(-1), b2]))


class Quadratic(nn.Module):
    """Output 1/2 theta^T A theta for every sample: the loss's Hessian is A."""

    def __init__(self, matrix: torch.Tensor, seed: int = 0) -> None:
        super().__init__()
        self.register_buffer("matrix", matrix)
        self.theta = nn.Parameter(
            torch.randn(matrix.shape[0], generator=torch.Generator().manual_seed(seed), dtype=matrix.dtype)
        )

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return (0.5 * self.theta @ self.matrix @ self.theta).expand(inputs.shape[0])


def mean_output(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return outputs.mean()


def quadratic_problem(dim: int = 60, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))[0]
    eigenvalues = torch.cat(
        [
            torch.tensor([50.0, 30.0, 20.0, 12.0, 8.0], dtype=torch.float64),
            torch.linspace(-1, 1, dim - 5, dtype=torch.float64),
        ]
    )
    matrix = basis @ torch.diag(eigenvalues) @ basis.T
    matrix = (matrix + matrix.T) / 2
    return Quadratic(matrix), (torch.zeros(4, 1, dtype=torch.float64), torch.zeros(4)), eigenvalues.sort().values


def test_hvp_matches_dense_hessian_float64():
    model, data = small_mlp()
    dense = reference_hessian(model, data)
    product = hvp(model, nn.functional.cross_entropy, data)
    vectors = torch.randn(4, dense.shape[0], generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for vector in vectors:
        torch.testing.assert_close(product(vector), dense @ vector, rtol=0, atol=1e-10)
    eigenvalues = hessian_spectrum(model, nn.functional.cross_entropy, data, method="dense")
    torch.testing.assert_close(eigenvalues, torch.linalg.eigvalsh(dense), rtol=0, atol=1e-10)


def test_hvp_with_batches_matches_full_batch():
    model, data = small_mlp()
    vector = torch.randn(
        sum(p.numel() for p in model.parameters()), generator=torch.Generator().manual_seed(2), dtype=torch.float64
    )
    full = hvp(model, nn.functional.cross_entropy, data)(vector)
    chunked = hvp(model, nn.functional.cross_entropy, data, batch_size=5)(vector)
    torch.testing.assert_close(chunked, full, rtol=0, atol=1e-12)


def test_quadratic_spectrum_dense_and_lanczos():
    model, data, expected = quadratic_problem()
    dense = hessian_spectrum(model, mean_output, data, method="dense")
    torch.testing.assert_close(dense, expected, rtol=0, atol=1e-10)
    ritz = hessian_spectrum(
        model, mean_output, data, method="lanczos", k=30, generator=torch.Generator().manual_seed(0)
    )
    assert ritz.shape == (30,)
    torch.testing.assert_close(ritz[-5:], expected[-5:], rtol=0, atol=1e-8)


def test_lanczos_restarts_on_invariant_subspace():
    """Rank-3 A, k = 10 > rank + 1: breakdown restarts keep 10 Ritz values, the extremes exact."""
    dim = 20
    vectors = torch.linalg.qr(torch.randn(dim, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64))[0]
    matrix = vectors @ torch.diag(torch.tensor([5.0, 2.0, 1.0], dtype=torch.float64)) @ vectors.T
    model = Quadratic(matrix)
    data = (torch.zeros(2, 1, dtype=torch.float64), torch.zeros(2))
    ritz = hessian_spectrum(
        model, mean_output, data, method="lanczos", k=10, generator=torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(ritz[-3:], torch.tensor([1.0, 2.0, 5.0], dtype=torch.float64), rtol=0, atol=1e-10)
    torch.testing.assert_close(ritz[:-3], torch.zeros(7, dtype=torch.float64), rtol=0, atol=1e-10)


def test_linear_regression_hessian_is_gram_matrix_and_residual_vanishes():
    generator = torch.Generator().manual_seed(4)
    inputs = torch.randn(40, 6, generator=generator, dtype=torch.float64)
    targets = torch.randn(40, 1, generator=generator, dtype=torch.float64)
    model = nn.Linear(6, 1, bias=False).double()

    def half_mse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return 0.5 * (outputs - targets).square().mean()

    gram = inputs.T @ inputs / 40
    vector = torch.randn(6, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(hvp(model, half_mse, (inputs, targets))(vector), gram @ vector, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        ggn_vector_product(model, half_mse, (inputs, targets))(vector), gram @ vector, rtol=0, atol=1e-12
    )
    split = ggn_decomposition(model, half_mse, (inputs, targets))
    torch.testing.assert_close(split.hessian, torch.linalg.eigvalsh(gram), rtol=0, atol=1e-12)
    torch.testing.assert_close(split.ggn, split.hessian, rtol=0, atol=1e-12)
    torch.testing.assert_close(split.residual, torch.zeros(6, dtype=torch.float64), rtol=0, atol=1e-12)


def test_ggn_is_psd_and_residual_nonzero_for_a_network():
    model, data = small_mlp()
    split = ggn_decomposition(model, nn.functional.cross_entropy, data)
    dense = reference_hessian(model, data)
    torch.testing.assert_close(split.hessian, torch.linalg.eigvalsh(dense), rtol=0, atol=1e-10)
    assert split.ggn.min() > -1e-12
    assert split.residual.abs().max() > 1e-4
    lanczos = ggn_decomposition(
        model, nn.functional.cross_entropy, data, method="lanczos", k=32, generator=torch.Generator().manual_seed(0)
    )
    for name in ("hessian", "ggn", "residual"):  # k = P: the Ritz values are the whole spectrum
        torch.testing.assert_close(getattr(lanczos, name), getattr(split, name), rtol=0, atol=1e-9)


def test_slq_density_integrates_to_one_and_mean_is_normalised_trace():
    model, data, expected = quadratic_problem(dim=60, seed=1)
    result = spectral_density(model, mean_output, data, n_probes=400, m=8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(result.weights.sum(-1), torch.ones(400, dtype=torch.float64), rtol=0, atol=1e-12)
    integral = torch.trapezoid(result.density, result.grid)
    assert abs(integral.item() - 1) < 1e-6, integral
    mean = torch.trapezoid(result.grid * result.density, result.grid)
    trace_per_dim = expected.mean()
    quadrature_mean = (result.nodes * result.weights).sum(-1).mean()  # = mean of v^T H v (Hutchinson)
    torch.testing.assert_close(mean, quadrature_mean, rtol=1e-9, atol=0)
    assert abs(mean.item() - trace_per_dim.item()) <= 0.05 * abs(trace_per_dim.item()), (mean, trace_per_dim)


def test_path_endpoints_are_exact():
    model, data = small_mlp(0)
    other, _ = small_mlp(1)
    state_a = {k: v.clone() for k, v in model.state_dict().items()}
    state_b = {k: v.clone() for k, v in other.state_dict().items()}
    result = loss_along_path(model, state_a, state_b, nn.functional.cross_entropy, data, n_points=11)
    with torch.no_grad():
        loss_a = nn.functional.cross_entropy(model(data[0]), data[1])
        loss_b = nn.functional.cross_entropy(other(data[0]), data[1])
    # vmap's batched matmul may round the last bit differently from the plain call.
    torch.testing.assert_close(result.losses[0], loss_a, rtol=1e-14, atol=0)
    torch.testing.assert_close(result.losses[-1], loss_b, rtol=1e-14, atol=0)
    assert torch.equal(result.alphas, torch.linspace(0, 1, 11, dtype=torch.float64))
    middle = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).double()
    middle.load_state_dict({k: 0.5 * state_a[k] + 0.5 * state_b[k] for k in state_a})
    with torch.no_grad():
        torch.testing.assert_close(
            result.losses[5], nn.functional.cross_entropy(middle(data[0]), data[1]), rtol=1e-12, atol=0
        )


def test_outlier_count_gap_and_threshold():
    spectrum = torch.cat(
        [torch.tensor([10.0, 3.0, 1.0]), 1e-3 * torch.rand(100, generator=torch.Generator().manual_seed(0)) - 5e-4]
    ).double()
    assert outlier_count(spectrum) == 3
    assert outlier_count(spectrum, method="threshold", threshold=100.0) == 3
    assert outlier_count(-spectrum.abs()) == 0


def test_progress_reported_per_lanczos_step():
    model, data, _ = quadratic_problem(dim=20)
    events = []
    hessian_spectrum(
        model,
        mean_output,
        data,
        method="lanczos",
        k=7,
        generator=torch.Generator().manual_seed(0),
        progress=events.append,
    )
    assert [event.step for event in events if not event.done] == list(range(1, 8))
    assert events[-1].done


def test_model_left_in_training_mode_and_untouched():
    model = (
        nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.5), nn.Tanh(), nn.Linear(4, 2)).double().train()
    )
    _, data = small_mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    first = hessian_spectrum(model, nn.functional.cross_entropy, data)
    second = hessian_spectrum(model, nn.functional.cross_entropy, data)
    assert torch.equal(first, second)  # dropout off: eval mode
    assert all(module.training for module in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
