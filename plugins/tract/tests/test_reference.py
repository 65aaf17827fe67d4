"""Parity with the official implementation, PyPI ``torch-tract`` 1.0.0 (``import torch_tract``), in float64.

Weight, bias and input gradients of TrActLinear (2-D and token inputs) and TrActConv2d (stride and
padding variants) equal the official layers' in both branches (N < n and N >= n), and a variant
normalising A^T A by the batch size instead of the N rows does not.
"""

from __future__ import annotations

import pytest
import torch
import torch_tract
from gradhub_tract.layers import TrAct, TrActConv2d, TrActLinear
from torch import nn

F64 = torch.float64
TOLERANCE = 1e-10


def _gradients(layer: nn.Module, x: torch.Tensor, g: torch.Tensor) -> list[torch.Tensor]:
    x = x.detach().clone().requires_grad_()
    output = layer(x)
    return [output.detach(), *torch.autograd.grad((output * g).sum(), [x, layer.weight, layer.bias])]


def _relative(ours: torch.Tensor, official: torch.Tensor) -> float:
    return float((ours - official).abs().max() / official.abs().max().clamp_min(1e-300))


def _assert_parity(ours: nn.Module, official: nn.Module, x: torch.Tensor) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    g = torch.randn(official(x).shape, generator=generator, dtype=F64)
    expected, actual = _gradients(official, x, g), _gradients(ours, x, g)
    for name, a, b in zip(("output", "input grad", "weight grad", "bias grad"), actual, expected):
        assert a.shape == b.shape, name
        assert _relative(a, b) < TOLERANCE, f"{name}: relative difference {_relative(a, b):.2e}"
    return g


@pytest.mark.parametrize(
    "shape",
    [(40, 8), (5, 27), (3, 9, 8), (2, 3, 27), (1, 2, 2, 9)],
    ids=["2d-N>=n", "2d-N<n", "tokens-N>=n", "tokens-N<n", "4d-N<n"],
)
@pytest.mark.parametrize("inv_type", ["inverse", "cholesky"])
def test_linear_matches_torch_tract(shape: tuple[int, ...], inv_type: str) -> None:
    features = shape[-1]
    official = torch_tract.TrActLinear(features, 5, 0.1).to(F64)
    ours = TrActLinear(features, 5, l=0.1, inv_type=inv_type, dtype=F64)
    ours.load_state_dict(official.state_dict())
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=F64)
    _assert_parity(ours, official, x)


@pytest.mark.parametrize(
    ("batch", "stride", "padding"),
    [(3, 1, 0), (2, 2, 0), (2, 1, 1), (1, 2, 1), (1, 3, 2), (1, (2, 1), (0, 1))],
    ids=["N>=n", "stride2-N>=n", "pad1-N>=n", "stride2-pad1-N<n", "stride3-pad2-N<n", "pairs-N>=n"],
)
def test_conv2d_matches_torch_tract(batch: int, stride: object, padding: object) -> None:
    official = torch_tract.TrActConv2d(2, 5, 3, stride, padding, 0.1).to(F64)
    ours = TrActConv2d(2, 5, 3, stride, padding, l=0.1, dtype=F64)
    ours.load_state_dict(official.state_dict())
    x = torch.randn(batch, 2, 6, 7, generator=torch.Generator().manual_seed(0), dtype=F64)
    _assert_parity(ours, official, x)


def test_wrappers_agree() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1).to(F64)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2), dtype=F64)
    _assert_parity(TrAct(conv, l=0.3), torch_tract.TrAct(conv, l=0.3), x)


@pytest.mark.parametrize("layer", ["tokens", "conv"])
def test_parity_rejects_normalising_by_the_batch_size(layer: str) -> None:
    """A^T A / b (b images) instead of / N (rows: tokens or patches) is a different gradient."""
    generator = torch.Generator().manual_seed(3)
    if layer == "tokens":
        official = torch_tract.TrActLinear(6, 4, 0.1).to(F64)
        x = torch.randn(2, 5, 6, generator=generator, dtype=F64)
        a = x.reshape(-1, 6)
    else:
        official = torch_tract.TrActConv2d(2, 4, 3, 1, 1, 0.1).to(F64)
        x = torch.randn(2, 2, 4, 4, generator=generator, dtype=F64)
        unfolded = nn.functional.unfold(x, 3, padding=1)
        a = unfolded.transpose(1, 2).reshape(-1, unfolded.shape[1])
    g = torch.randn(official(x).shape, generator=generator, dtype=F64)
    official_grad = _gradients(official, x, g)[2]
    g2d = g.reshape(-1, 4) if layer == "tokens" else g.permute(0, 2, 3, 1).reshape(-1, 4)
    for divisor, should_match in ((a.shape[0], True), (x.shape[0], False)):
        system = a.mT @ a / divisor + 0.1 * torch.eye(a.shape[1], dtype=F64)
        grad = (g2d.mT @ a @ torch.linalg.inv(system)).reshape(official_grad.shape)
        assert (_relative(grad, official_grad) < TOLERANCE) is should_match, divisor
