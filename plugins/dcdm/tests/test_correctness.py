"""Correctness of DCDM, CG, the loss, the network and the data generator against closed forms and CG."""

from __future__ import annotations

import itertools

import pytest
import torch
from gradhub_dcdm.cg import cg
from gradhub_dcdm.data import ritz_rhs
from gradhub_dcdm.dcdm import dcdm
from gradhub_dcdm.loss import dcdm_loss
from gradhub_dcdm.network import DCDMNet
from gradhub_dcdm.operators import poisson_matrix
from gradhub_dcdm.training import train_dcdm

torch.set_default_dtype(torch.float32)


def random_spd(n: int, seed: int, condition: float = 1e3) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    values = torch.logspace(0, torch.log10(torch.tensor(condition)).item(), n, dtype=torch.float64)
    return (q * values) @ q.T


def rhs(n: int, seed: int, batch: int | None = None) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    shape = (n,) if batch is None else (batch, n)
    return torch.randn(shape, generator=generator, dtype=torch.float64)


def textbook_cg(matrix: torch.Tensor, b: torch.Tensor, steps: int) -> list[torch.Tensor]:
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    iterates = []
    for _ in range(steps):
        ap = matrix @ p
        alpha = (r @ r) / (p @ ap)
        x = x + alpha * p
        r_new = r - alpha * ap
        p = r_new + (r_new @ r_new) / (r @ r) * p
        r = r_new
        iterates.append(x.clone())
    return iterates


class Recorder:
    """Wraps a model and records the iterates through the solution's progression (via x = A^-1 (b - r))."""

    def __init__(self, model):
        self.model = model
        self.inputs: list[torch.Tensor] = []

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        self.inputs.append(r.clone())
        return self.model(r)


def iterates(matrix, b, model, steps, **options) -> list[torch.Tensor]:
    return [dcdm(matrix, b, model, tol=0.0, max_iter=k, **options).solution for k in range(1, steps + 1)]


def test_exact_inverse_converges_in_one_iteration() -> None:
    matrix, b = random_spd(50, 0), rhs(50, 1)
    inverse = torch.linalg.inv(matrix)
    result = dcdm(matrix, b, lambda r: r @ inverse.T, tol=1e-10, max_iter=10)
    assert result.iterations == 1 and result.converged
    assert result.residuals[-1] < 1e-10
    assert torch.linalg.norm(b - matrix @ result.solution) < 1e-10 * torch.linalg.norm(b)


@pytest.mark.parametrize("n_orth", [1, 2, 5])
@pytest.mark.parametrize("recompute", [True, False])
def test_identity_model_reproduces_textbook_cg(n_orth: int, recompute: bool) -> None:
    matrix, b = random_spd(30, 2, condition=50.0), rhs(30, 3)
    expected = textbook_cg(matrix, b, 15)
    ours = iterates(matrix, b, lambda r: r, 15, n_orth=n_orth, recompute_residual=recompute)
    for k, (x_cg, x_dcdm) in enumerate(zip(expected, ours)):
        assert torch.allclose(x_dcdm, x_cg, rtol=0, atol=1e-8 * x_cg.norm()), k
    baseline = [cg(matrix, b, tol=0.0, max_iter=k).solution for k in range(1, 16)]
    for x_cg, x_ours in zip(expected, baseline):
        assert torch.allclose(x_ours, x_cg, rtol=0, atol=1e-8 * x_cg.norm())


def test_no_orthogonalisation_is_not_cg() -> None:
    """n_orth=0 is steepest descent with the model's direction, so it must differ from CG (the test can fail)."""
    matrix, b = random_spd(30, 2, condition=50.0), rhs(30, 3)
    expected = textbook_cg(matrix, b, 6)[-1]
    ours = dcdm(matrix, b, lambda r: r, tol=0.0, max_iter=6, n_orth=0).solution
    assert not torch.allclose(ours, expected, atol=1e-4)


def nonlinear_model(r: torch.Tensor) -> torch.Tensor:
    return torch.tanh(3 * r) + 0.3 * r.roll(1, -1) + 0.1 * r**2


