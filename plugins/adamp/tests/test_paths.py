"""The code paths beyond float64 parity: maximize, bf16, default selection, real-size (unpatched) blocking.

``test_parity.py`` compares every CPU strategy with the official code in float64; this
module covers what that does not: ``maximize``, bfloat16 parameters, which path
``foreach=None`` picks, and weights large enough to be row-blocked (CPU) or batched alone
(foreach) with the module's real constants.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import adamp as official
import gradhub_adamp.fused as ours_fused
import gradhub_adamp.multitensor as multitensor
import pytest
import torch
from adamp_testkit import (
    STRATEGIES,
    UNFUSED_STRATEGIES,
    check_strategy_ran,
    classification_loss,
    max_difference,
    parity_net,
    state_difference,
    strategy,
    train,
    trained,
)
from gradhub_adamp.adamp import AdamP
from gradhub_adamp.sgdp import SGDP
from torch import Tensor, nn

OURS = {"adamp": AdamP, "sgdp": SGDP}
OFFICIAL = {"adamp": official.AdamP, "sgdp": official.SGDP}
HPARAMS = {
    "adamp": dict(lr=1e-2, weight_decay=1e-2, nesterov=True),
    "sgdp": dict(lr=0.1, momentum=0.9, weight_decay=1e-3),
}


@pytest.mark.parametrize("path", STRATEGIES)
@pytest.mark.parametrize("method", ["adamp", "sgdp"])
def test_maximize_equals_minimising_the_negated_loss(monkeypatch: pytest.MonkeyPatch, method: str, path: str) -> None:
    """maximize=True on -L takes bit-for-bit the steps of maximize=False on L (negation is exact)."""
    runs = []
    with strategy(monkeypatch, path) as (extra, log):
        for maximize in (False, True):
            model = parity_net()
            loss = classification_loss(model)
            objective = (lambda loss=loss: -loss()) if maximize else loss
            optimizer = OURS[method](model.parameters(), maximize=maximize, **HPARAMS[method], **extra)
            train(model, objective, optimizer, 8)
            runs.append(model)
    check_strategy_ran(path, log)
    for first, second in zip(runs[0].parameters(), runs[1].parameters()):
        assert torch.equal(first, second)
    assert not torch.equal(runs[0][0].weight, parity_net()[0].weight), "nothing moved"


@pytest.mark.parametrize("path", STRATEGIES[1:])
@pytest.mark.parametrize(
    ("method", "hparams"),
    [
        ("adamp", dict(lr=1e-2, weight_decay=1e-2, nesterov=True)),
        ("adamp", dict(lr=1e-2)),
        ("sgdp", dict(lr=0.1, momentum=0.9, weight_decay=1e-3)),
        ("sgdp", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ],
    ids=["adamp-nesterov-decay", "adamp", "sgdp-decay", "sgdp-nesterov"],
)
def test_multi_tensor_strategies_match_per_tensor(
    monkeypatch: pytest.MonkeyPatch, method: str, hparams: dict[str, Any], path: str
) -> None:
    """Each multi-tensor strategy against the per-tensor path directly (float64, 15 steps, params and
    state within 1e-13): the multi-tensor paths fold the bias correction into eps and the step size and
    the projection into a weight rescaling, so they agree to round-off, not bitwise."""
    reference = trained(lambda params: OURS[method](params, foreach=False, **hparams), 15)
    with strategy(monkeypatch, path) as (extra, log):
        ours = trained(lambda params: OURS[method](params, **hparams, **extra), 15)
    check_strategy_ran(path, log)
    assert max_difference(ours[0], reference[0]) <= 1e-13
    assert state_difference(ours, reference) <= 1e-13


def test_foreach_none_picks_the_multi_tensor_path_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """foreach=None (the default) runs the CPU multi-tensor strategy; foreach=False the per-tensor loop."""
    for foreach, expected in ((None, 1), (False, 0)):
        with strategy(monkeypatch, "blocked") as (_, log):
            model = parity_net()
            optimizer = AdamP(model.parameters(), lr=1e-2, foreach=foreach)
            train(model, classification_loss(model), optimizer, 1)
        assert (log.blocked_calls, log.foreach_calls) == (expected, 0)


# ---------------------------------------------------------------------------------------------
# bfloat16


def _orthogonal_rows(random: Tensor, weight: Tensor) -> Tensor:
    """``random`` minus, row by row, its component along ``weight`` (computed in float32 at least)."""
    rows = weight.detach().to(torch.promote_types(weight.dtype, torch.float32)).reshape(weight.shape[0], -1)
    unit = rows / rows.norm(dim=1, keepdim=True)
    flat = random.reshape(rows.shape)
    return (flat - (flat * unit).sum(1, keepdim=True) * unit).view_as(weight)


def _open_loop_run(
    make: Callable[[list[nn.Parameter]], torch.optim.Optimizer], dtype: torch.dtype, steps: int = 8
) -> tuple[list[Tensor], list[Tensor], torch.optim.Optimizer, list[nn.Parameter]]:
    """A conv-shaped weight (gradients orthogonal to its rows: the channel view fires), a matrix and a
    vector, all starting from the same bf16-representable values, fed the same seeded gradients."""
    generator = torch.Generator().manual_seed(0)
    shapes = [(16, 8, 3, 3), (10, 20), (10,)]
    start = [(0.5 * torch.randn(shape, generator=generator)).to(torch.bfloat16).float() for shape in shapes]
    params = [nn.Parameter(value.to(dtype)) for value in start]
    optimizer = make(params)
    gradients = torch.Generator().manual_seed(1)
    for _ in range(steps):
        grads = [torch.randn(param.shape, generator=gradients) for param in params]
        grads[0] = _orthogonal_rows(grads[0], params[0])
        for param, grad in zip(params, grads):
            param.grad = grad.to(dtype)
        optimizer.step()
    return [param.detach().float() for param in params], start, optimizer, params


@pytest.mark.parametrize("path", UNFUSED_STRATEGIES)
@pytest.mark.parametrize("method", ["adamp", "sgdp"])
def test_bfloat16_close_to_float32(monkeypatch: pytest.MonkeyPatch, method: str, path: str) -> None:
    """bf16 parameters: steps run, parameters and state stay bf16 and finite, and each parameter's
    displacement over 8 steps matches the float32 run's within 10% (in norm).

    Why 10%: bf16 keeps 8 significant bits, so every step rounds each weight by up to 2^-9 of
    its size (and the bf16 moments by as much); over 8 steps AdamP moves the weights by ~10%
    of their size, so those roundings amount to a few percent of the displacement (measured
    3-6% for AdamP, about 1% for SGDP). A bf16 path that drops a step, a state update or
    the decay is off by far more.
    """
    hparams = HPARAMS[method]
    with strategy(monkeypatch, path) as (extra, log):
        half, start, optimizer, params = _open_loop_run(lambda ps: OURS[method](ps, **hparams, **extra), torch.bfloat16)
        full, _, _, _ = _open_loop_run(lambda ps: OURS[method](ps, **hparams, **extra), torch.float32)
    check_strategy_ran(path, log)
    for param in params:
        assert param.dtype == torch.bfloat16 and bool(torch.isfinite(param).all())
        for key, value in optimizer.state[param].items():
            if isinstance(value, Tensor) and key != "step":  # the count: float32, as in torch.optim
                assert value.dtype == torch.bfloat16 and bool(torch.isfinite(value).all())
    for low, high, begin in zip(half, full, start):
        moved = (high - begin).norm().item()
        assert moved > 0.05 * begin.norm().item(), "vacuous: the float32 run hardly moved"
        assert (low - high).norm().item() <= 0.1 * moved


def _rotating_target_norm_ratio(make: Callable[[list[nn.Parameter]], Any], dtype: torch.dtype) -> float:
    """||W_T|| / ||W_0|| for 8 unit rows tracking a slowly rotating target through W_i / ||W_i||
    (the claim check's toy, 200 steps): the loss is scale-invariant row by row, so any norm
    change comes from the optimizer, and AdamP/SGDP should keep it near 1."""
    generator = torch.Generator().manual_seed(0)
    first, second, start = torch.linalg.qr(torch.randn(64, 3, generator=generator, dtype=torch.float64))[0].unbind(1)
    weight = nn.Parameter(start.view(1, 64).repeat(8, 1).to(dtype))
    optimizer = make([weight])
    initial = weight.detach().float().norm().item()
    for step in range(200):
        target = (math.cos(0.01 * step) * first + math.sin(0.01 * step) * second).to(dtype)
        optimizer.zero_grad()
        (weight / weight.norm(dim=1, keepdim=True) - target).square().sum().backward()
        optimizer.step()
    return weight.detach().float().norm().item() / initial


@pytest.mark.parametrize("path", UNFUSED_STRATEGIES)
@pytest.mark.parametrize(
    ("method", "hparams"),
    [("adamp", dict(lr=3e-3)), ("sgdp", dict(lr=0.03, momentum=0.9, nesterov=True))],
    ids=["adamp", "sgdp-nesterov"],
)
def test_bfloat16_projection_keeps_the_norm(
    monkeypatch: pytest.MonkeyPatch, method: str, hparams: dict[str, Any], path: str
) -> None:
    """bf16 scale-invariant weights: the norm evolves as under the official optimizer in bf16 (within 0.05),
    far from the unprojected optimizer (delta = 0), on every path."""
    reference = _rotating_target_norm_ratio(lambda ps: OFFICIAL[method](ps, **hparams), torch.bfloat16)
    unprojected = _rotating_target_norm_ratio(lambda ps: OURS[method](ps, delta=0.0, **hparams), torch.bfloat16)
    assert unprojected - reference > 0.2, "vacuous: projecting makes no difference here"
    with strategy(monkeypatch, path) as (extra, log):
        ratio = _rotating_target_norm_ratio(lambda ps: OURS[method](ps, **hparams, **extra), torch.bfloat16)
    check_strategy_ran(path, log)
    assert abs(ratio - reference) <= 0.05, (
        f"norm ratio {ratio:.3f}, official {reference:.3f}, unprojected {unprojected:.3f}"
    )


@pytest.mark.parametrize("path", UNFUSED_STRATEGIES)
def test_bfloat16_sgdp_in_place_projection_keeps_the_norm(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    """SGDP without Nesterov projects its bf16 buffer itself (no folding), so every path keeps the norm."""
    hparams = dict(lr=0.03, momentum=0.9)
    reference = _rotating_target_norm_ratio(lambda ps: official.SGDP(ps, **hparams), torch.bfloat16)
    with strategy(monkeypatch, path) as (extra, log):
        ratio = _rotating_target_norm_ratio(lambda ps: SGDP(ps, **hparams, **extra), torch.bfloat16)
    check_strategy_ran(path, log)
    assert abs(ratio - reference) <= 0.05, f"norm ratio {ratio:.3f}, official {reference:.3f}"


# ---------------------------------------------------------------------------------------------
# Real sizes, unpatched constants


@pytest.mark.parametrize("path", ["blocked", "foreach", "fused"])
@pytest.mark.parametrize("method", ["adamp", "sgdp"])
def test_large_weights_with_real_block_sizes(monkeypatch: pytest.MonkeyPatch, method: str, path: str) -> None:
    """A 4.2 MB float64 weight (above BLOCK_BYTES = 4 MiB: walked in two row blocks on CPU; alone in its
    foreach batch; in row chunks of the real FUSED_GRAIN in the fused kernel, each weight its own cache
    batch) with gradients orthogonal to its rows, and a 4.8 MB one with generic gradients: 3 steps equal the
    official ones (atol 1e-12)."""
    assert multitensor.BLOCK_BYTES < 520 * 1024 * 8
    assert ours_fused.FUSED_BATCH_BYTES < 2 * 520 * 1024 * 8  # weight and gradient exceed one batch
    generator = torch.Generator().manual_seed(2)
    starts = [torch.randn(shape, generator=generator, dtype=torch.float64) for shape in ((520, 1024), (600, 1000))]
    grads = [[torch.randn(start.shape, generator=generator, dtype=torch.float64) for start in starts] for _ in range(3)]
    hparams = {**HPARAMS[method], "nesterov": False}
    results = []
    with strategy(monkeypatch, path) as (extra, log):
        for make in (lambda ps: OFFICIAL[method](ps, **hparams), lambda ps: OURS[method](ps, **hparams, **extra)):
            params = [nn.Parameter(start.clone()) for start in starts]
            optimizer = make(params)
            for raw in grads:
                params[0].grad = _orthogonal_rows(raw[0], params[0])
                params[1].grad = raw[1].clone()
                optimizer.step()
            results.append(params)
    if path == "blocked":  # row-blocked with the real BLOCK_BYTES: channel view on one, nothing on the other
        assert log.blocked_calls == 3 and log.foreach_calls == 0
        assert sorted(set(log.large_weight_modes)) == [((520, 1024), 1), ((600, 1000), 0)]
    else:
        check_strategy_ran(path, log)
    for reference, ours in zip(*results):
        torch.testing.assert_close(ours.detach(), reference.detach(), rtol=0, atol=1e-12)
