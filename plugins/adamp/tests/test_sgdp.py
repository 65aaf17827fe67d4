"""SGDP pinned to the paper and the official code on tiny inputs.

Closed-form steps (including the official in-place projection of the momentum buffer),
the reduction to torch.optim.SGD (delta = 0), the official buffer convention (zero init,
``(1 - dampening) g`` from the first step), the ``1 / (1 - momentum)`` decay and Nesterov.
Every test runs on both paths (``foreach`` False and True).
"""

from __future__ import annotations

from collections.abc import Callable

import adamp as official
import pytest
import torch
from adamp_testkit import random_steps
from gradhub_adamp.sgdp import SGDP
from torch import Tensor, nn

F64 = torch.float64
MakeOptimizer = Callable[[list[nn.Parameter]], torch.optim.Optimizer]
PATHS = pytest.mark.parametrize("foreach", [False, True], ids=["per-tensor", "multi-tensor"])


def _tensor(*rows: list[float]) -> Tensor:
    return torch.tensor(list(rows), dtype=F64)


@PATHS
@pytest.mark.parametrize("nesterov", [False, True])
def test_closed_form_two_steps(foreach: bool, nesterov: bool) -> None:
    """w0 = [3, 4], g0 = [-4, 3] (orthogonal to w0), lr 0.1, momentum 0.9; then g1 orthogonal to w1.

    Step 1: b = g0, projection a no-op (b is already tangential): w1 = [3.4, 3.7] (Nesterov:
    d = g0 + 0.9 b = 1.9 g0, w1 = [3.76, 3.43]). Step 2 (no Nesterov, g1 = [-3.7, 3.4]): b = 0.9 g0 + g1 =
    [-7.3, 6.1], <w1, b> = -2.25, ||w1||^2 = 25.25, so d' = b + (2.25 / 25.25) w1 and the
    official code leaves d' IN the buffer (it projects the buffer in place). With Nesterov
    the buffer keeps the unprojected b and d = g1 + 0.9 b is projected.
    """
    weight = nn.Parameter(_tensor([3.0, 4.0]))
    optimizer = SGDP([weight], lr=0.1, momentum=0.9, nesterov=nesterov, foreach=foreach)
    weight.grad = _tensor([-4.0, 3.0])
    optimizer.step()
    first = _tensor([3.76, 3.43]) if nesterov else _tensor([3.4, 3.7])
    torch.testing.assert_close(weight.detach(), first, rtol=0, atol=1e-7)

    grad = _tensor([-first[0, 1].item(), first[0, 0].item()])  # orthogonal to w1
    weight.grad = grad.clone()
    optimizer.step()
    buffer = 0.9 * _tensor([-4.0, 3.0]) + grad  # step 1 left g0 in the buffer (projecting it changed nothing)
    direction = grad + 0.9 * buffer if nesterov else buffer
    radial = (direction * first).sum() / first.square().sum()
    projected = direction - radial * first
    torch.testing.assert_close(weight.detach(), first - 0.1 * projected, rtol=0, atol=1e-7)
    stored = optimizer.state[weight]["momentum"]
    torch.testing.assert_close(stored, buffer if nesterov else projected, rtol=0, atol=1e-7)
    if not nesterov:
        assert abs(radial.item() + 2.25 / 25.25) < 1e-12
        assert (stored - buffer).abs().max().item() > 0.3, "the buffer must hold the projected direction"


SHAPES = [(4, 3, 3, 3), (4, 3, 3, 3), (5, 7), (6,), ()]


@PATHS
@pytest.mark.parametrize("nesterov", [False, True])
def test_delta_zero_is_sgd(foreach: bool, nesterov: bool) -> None:
    """SGDP(delta=0, weight_decay=0, dampening=0) is torch.optim.SGD(momentum, nesterov).

    10 random float64 steps. SGD sets the buffer to g on its first step; SGDP starts from
    zero and adds (1 - dampening) g, the same when dampening = 0. Not bitwise on every path:
    SGD computes g + momentum * b with one fused ``add(alpha=)`` and the per-tensor path
    rounds the product first (one ulp, 4e-16 measured); hence atol 1e-14.
    """
    hparams = dict(lr=0.05, momentum=0.8, nesterov=nesterov)
    ours = random_steps(lambda ps: SGDP(ps, delta=0.0, foreach=foreach, **hparams), SHAPES, seed=7)
    sgd = random_steps(lambda ps: torch.optim.SGD(ps, foreach=False, **hparams), SHAPES, seed=7)
    for mine, theirs in zip(ours, sgd):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-14)
    projected = random_steps(lambda ps: SGDP(ps, delta=1e6, foreach=foreach, **hparams), SHAPES, seed=7)
    for mine, theirs in zip(projected[:3], sgd[:3]):
        assert (mine - theirs).abs().max().item() > 1e-3, "with every matrix projected SGDP must differ"