@pytest.mark.parametrize("scale", [-3.0, 1e-3, 7.0])
def test_scale_invariance(scale: float) -> None:
    matrix, b = random_spd(30, 4), rhs(30, 5)
    reference = iterates(matrix, b, nonlinear_model, 8)
    scaled = iterates(matrix, b, lambda r: scale * nonlinear_model(r), 8)
    for x, y in zip(reference, scaled):
        assert torch.allclose(x, y, rtol=1e-10, atol=1e-10 * x.norm())


def test_conjugacy_of_consecutive_directions() -> None:
    matrix, b = random_spd(40, 6), rhs(40, 7)
    xs = [torch.zeros(40, dtype=torch.float64), *iterates(matrix, b, nonlinear_model, 8)]
    directions = [xs[k + 1] - xs[k] for k in range(len(xs) - 1)]  # beta_k p_k
    for k in range(2, len(directions)):
        for lag in (1, 2):
            p, q = directions[k], directions[k - lag]
            value = (p @ matrix @ q).abs()
            assert value < 1e-10 * (p @ matrix @ p).sqrt() * (q @ matrix @ q).sqrt(), (k, lag)


def test_monotone_energy_norm_error() -> None:
    matrix, b = random_spd(40, 8), rhs(40, 9)
    solution = torch.linalg.solve(matrix, b)

    def energy(x: torch.Tensor) -> float:
        e = x - solution
        return (e @ matrix @ e).sqrt().item()

    for model in (nonlinear_model, lambda r: torch.sin(5 * r), lambda r: r.flip(-1)):
        errors = [energy(torch.zeros(40, dtype=torch.float64))] + [energy(x) for x in iterates(matrix, b, model, 12)]
        assert all(later <= earlier * (1 + 1e-12) for earlier, later in itertools.pairwise(errors)), errors
        assert errors[-1] < errors[0]


def test_batch_matches_single_solves() -> None:
    matrix, batch = random_spd(25, 10, condition=100.0), rhs(25, 11, batch=4)
    result = dcdm(matrix, batch, nonlinear_model, tol=1e-8, max_iter=200)
    singles = [dcdm(matrix, row, nonlinear_model, tol=1e-8, max_iter=200) for row in batch]
    assert result.converged and all(s.converged for s in singles)
    for row, single in zip(result.solution, singles):
        assert torch.allclose(row, single.solution, atol=1e-10)
    assert result.iterations == max(s.iterations for s in singles)
    cg_batch = cg(matrix, batch, tol=1e-10)
    assert cg_batch.converged
    assert torch.allclose(cg_batch.solution, torch.linalg.solve(matrix, batch.T).T, atol=1e-8)


def test_sparse_callable_and_dense_agree_float64_solve_with_float32_model() -> None:
    dense = poisson_matrix(6, 2, layout="dense")
    sparse = poisson_matrix(6, 2)
    b = rhs(36, 12)
    torch.manual_seed(0)
    net = DCDMNet(dim=2, channels=4)  # float32 network, float64 solve
    results = [
        dcdm(matrix, b, net, tol=0.0, max_iter=25, grid=(6, 6)) for matrix in (dense, sparse, lambda v: dense @ v)
    ]
    for result in results:
        assert result.solution.dtype == torch.float64
        assert torch.allclose(result.solution, results[0].solution, atol=1e-8)
    grid_shaped = dcdm(sparse, b.view(6, 6), net, tol=0.0, max_iter=2, grid=(6, 6))
    assert grid_shaped.solution.shape == (6, 6)


def test_residual_history_is_relative_and_progress_reported() -> None:
    matrix, b = random_spd(20, 13), 5.0 * rhs(20, 14)
    events = []
    result = dcdm(matrix, b, lambda r: r, tol=1e-8, progress=events.append)
    assert result.residuals[0].item() == 1.0
    assert result.residuals.shape == (result.iterations + 1,)
    true = torch.linalg.norm(b - matrix @ result.solution) / torch.linalg.norm(b)
    assert abs(true.item() - result.residuals[-1].item()) < 1e-12
    assert [e.step for e in events if not e.done] == list(range(1, result.iterations + 1))
    assert events[-1].done


