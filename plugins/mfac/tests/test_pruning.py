"""OBS pruning with M-FAC against the closed-form single-weight OBS step."""

from __future__ import annotations

import torch
from gradhub_mfac.pruning import MFACPruner, magnitude_prune, obs_prune
from torch import nn


def setup(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    grads = torch.randn(8, 20, generator=generator, dtype=torch.float64)
    weights = torch.randn(20, generator=generator, dtype=torch.float64)
    damp = 1e-2
    fisher = damp * torch.eye(20, dtype=torch.float64) + grads.T @ grads / 8
    return grads, weights, damp, fisher


def test_single_weight_obs_step_and_saliency() -> None:
    """Pruning one weight q: w_q -> 0, delta w = -(w_q / [F^-1]_qq) F^-1 e_q, model increase = rho_q (Eq. 7-8)."""
    grads, weights, damp, fisher = setup()
    inverse = torch.linalg.inv(fisher)
    mask = torch.ones(20, dtype=torch.bool)
    new_mask, new_weights = obs_prune(weights, mask, grads, 1 / 20, blocksize=None, damp=damp)
    saliency = weights.square() / (2 * inverse.diagonal())
    q = int(saliency.argmin())
    assert new_mask.sum() == 19 and not new_mask[q] and new_weights[q] == 0
    delta = new_weights - weights
    expected = -(weights[q] / inverse[q, q]) * inverse[:, q]
    torch.testing.assert_close(delta, expected, rtol=1e-10, atol=1e-12)
    increase = 0.5 * delta @ fisher @ delta
    torch.testing.assert_close(increase, saliency[q], rtol=1e-10, atol=1e-14)


def test_masked_weights_stay_pruned_and_the_fisher_is_restricted() -> None:
    grads, weights, damp, _ = setup(1)
    mask = torch.ones(20, dtype=torch.bool)
    mask[:4] = False
    weights = weights * mask
    new_mask, new_weights = obs_prune(weights, mask, grads * mask, 0.5, blocksize=None, damp=damp)
    assert int((~new_mask).sum()) == 10 and torch.all(new_weights[~new_mask] == 0)
    assert torch.all(~new_mask[:4])


def test_magnitude_prune() -> None:
    weights = torch.tensor([0.5, -0.1, 2.0, 0.0, -3.0])
    mask = torch.tensor([True, True, True, False, True])
    new_mask, new_weights = magnitude_prune(weights, mask, 0.6)
    assert new_mask.tolist() == [False, False, True, False, True]
    assert new_weights.tolist() == [0.0, 0.0, 2.0, 0.0, -3.0]


def test_gradual_prune_reaches_the_target_geometrically() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 2))
    inputs, labels = torch.randn(64, 6), torch.randint(0, 2, (64,))

    def losses():
        for start in range(0, 64, 4):
            yield nn.functional.cross_entropy(model(inputs[start : start + 4]), labels[start : start + 4])

    params = [model[0].weight, model[2].weight]
    pruner = MFACPruner(model, params, losses, ngrads=8, blocksize=16, damp=1e-3)
    mask = pruner.gradual_prune(torch.ones(40, dtype=torch.bool), 0.75, nrecomps=4)
    assert int((~mask).sum()) == 30
    assert torch.all(pruner.weights()[~mask] == 0)
