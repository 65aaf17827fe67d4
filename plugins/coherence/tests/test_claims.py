"""The claim checks pass, and their criteria fail for deliberately wrong implementations."""

import torch
from gradhub_coherence import claims
from gradhub_coherence.coherence import coherence_from_grads
from gradhub_coherence.robust_sgd import WinsorizedSGD
from torch import nn
from torch.nn.functional import cross_entropy


def test_real_vs_random_coherence() -> None:
    result = claims.real_vs_random_coherence()
    assert result.passed, result.report()


def test_coherence_criterion_fails_for_batch_gradient_bug() -> None:
    # A classic per-example bug: every "per-example" gradient is the batch gradient.
    def wrong(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
        batch = torch.autograd.grad(cross_entropy(model(inputs), targets), list(model.parameters()))
        row = torch.cat([g.reshape(-1) for g in batch])
        return coherence_from_grads(row.expand(inputs.shape[0], -1)).m_coherence.item()

    assert not claims.real_vs_random_coherence(coherence=wrong, seeds=1).passed


def test_noisy_label_memorization() -> None:
    result = claims.noisy_label_memorization()
    assert result.passed, result.report()


def test_memorization_criterion_fails_without_winsorization() -> None:
    wrong = claims.noisy_label_memorization(winsorized=lambda p: WinsorizedSGD(p, lr=0.1, momentum=0.9, c=0))
    assert not wrong.passed