def test_loss_properties_and_gradcheck() -> None:
    matrix = random_spd(16, 15)
    b = rhs(16, 16, batch=3)
    exact = torch.linalg.solve(matrix, b.T).T
    assert dcdm_loss(exact, b, matrix).item() < 1e-20
    f = rhs(16, 17, batch=3)
    for c in (-3.0, 1e-3, 7.0):
        assert torch.allclose(dcdm_loss(c * f, b, matrix), dcdm_loss(f, b, matrix), rtol=1e-10)
    manual = []
    for fi, bi in zip(f, b):
        af = matrix @ fi
        manual.append((bi - (fi @ bi) / (fi @ af) * af).square().sum())
    assert torch.allclose(dcdm_loss(f, b, matrix, reduction="none"), torch.stack(manual))
    assert torch.allclose(dcdm_loss(f, b, matrix), torch.stack(manual).mean())
    assert torch.autograd.gradcheck(lambda g: dcdm_loss(g, b, matrix), (f.clone().requires_grad_(),))
    sparse = matrix.to_sparse_csr()
    g1 = f.clone().requires_grad_()
    dcdm_loss(g1, b, sparse).backward()
    g2 = f.clone().requires_grad_()
    dcdm_loss(g2, b, matrix).backward()
    assert torch.allclose(g1.grad, g2.grad)


def test_loss_equals_one_step_residual() -> None:
    matrix, b = random_spd(20, 18), rhs(20, 19)
    b = b / b.norm()
    result = dcdm(matrix, b, nonlinear_model, tol=0.0, max_iter=1)
    loss = dcdm_loss(nonlinear_model(b.unsqueeze(0)), b.unsqueeze(0), matrix)
    assert torch.allclose(loss, result.residuals[-1] ** 2)


@pytest.mark.parametrize("dim,size", [(2, 8), (2, 7), (3, 4), (3, 5)])
def test_network_shapes(dim: int, size: int) -> None:
    net = DCDMNet(dim=dim, channels=3)
    x = torch.randn(2, 1, *(size,) * dim)
    assert net(x).shape == x.shape


def test_official_layout_parameter_count() -> None:
    """Official 3-D Keras model: 1 + 1 + 2 + 1 + 6 + 4 = 15 3x3x3 convs of 16 filters (with bias) + Dense(1)."""
    net = DCDMNet(dim=3)
    expected = (27 * 1 * 16 + 16) + 14 * (27 * 16 * 16 + 16) + (16 + 1)
    assert sum(p.numel() for p in net.parameters()) == expected


def test_poisson_matrix_spectrum() -> None:
    for dim, n in ((2, 5), (3, 3)):
        dense = poisson_matrix(n, dim, layout="dense")
        assert torch.equal(poisson_matrix(n, dim).to_dense(), dense)
        k = torch.arange(1, n + 1, dtype=torch.float64)
        one = 4 * torch.sin(k * torch.pi / (2 * (n + 1))) ** 2
        grids = torch.meshgrid(*([one] * dim), indexing="ij")
        expected = sum(grids).flatten().sort().values
        assert torch.allclose(torch.linalg.eigvalsh(dense), expected)


def test_ritz_rhs_recipe() -> None:
    matrix = random_spd(64, 20, condition=100.0)  # distinct eigenvalues: Lanczos runs all 64 steps
    data = ritz_rhs(matrix, 200, m=64, theta=8, seed=0)
    assert data.shape == (200, 64) and torch.allclose(data.norm(dim=-1), torch.ones(200, dtype=torch.float64))
    assert torch.equal(data, ritz_rhs(matrix, 200, m=64, theta=8, seed=0))
    # With m = n the Ritz vectors are the eigenvectors: the low 40 modes carry 81x the variance of the rest.
    _, vectors = torch.linalg.eigh(matrix)
    energy = (data @ vectors).square().mean(0)
    assert energy[:40].mean() > 30 * energy[40:].mean()
    flat = ritz_rhs(matrix, 200, m=64, theta=8, low_scale=1.0, seed=0)
    flat_energy = (flat @ vectors).square().mean(0)
    assert flat_energy[:40].mean() < 2 * flat_energy[40:].mean()


def test_train_dcdm_decreases_loss_and_reports_progress() -> None:
    matrix = poisson_matrix(8, 2, dtype=torch.float32)
    data = ritz_rhs(matrix, 64, m=32, theta=4, seed=0)
    torch.manual_seed(0)
    net = DCDMNet(dim=2, channels=4)
    events = []
    losses = train_dcdm(net, matrix, data, steps=15, lr=3e-3, batch_size=8, grid=(8, 8), progress=events.append)
    assert len(losses) == 15 and sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    assert events[-1].done and events[-1].step == 15
