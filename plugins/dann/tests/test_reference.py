"""Equality with the PyPI reference ``pytorch-revgrad`` 0.2.0 (``RevGrad`` module and ``revgrad`` function)."""

from __future__ import annotations

import pytest
import torch
from gradhub_dann.reversal import GradientReversal, grad_reverse
from pytorch_revgrad import RevGrad  # test dependency: pytorch-revgrad==0.2.0
from pytorch_revgrad.functional import revgrad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0, 3.0])
def test_matches_pytorch_revgrad(dtype: torch.dtype, alpha: float) -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4, 5, generator=generator, dtype=torch.float64).to(dtype)
    w = torch.randn(4, 5, generator=generator, dtype=torch.float64).to(dtype)
    results = []
    for layer in (
        lambda v: grad_reverse(v, lambd=alpha),
        GradientReversal(lambd=alpha),
        RevGrad(alpha),
        lambda v: revgrad(v, torch.tensor(alpha, dtype=dtype)),
    ):
        leaf = x.clone().requires_grad_()
        out = layer(leaf)
        (gradient,) = torch.autograd.grad((w * torch.tanh(out)).sum(), leaf)
        results.append((out.detach(), gradient))
    for out, gradient in results[1:]:
        assert torch.equal(out, results[0][0])
        assert torch.equal(gradient, results[0][1])
