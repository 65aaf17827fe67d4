"""fused=True beyond parity (test_parity.py and test_paths.py run the kernel on every scenario):
the option's rules, the fallback for tensors the kernel does not take, and the kernel's own guard."""

from __future__ import annotations

import warnings
from typing import Any

import gradhub_adamp.fused as fused
import pytest
import torch
from gradhub_adamp.adamp import AdamP
from gradhub_adamp.sgdp import SGDP
from torch import Tensor, nn

from gradhub.errors import HyperparameterError
from gradhub.kinds.optimizer import FusedFallbackWarning

OURS = {"adamp": AdamP, "sgdp": SGDP}
HPARAMS = {"adamp": dict(lr=1e-2, weight_decay=1e-2), "sgdp": dict(lr=0.1, momentum=0.9, weight_decay=1e-3)}


@pytest.mark.parametrize("method", ["adamp", "sgdp"])
def test_fused_and_foreach_together_are_refused(method: str) -> None:
    with pytest.raises(HyperparameterError, match=f"{method}: invalid fused=True; fused must be False or None when"):
        OURS[method]([nn.Parameter(torch.zeros(2, 2))], **HPARAMS[method], fused=True, foreach=True)


def _mixed_run(
    method: str, options: dict[str, Any], steps: int = 4
) -> tuple[list[Tensor], list[warnings.WarningMessage]]:
    """A float32 matrix, a bfloat16 matrix and a non-contiguous float32 matrix, random gradients."""
    generator = torch.Generator().manual_seed(3)
    params = [
        nn.Parameter(torch.randn(6, 10, generator=generator)),
        nn.Parameter(torch.randn(6, 10, generator=generator).bfloat16()),
        nn.Parameter(torch.randn(10, 6, generator=generator).t()),
    ]
    grads = [[torch.randn(p.shape, generator=generator).to(p.dtype) for p in params] for _ in range(steps)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        optimizer = OURS[method](params, **HPARAMS[method], **options)
        for step_grads in grads:
            for param, grad in zip(params, step_grads):
                param.grad = grad
            optimizer.step()
    return [p.detach().clone() for p in params], list(caught)


@pytest.mark.parametrize("method", ["adamp", "sgdp"])
def test_tensors_the_kernel_does_not_take_fall_back_once_each(method: str) -> None:
    """bf16 and non-contiguous tensors take the multi-tensor path: same result as foreach=True,
    one warning per reason over four steps, and the float32 tensor still goes through the kernel."""
    ours, caught = _mixed_run(method, {"fused": True})
    reference, _ = _mixed_run(method, {"foreach": True})
    fallbacks = sorted(str(w.message) for w in caught if issubclass(w.category, FusedFallbackWarning))
    assert len(fallbacks) == 2, fallbacks
    assert "bfloat16 tensors take the multi-tensor path" in fallbacks[0]
    assert "non-contiguous tensors" in fallbacks[1]
    assert torch.equal(ours[1], reference[1]) and torch.equal(ours[2], reference[2])
    torch.testing.assert_close(ours[0], reference[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("method", ["adamp", "sgdp"])
def test_an_unavailable_kernel_runs_the_multi_tensor_path(monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    monkeypatch.setattr(fused, "_kernels", lambda method: None)  # what native.load returns after its warning
    ours, _ = _mixed_run(method, {"fused": True})
    reference, _ = _mixed_run(method, {"foreach": True})
    for mine, theirs in zip(ours, reference):
        assert torch.equal(mine, theirs)


def test_kernel_guard_names_the_method() -> None:
    kernels = fused._kernels("adamp")
    assert kernels is not None
    weight = torch.zeros(4, 4)
    with pytest.raises(RuntimeError, match=r"adamp: exp_avg_sqs\[0\] has 8 elements, its parameter 16"):
        kernels.adamp_(
            [weight],
            [weight],
            [weight],
            [torch.zeros(8)],
            0.9,
            0.999,
            1e-8,
            1e-3,
            0.0,
            0.1,
            0.1,
            1e-8,
            False,
            False,
            64,
            1 << 20,
        )
    with pytest.raises(RuntimeError, match="sgdp: grain must be positive"):
        kernels.sgdp_([weight], [weight], [weight], 0.9, 0.0, 0.1, 0.0, 0.1, 0.1, 1e-8, False, False, 0, 1 << 20)


def test_fused_state_dict_resumes_on_the_other_paths() -> None:
    """A checkpoint taken under fused=True continues identically under foreach=False (state is the same)."""
    generator = torch.Generator().manual_seed(5)
    start = torch.randn(8, 30, generator=generator, dtype=torch.float64)
    grads = [torch.randn(8, 30, generator=generator, dtype=torch.float64) for _ in range(6)]
    runs = []
    for switch in (False, True):
        param = nn.Parameter(start.clone())
        optimizer = AdamP([param], lr=1e-2, weight_decay=1e-2, fused=True)
        for index, grad in enumerate(grads):
            if switch and index == 3:
                saved = optimizer.state_dict()
                optimizer = AdamP([param], lr=1e-2, weight_decay=1e-2, foreach=False)
                optimizer.load_state_dict(saved)
            param.grad = grad
            optimizer.step()
        runs.append(param.detach())
    torch.testing.assert_close(runs[0], runs[1], rtol=1e-13, atol=1e-15)
