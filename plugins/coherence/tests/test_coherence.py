"""The coherence metric and per-example gradients."""

import pytest
import torch
from gradhub_coherence.coherence import coherence_from_grads, m_coherence
from gradhub_coherence.examples import classification_problem
from gradhub_coherence.per_example import attach_per_example_grads, per_example_grads
from torch import nn
from torch.nn.functional import cross_entropy


def test_identical_rows_alpha_one() -> None:
    row = torch.randn(7, dtype=torch.float64)
    result = coherence_from_grads(row.expand(5, 7).clone())
    assert result.alpha.item() == pytest.approx(1.0, abs=1e-14)
    assert result.m_coherence.item() == pytest.approx(5.0, abs=1e-13)


def test_orthonormal_rows_alpha_one_over_m() -> None:
    q = torch.linalg.qr(torch.randn(9, 6, dtype=torch.float64))[0].T  # 6 orthonormal rows in R^9
    result = coherence_from_grads(q)
    assert result.alpha.item() == pytest.approx(1 / 6, abs=1e-14)
    assert result.alpha_perp == pytest.approx(1 / 6)
    assert result.m_coherence.item() == pytest.approx(1.0, abs=1e-13)
    # equal norm but not unit
    assert coherence_from_grads(3.5 * q).alpha.item() == pytest.approx(1 / 6, abs=1e-14)


def test_matches_pairwise_definition_and_scale_invariance() -> None:
    g = torch.randn(11, 5, dtype=torch.float64) + 0.3
    gram = g @ g.T
    expected = gram.mean() / gram.diagonal().mean()  # E_{i,j}[g_i.g_j] / E_i[g_i.g_i]
    assert coherence_from_grads(g).alpha.item() == pytest.approx(expected.item(), rel=1e-12)
    assert coherence_from_grads(-7.0 * g).alpha.item() == pytest.approx(expected.item(), rel=1e-12)
    assert 0.0 <= coherence_from_grads(g).alpha.item() <= 1.0


def test_chunked_equals_dense() -> None:
    g = torch.randn(50, 13, dtype=torch.float32)
    dense = coherence_from_grads(g).alpha
    for chunk in (1, 7, 50, 64):
        assert torch.allclose(coherence_from_grads(g, chunk_size=chunk).alpha, dense, atol=1e-6, rtol=0)


def test_per_example_sum_equals_batch_gradient_times_m() -> None:
    model, inputs, labels = classification_problem(dtype=torch.float64, examples=12)
    grads = per_example_grads(model, cross_entropy, inputs, labels, chunk_size=5)
    batch = torch.autograd.grad(cross_entropy(model(inputs), labels, reduction="sum"), list(model.parameters()))
    for g, expected in zip(grads.values(), batch):
        assert g.shape == (12, *expected.shape)
        torch.testing.assert_close(g.sum(0), expected, rtol=1e-12, atol=1e-12)
    # and each row is that example's own gradient
    single = torch.autograd.grad(cross_entropy(model(inputs[3:4]), labels[3:4]), list(model.parameters()))
    for g, expected in zip(grads.values(), single):
        torch.testing.assert_close(g[3], expected, rtol=1e-12, atol=1e-12)


def test_m_coherence_matches_explicit_matrix_and_leaves_model() -> None:
    model, inputs, labels = classification_problem(dtype=torch.float64, examples=30)
    model.train()
    grads = per_example_grads(model, cross_entropy, inputs, labels)
    matrix = torch.cat([g.reshape(30, -1) for g in grads.values()], 1)
    expected = coherence_from_grads(matrix)
    before = [p.detach().clone() for p in model.parameters()]
    result = m_coherence(model, cross_entropy, inputs, labels, chunk_size=7)
    assert result.alpha.item() == pytest.approx(expected.alpha.item(), rel=1e-12)
    assert result.m_coherence.item() == pytest.approx(30 * expected.alpha.item(), rel=1e-12)
    assert result.coordinates == matrix.shape[1] and result.examples == 30
    assert model.training and all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(p.grad is None for p in model.parameters())


def test_m_coherence_parameter_subset() -> None:
    model, inputs, labels = classification_problem(dtype=torch.float64)
    grads = per_example_grads(model, cross_entropy, inputs, labels)
    expected = coherence_from_grads(grads["2.weight"])
    result = m_coherence(model, cross_entropy, inputs, labels, parameters=["2.weight"])
    assert result.alpha.item() == pytest.approx(expected.alpha.item(), rel=1e-12)


def test_batchnorm_in_eval_mode_for_probe() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Linear(6, 3)).double()
    x, y = torch.randn(10, 4, dtype=torch.float64), torch.randint(3, (10,))
    model.train()
    result = m_coherence(model, cross_entropy, x, y)  # measured in eval mode
    assert torch.isfinite(result.alpha) and model.training


def test_attach_sets_grad_sample_and_mean_grad() -> None:
    model, inputs, labels = classification_problem(dtype=torch.float64)
    loss = attach_per_example_grads(model, cross_entropy, inputs, labels)
    reference = classification_problem(dtype=torch.float64)[0]
    reference_loss = cross_entropy(reference(inputs), labels)
    reference_loss.backward()
    assert loss.item() == pytest.approx(reference_loss.item(), rel=1e-12)
    for p, q in zip(model.parameters(), reference.parameters()):
        assert p.grad_sample.shape == (inputs.shape[0], *p.shape)
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-12, atol=1e-12)