@PATHS
def test_first_step_buffer_convention_with_dampening(foreach: bool) -> None:
    """Official convention: the buffer starts at zero and takes (1 - dampening) g on the first step too.

    torch.optim.SGD sets the buffer to g on the first step, so with dampening = 0.5 the two
    differ from the first step on; SGDP must follow the official code.
    """
    grads = [torch.randn(7, generator=torch.Generator().manual_seed(seed), dtype=F64) for seed in range(3)]
    hparams = dict(lr=0.1, momentum=0.9, dampening=0.5)
    weight, reference, sgd_weight = (nn.Parameter(torch.ones(7, dtype=F64)) for _ in range(3))
    ours = SGDP([weight], foreach=foreach, **hparams)
    theirs = official.SGDP([reference], **hparams)
    sgd = torch.optim.SGD([sgd_weight], **hparams)
    for index, grad in enumerate(grads):
        for param, optimizer in ((weight, ours), (reference, theirs), (sgd_weight, sgd)):
            param.grad = grad.clone()
            optimizer.step()
        if index == 0:
            torch.testing.assert_close(ours.state[weight]["momentum"], 0.5 * grad, rtol=0, atol=0)
    torch.testing.assert_close(weight.detach(), reference.detach(), rtol=0, atol=1e-15)
    assert (weight.detach() - sgd_weight.detach()).abs().max().item() > 1e-2


@PATHS
@pytest.mark.filterwarnings("ignore:.*all-zero gradient:UserWarning")  # zero gradients on purpose
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_decoupled_decay_scaled_by_one_over_one_minus_momentum(foreach: bool, momentum: float) -> None:
    """Decay w <- w (1 - lr wd f / (1 - momentum)) before the step, f = wd_ratio for projected weights.

    A zero gradient isolates the decay (nothing else moves): the matrix passes the test
    (cos 0) and decays with wd_ratio, the vector with 1; momentum 0.9 multiplies both by 10.
    """
    lr, decay, ratio = 0.1, 0.02, 0.3
    matrix = nn.Parameter(torch.full((2, 3), 2.0, dtype=F64))
    vector = nn.Parameter(torch.full((3,), 2.0, dtype=F64))
    optimizer = SGDP([matrix, vector], lr=lr, momentum=momentum, weight_decay=decay, wd_ratio=ratio, foreach=foreach)
    for param in (matrix, vector):
        param.grad = torch.zeros_like(param)
    optimizer.step()
    scale = 1 / (1 - momentum)
    torch.testing.assert_close(matrix.detach(), torch.full((2, 3), 2 * (1 - lr * decay * ratio * scale), dtype=F64))
    torch.testing.assert_close(vector.detach(), torch.full((3,), 2 * (1 - lr * decay * scale), dtype=F64))


@PATHS
def test_nesterov_manual_formula(foreach: bool) -> None:
    """Nesterov: d = g + momentum b is projected, the buffer b is not.

    Step 1 with g0 = w0 (|cos| 1: not projected): b = w0, d = 1.9 w0, w1 = 0.81 w0.
    Step 2 with g1 orthogonal to each row of w1: b = 0.9 w0 + g1 and d = 1.9 g1 + 0.81 w0,
    whose radial part 0.81 w0 the channel view removes (up to eps / ||w_i||); the buffer
    keeps b unprojected.
    """
    generator = torch.Generator().manual_seed(5)
    start = torch.randn(4, 2, 3, generator=generator, dtype=F64)
    weight = nn.Parameter(start.clone())
    optimizer = SGDP([weight], lr=0.1, momentum=0.9, nesterov=True, foreach=foreach)
    weight.grad = start.clone()
    optimizer.step()
    torch.testing.assert_close(weight.detach(), 0.81 * start, rtol=1e-15, atol=0)

    rows = start.reshape(4, -1)
    unit = rows / rows.norm(dim=1, keepdim=True)
    raw = torch.randn(4, 6, generator=generator, dtype=F64)
    grad = (raw - (raw * unit).sum(1, keepdim=True) * unit).view_as(start)
    weight.grad = grad.clone()
    optimizer.step()
    buffer = 0.9 * start + grad
    direction = (grad + 0.9 * buffer).reshape(4, -1)
    current = 0.81 * rows
    unit_eps = current / (current.norm(dim=1, keepdim=True) + 1e-8)
    projected = direction - unit_eps * (unit_eps * direction).sum(1, keepdim=True)
    torch.testing.assert_close(projected, 1.9 * grad.reshape(4, -1), rtol=0, atol=1e-7)
    torch.testing.assert_close(weight.detach(), 0.81 * start - 0.1 * projected.view_as(start), rtol=0, atol=1e-14)
    torch.testing.assert_close(optimizer.state[weight]["momentum"], buffer, rtol=0, atol=1e-15)
