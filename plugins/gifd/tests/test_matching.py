"""The global cosine gradient loss, the ILO learning rate and iDLG label inference."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from gradhub_gifd.matching import cosine_grad_loss, ilo_lr, infer_labels_idlg
from torch import nn

import gradhub
from gradhub.errors import UnsupportedInputError


def gradients(seed: int, scale: float = 1.0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    shapes = [(3, 4), (4,), (2, 3, 2), (1,)]
    return [torch.randn(shape, generator=generator, dtype=torch.float64) * scale for shape in shapes]


def closed_form(trial: list[torch.Tensor], target: list[torch.Tensor], weights: list[float] | None = None) -> float:
    """``1 - sum_l w_l <t_l, s_l> / (sqrt(sum_l w_l |t_l|^2) sqrt(sum_l w_l |s_l|^2))``, in Python floats."""
    weights = weights or [1.0] * len(trial)
    inner = sum(w * float((t * s).sum()) for w, t, s in zip(weights, trial, target))
    t2 = sum(w * float(t.square().sum()) for w, t in zip(weights, trial))
    s2 = sum(w * float(s.square().sum()) for w, s in zip(weights, target))
    return 1 - inner / math.sqrt(t2 * s2)


def per_tensor_mean(trial: list[torch.Tensor], target: list[torch.Tensor]) -> torch.Tensor:
    """A WRONG loss: the mean of per-tensor cosines (no global normalisation)."""
    cosines = [nn.functional.cosine_similarity(t.reshape(-1), s.reshape(-1), dim=0) for t, s in zip(trial, target)]
    return 1 - torch.stack(cosines).mean()


def test_identities() -> None:
    g = gradients(0)
    assert abs(cosine_grad_loss(g, g).item()) < 1e-15
    assert abs(cosine_grad_loss(g, [-t for t in g]).item() - 2) < 1e-15
    h = gradients(1)
    value = cosine_grad_loss(g, h)
    torch.testing.assert_close(cosine_grad_loss([3.5 * t for t in g], h), value, rtol=0, atol=1e-15)
    torch.testing.assert_close(cosine_grad_loss(g, [0.01 * t for t in h]), value, rtol=0, atol=1e-15)


def test_matches_the_closed_form_and_a_wrong_variant_does_not() -> None:
    trial, target = gradients(2), gradients(3)
    expected = closed_form(trial, target)
    assert abs(cosine_grad_loss(trial, target).item() - expected) < 1e-14
    assert abs(per_tensor_mean(trial, target).item() - expected) > 1e-2
    weights = [1.0, 0.5, 2.0, 0.0]
    weighted = cosine_grad_loss(trial, target, weights=torch.tensor(weights, dtype=torch.float64))
    assert abs(weighted.item() - closed_form(trial, target, weights)) < 1e-14


def test_gradcheck_in_float64() -> None:
    trial = [t.requires_grad_(True) for t in gradients(4)]
    target = [t.requires_grad_(True) for t in gradients(5)]
    count = len(trial)
    assert torch.autograd.gradcheck(lambda *ts: cosine_grad_loss(list(ts[:count]), list(ts[count:])), (*trial, *target))
    assert torch.autograd.gradgradcheck(lambda *ts: cosine_grad_loss(list(ts), target), tuple(trial))


def test_registered_as_the_loss() -> None:
    assert gradhub.get("gradient_matching_cosine") is cosine_grad_loss


def test_errors_name_the_method() -> None:
    g = gradients(0)
    with pytest.raises(UnsupportedInputError, match=r"gradient_matching_cosine.*4 trial and 3 target"):
        cosine_grad_loss(g, g[:3])
    with pytest.raises(UnsupportedInputError, match=r"gradient_matching_cosine.*shapes"):
        cosine_grad_loss(g, [g[1], g[0], g[2], g[3]])
    with pytest.raises(UnsupportedInputError, match="weights"):
        cosine_grad_loss(g, g, weights=[1.0, 1.0])
    with pytest.raises(UnsupportedInputError, match="non-negative"):
        cosine_grad_loss(g, g, weights=[1.0, -1.0, 1.0, 1.0])
    bad = [t.clone() for t in g]
    bad[2][0, 0, 0] = float("nan")
    with pytest.raises(UnsupportedInputError, match=r"gradient_matching_cosine.*non-finite"):
        cosine_grad_loss(bad, g)


def test_ilo_schedule() -> None:
    lr = 0.1
    assert ilo_lr(0.0, lr) == 0.0
    assert abs(ilo_lr(0.05, lr) - lr) < 1e-15
    assert abs(ilo_lr(1.0, lr)) < 1e-15
    values = [ilo_lr(t, lr) for t in torch.linspace(0.25, 1, 101).tolist()]
    assert all(later <= earlier + 1e-15 for earlier, later in itertools.pairwise(values))
    ramp = [ilo_lr(t / 100, lr) for t in range(6)]  # rising over [0, 0.05]
    assert all(later > earlier for earlier, later in itertools.pairwise(ramp))


def _fresh_client(seed: int, classes: int = 7) -> tuple[nn.Module, torch.Tensor, int]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, classes))
    x = torch.randn(1, 5)
    label = seed % classes
    loss = nn.functional.cross_entropy(model(x), torch.tensor([label]))
    return model, torch.autograd.grad(loss, model[2].weight)[0], label


@pytest.mark.parametrize("seed", range(20))
def test_idlg_exact_for_one_sample(seed: int) -> None:
    """B = 1, CE, ReLU features: only the true class's row of dL/dW has a negative sum."""
    _, gradient, label = _fresh_client(seed)
    assert infer_labels_idlg(gradient, 1).tolist() == [label]


def test_idlg_wrong_variant_fails() -> None:
    """A WRONG rule (the largest row sums) misses the label."""
    misses = 0
    for seed in range(20):
        _, gradient, label = _fresh_client(seed)
        misses += gradient.sum(-1).argsort(descending=True)[:1].tolist() != [label]
    assert misses == 20


def test_idlg_batch_sorted_and_checked() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 9))
    labels = torch.tensor([7, 2, 4])
    loss = nn.functional.cross_entropy(model(torch.rand(3, 5)), labels)
    inferred = infer_labels_idlg(torch.autograd.grad(loss, model[2].weight)[0], 3)
    assert inferred.tolist() == sorted(inferred.tolist()) and len(set(inferred.tolist())) == 3
    with pytest.raises(UnsupportedInputError, match="batch_size"):
        infer_labels_idlg(torch.zeros(4, 3), 5)
