"""The attack objective J (Eq. 4): cosine distance, TV, mask regulariser (tests 3 and 4)."""

from __future__ import annotations

import torch
from gradhub_dia import DIA, client_gradients, dropout_layers
from gradhub_dia.inversion import (
    _dia_objective,
    _observe,
    gradient_cosine_distance,
    mask_regulariser,
    total_variation,
)
from torch import nn


def _victim(p: float = 0.25):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(16, 12), nn.Tanh(), nn.Dropout(p), nn.Linear(12, 12), nn.Tanh(), nn.Dropout(p),
        nn.Linear(12, 3),
    ).double()  # fmt: skip
    x = torch.rand(2, 1, 4, 4, dtype=torch.float64)
    y = torch.tensor([0, 2])
    gradients, masks = client_gradients(model, x, y, generator=torch.Generator().manual_seed(5))
    victim = _observe(DIA.name, model.eval(), gradients, y, x.shape[1:], None, 0.0)
    return victim, dropout_layers(model), x, masks


def test_cosine_loss_is_zero_at_the_truth_and_double_backward_works() -> None:
    """Test 3: J = 0 (to 1e-7, float64) at the client's data and masks; grad of J wrt x and masks is finite."""
    victim, layers, x, masks = _victim()
    x_var = x.clone().requires_grad_(True)
    mask_vars = [m.clone().requires_grad_(True) for m in masks]
    total, distance = _dia_objective(victim, x_var, layers, mask_vars, 0.0, 0.0)
    assert abs(distance.item()) < 1e-7 and abs(total.item()) < 1e-7
    gradients = torch.autograd.grad(total, [x_var, *mask_vars])
    assert all(torch.isfinite(g).all() for g in gradients)
    # Wrong masks (dropout ignored, as IG does) leave a clear gap: the test can fail.
    wrong, _ = _dia_objective(victim, x_var, layers, [torch.ones_like(m) * 0.75 for m in masks], 0.0, 0.0)
    assert wrong.item() > 1e-3


def test_gradient_cosine_distance_is_one_global_cosine() -> None:
    generator = torch.Generator().manual_seed(0)
    a = [
        torch.randn(3, 4, generator=generator, dtype=torch.float64),
        torch.randn(5, generator=generator, dtype=torch.float64),
    ]
    b = [
        torch.randn(3, 4, generator=generator, dtype=torch.float64),
        torch.randn(5, generator=generator, dtype=torch.float64),
    ]
    flat_a, flat_b = torch.cat([t.flatten() for t in a]), torch.cat([t.flatten() for t in b])
    expected = 1 - flat_a @ flat_b / (flat_a.norm() * flat_b.norm() + 1e-8)
    torch.testing.assert_close(gradient_cosine_distance(a, b), expected, rtol=1e-14, atol=1e-14)
    per_layer_mean = sum(1 - (x.flatten() @ y.flatten()) / (x.norm() * y.norm()) for x, y in zip(a, b)) / 2
    assert abs(gradient_cosine_distance(a, b) - per_layer_mean) > 1e-3
    torch.testing.assert_close(gradient_cosine_distance(a, [2 * t for t in a]), torch.tensor(0.0, dtype=torch.float64))


def test_mask_regulariser_for_a_mask_of_ones() -> None:
    """Test 4: all-ones masks, p = 0.25: mask_weight * 0.25 per layer, added to J with a plus sign."""
    assert mask_regulariser([torch.ones(3, 7)], [0.25]).item() == 0.25
    assert mask_regulariser([torch.ones(2, 4), torch.ones(2, 9)], [0.25, 0.25]).item() == 0.5
    assert mask_regulariser([torch.tensor([1.0, 0.0, 1.0, 1.0])], [0.25]).item() == 0.0
    victim, layers, x, masks = _victim()
    ones = [torch.ones_like(m) for m in masks]
    total, distance = _dia_objective(victim, x, layers, ones, 0.0, 1e-4)
    torch.testing.assert_close(total - distance, torch.tensor(2 * 1e-4 * 0.25, dtype=torch.float64))


def test_total_variation_is_anisotropic_means() -> None:
    x = torch.tensor([[[[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]]]], dtype=torch.float64)
    horizontal = (1 + 2 + 0 + 0) / 4
    vertical = (2 + 1 + 1) / 3
    assert total_variation(x).item() == horizontal + vertical
    assert total_variation(torch.ones(2, 3, 5, 5)).item() == 0.0
