"""GradNormRecorder and the grad_norm probe measure clip_grad_norm_'s total norm, before clipping."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gradhub_refined_schedules import GradNormRecorder, grad_norm
from torch import nn


def _model(dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 2)).to(dtype)


def _backward(model: nn.Module, seed: int, dtype: torch.dtype = torch.float32) -> None:
    model.zero_grad()
    generator = torch.Generator().manual_seed(seed)
    model(torch.randn(9, 5, generator=generator, dtype=dtype)).square().sum().mul(10.0).backward()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_recorded_norm_is_clip_grad_norm_total_before_clipping(dtype: torch.dtype) -> None:
    """Test 6: the recorded norm equals clip_grad_norm_'s total norm; clipping afterwards does not change it."""
    model = _model(dtype)
    recorder = GradNormRecorder(model.parameters(), sync_every=4)
    totals = []
    for step in range(10):
        _backward(model, step, dtype)
        recorded = recorder.record()
        totals.append(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.1).item())
        assert recorded.item() > 0.1  # clipping did bite, and the record kept the unclipped norm
    np.testing.assert_allclose(recorder.norms, totals, rtol=1e-6 if dtype == torch.float32 else 1e-14)
    assert len(recorder) == 10


def test_l1_adam_kind_and_probe() -> None:
    model = _model()
    _backward(model, 0)
    l1 = sum(p.grad.abs().sum() for p in model.parameters())
    l2 = torch.cat([p.grad.flatten() for p in model.parameters()]).norm()
    torch.testing.assert_close(grad_norm(model, kind="l1_adam"), l1)
    torch.testing.assert_close(grad_norm(model), l2)
    recorder = GradNormRecorder(torch.optim.Adam(model.parameters()), kind="l1_adam")
    recorder.record()
    np.testing.assert_allclose(recorder.norms, [l1.item()], rtol=1e-6)


def test_values_stay_on_device_until_sync_every() -> None:
    model = _model()
    recorder = GradNormRecorder(model.parameters(), sync_every=3)
    for step in range(5):
        _backward(model, step)
        recorder.record()
    assert [chunk.size for chunk in recorder._host] == [3] and recorder._filled == 2
    assert recorder.norms.shape == (5,)


def test_mixed_dtypes_and_state_dict() -> None:
    model = _model()
    model[2].to(torch.float64)
    model[0](torch.randn(3, 5)).sum().backward()
    model[2](torch.randn(3, 7, dtype=torch.float64)).sum().backward()
    total = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
    recorder = GradNormRecorder(model.parameters())
    recorder.record()
    np.testing.assert_allclose(recorder.norms, [total.item()], rtol=1e-6)
    fresh = GradNormRecorder(model.parameters())
    fresh.load_state_dict(recorder.state_dict())
    np.testing.assert_array_equal(fresh.norms, recorder.norms)
