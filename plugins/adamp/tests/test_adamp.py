"""AdamP pinned to the paper and the official code on tiny inputs (Algorithm 2 step by step).

Every test runs on both paths: ``foreach=False`` (per tensor) and ``foreach=True`` (the CPU
multi-tensor strategy); ``test_paths.py`` and ``test_parity.py`` cover the other strategies.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import adamp as official
import pytest
import torch
from adamp_testkit import random_steps
from gradhub_adamp.adamp import AdamP
from torch import Tensor, nn

F64 = torch.float64
MakeOptimizer = Callable[[list[nn.Parameter]], torch.optim.Optimizer]
PATHS = pytest.mark.parametrize("foreach", [False, True], ids=["per-tensor", "multi-tensor"])


def _step_once(param: Tensor, grad: Tensor, **hparams: object) -> tuple[Tensor, dict[str, object]]:
    weight = nn.Parameter(param.clone())
    optimizer = AdamP([weight], **hparams)
    weight.grad = grad.clone()
    optimizer.step()
    return weight.detach(), optimizer.state[weight]


@PATHS
@pytest.mark.parametrize(
    ("weight_decay", "expected"), [(0.0, [3.112, 3.916]), (0.1, [3.109, 3.912])], ids=["no-decay", "decay"]
)
def test_closed_form_first_step(foreach: bool, weight_decay: float, expected: list[float]) -> None:
    """Orthogonal gradient: w = [[3, 4]], g = [[-4, 3]] (orthogonal), lr 0.1.

    First Adam step u = g / (|g| + eps) ~ [-1, 1]; w^ = [0.6, 0.8], <w^, u> = 0.2, so
    u' = [-1.12, 0.84] and w <- w - 0.1 u' = [3.112, 3.916]. With weight_decay 0.1 the
    projected weight decays by 1 - 0.1 * 0.1 * wd_ratio (0.1) = 0.999 first: [3.109, 3.912].
    """
    param = torch.tensor([[3.0, 4.0]], dtype=F64)
    grad = torch.tensor([[-4.0, 3.0]], dtype=F64)
    result, state = _step_once(param, grad, lr=0.1, weight_decay=weight_decay, foreach=foreach)
    torch.testing.assert_close(result, torch.tensor([expected], dtype=F64), rtol=0, atol=1e-6)
    assert state["step"] == 1
    torch.testing.assert_close(state["exp_avg"], 0.1 * grad)
    torch.testing.assert_close(state["exp_avg_sq"], 0.001 * grad.square())


SHAPES = [(4, 3, 3, 3), (4, 3, 3, 3), (5, 7), (6,), ()]


@PATHS
@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_delta_zero_is_adamw(foreach: bool, weight_decay: float) -> None:
    """delta = 0 never projects, so AdamP is AdamW (decay lr * wd before the step).

    10 random float64 steps. Not bitwise: torch's AdamW applies ``addcdiv_`` while AdamP (like
    the official code) divides and then adds, and the vectorised CPU kernels round those
    differently (one ulp, measured 1.1e-16 per step on values ~1); hence atol 1e-14.
    """
    hparams = dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=weight_decay)
    ours = random_steps(lambda ps: AdamP(ps, delta=0.0, foreach=foreach, **hparams), SHAPES)
    adamw = random_steps(lambda ps: torch.optim.AdamW(ps, foreach=False, **hparams), SHAPES)
    for mine, theirs in zip(ours, adamw):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-14)


@PATHS
@pytest.mark.parametrize("delta", [0.0, 0.1, 1e6])
def test_one_dimensional_params_follow_adamw_whatever_delta(foreach: bool, delta: float) -> None:
    """Biases/norm parameters/scalars are never projected and decay by the full factor.

    delta = 1e6 makes every matrix "scale-invariant"; the 1-D and 0-d parameters still take
    exactly AdamW's steps (and AdamW's decay, not wd_ratio's).
    """
    shapes = [(6,), (6,), (11,), ()]
    hparams = dict(lr=0.01, weight_decay=0.1)
    ours = random_steps(lambda ps: AdamP(ps, delta=delta, foreach=foreach, **hparams), shapes)
    adamw = random_steps(lambda ps: torch.optim.AdamW(ps, foreach=False, **hparams), shapes)
    for mine, theirs in zip(ours, adamw):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-14)


@PATHS
def test_projection_changes_matrices_when_delta_is_huge(foreach: bool) -> None:
    """The counterpart of the two tests above: with delta = 1e6 every matrix is projected, so
    AdamP is NOT AdamW on matrices (proves the equivalences are not vacuous)."""
    hparams = dict(lr=0.01, weight_decay=0.1)
    ours = random_steps(lambda ps: AdamP(ps, delta=1e6, foreach=foreach, **hparams), SHAPES)
    adamw = random_steps(lambda ps: torch.optim.AdamW(ps, foreach=False, **hparams), SHAPES)
    for mine, theirs in zip(ours[:3], adamw[:3]):
        assert (mine - theirs).abs().max().item() > 1e-3


@PATHS
@pytest.mark.parametrize("shape", [(7,), (3, 5)], ids=["vector", "matrix"])
def test_nesterov_matches_manual_formula(foreach: bool, shape: tuple[int, ...]) -> None:
    """Nesterov: two steps with nesterov=True equal (b1 m + (1 - b1) g) / denom, BOTH terms divided.

    The second step is the informative one (m != (1 - b1) g there). delta = 0 keeps the
    projection out (the projected case is the next test). The variant sometimes attributed
    to pytorch_optimizer, b1 m + (1 - b1) g / denom, is shown to differ by > 1e-3.
    """
    beta1, beta2, eps, lr = 0.9, 0.999, 1e-8, 0.01
    generator = torch.Generator().manual_seed(3)
    start = torch.randn(shape, generator=generator, dtype=F64)
    grads = [torch.randn(shape, generator=generator, dtype=F64) for _ in range(2)]
    weight = nn.Parameter(start.clone())
    optimizer = AdamP([weight], lr=lr, betas=(beta1, beta2), eps=eps, nesterov=True, delta=0.0, foreach=foreach)
    for grad in grads:
        weight.grad = grad.clone()
        optimizer.step()

    expected = start.clone()
    m = torch.zeros(shape, dtype=F64)
    v = torch.zeros(shape, dtype=F64)
    other = start.clone()
    for step, grad in enumerate(grads, start=1):
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad * grad
        denom = v.sqrt() / math.sqrt(1 - beta2**step) + eps
        expected = expected - lr / (1 - beta1**step) * (beta1 * m + (1 - beta1) * grad) / denom
        other = other - lr / (1 - beta1**step) * (beta1 * m + (1 - beta1) * grad / denom)
    torch.testing.assert_close(weight.detach(), expected, rtol=0, atol=1e-14)
    assert (weight.detach() - other).abs().max().item() > 1e-3


@PATHS
def test_nesterov_projected_single_step(foreach: bool) -> None:
    """Nesterov with the projection on: u = (b1 m + (1 - b1) g) / denom, then projected row by row.

    A conv-shaped weight with a gradient orthogonal to each row fires the channel view; Adam's
    elementwise division turns g into u ~ 0.19 sign(g), which does have a radial part. The
    expected step is the manual Nesterov direction minus that radial part, row by row.
    """
    generator = torch.Generator().manual_seed(4)
    start = torch.randn(6, 3, 3, 3, generator=generator, dtype=F64)
    rows = start.reshape(6, -1)
    unit = rows / rows.norm(dim=1, keepdim=True)
    raw = torch.randn(6, 27, generator=generator, dtype=F64)
    grad = (raw - (raw * unit).sum(1, keepdim=True) * unit).view_as(start)
    result, _ = _step_once(start, grad, lr=0.01, nesterov=True, foreach=foreach)
    m = 0.1 * grad
    denom = (0.001 * grad * grad).sqrt() / math.sqrt(0.001) + 1e-8
    update = ((0.9 * m + 0.1 * grad) / denom).reshape(6, -1)
    unit_eps = rows / (rows.norm(dim=1, keepdim=True) + 1e-8)
    projected = update - unit_eps * (unit_eps * update).sum(1, keepdim=True)
    expected = start - 0.01 / 0.1 * projected.view_as(start)
    torch.testing.assert_close(result, expected, rtol=0, atol=1e-14)
    unprojected = start - 0.01 / 0.1 * update.view_as(start)
    assert (result - unprojected).abs().max().item() > 1e-3, "vacuous: the projection changed nothing"


def _conv_bn(seed: int) -> tuple[nn.Module, Tensor]:
    """conv (no bias) -> BatchNorm (eps 1e-30: scale-invariant to round-off) -> tanh -> linear readout."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(
            nn.Conv2d(3, 6, 3, bias=False), nn.BatchNorm2d(6, eps=1e-30), nn.Tanh(), nn.Flatten(), nn.Linear(96, 1)
        ).double()
        inputs = torch.randn(8, 3, 6, 6, dtype=F64)
    return model, inputs


def test_bn_preceded_weight_is_scale_invariant() -> None:
    """Scale invariance, premise: scaling a conv weight that feeds BatchNorm (train mode) leaves the loss
    unchanged, so its gradient is orthogonal to it row by row (the channel view must fire)."""
    model, inputs = _conv_bn(0)
    weight = model[0].weight
    loss = model(inputs).square().mean()
    loss.backward()
    with torch.no_grad():
        for factor in (0.5, 3.0):
            weight.mul_(factor)
            torch.testing.assert_close(model(inputs).square().mean(), loss.detach(), rtol=1e-12, atol=0)
            weight.div_(factor)
    rows, grads = weight.detach().reshape(6, -1), weight.grad.reshape(6, -1)
    cosine = (rows * grads).sum(1).abs() / (rows.norm(dim=1) * grads.norm(dim=1))
    assert cosine.max().item() < 1e-10


@PATHS
def test_update_direction_on_the_sphere_matches_adam(foreach: bool) -> None:
    """Scale invariance (Sec. 3): on a BN-preceded weight, one AdamP step and one Adam step move w/||w|| the same way.

    From the same weight and gradient (so the same Adam moments), each row's tangential
    change of w/||w|| is parallel for the two (cos > 1 - 1e-9): the projection only removes
    the radial part, which changes the norm, not the direction on the sphere. AdamP's norm
    grows only to second order (||w'||^2 = ||w||^2 + (step ||u'||)^2, Pythagoras), while
    Adam's changes to first order (checked to be non-vacuous).
    """
    model, inputs = _conv_bn(1)
    weight = model[0].weight
    model(inputs).square().mean().backward()
    start = weight.detach().clone()
    moved = {}
    for name, make in (
        ("adamp", lambda p: AdamP(p, lr=0.05, foreach=foreach)),
        ("adam", lambda p: torch.optim.Adam(p, lr=0.05)),
    ):
        trial = nn.Parameter(start.clone())
        trial.grad = weight.grad.clone()
        make([trial]).step()
        moved[name] = trial.detach().reshape(6, -1)
    rows = start.reshape(6, -1)
    unit = rows / rows.norm(dim=1, keepdim=True)

    def tangential_change(after: Tensor) -> Tensor:
        change = after / after.norm(dim=1, keepdim=True) - unit
        return change - (change * unit).sum(1, keepdim=True) * unit

    first, second = tangential_change(moved["adamp"]), tangential_change(moved["adam"])
    cosine = (first * second).sum(1) / (first.norm(dim=1) * second.norm(dim=1))
    assert cosine.min().item() > 1 - 1e-9

    def pythagoras_gap(after: Tensor) -> Tensor:
        """Relative gap between ||w'||^2 and ||w||^2 + ||w' - w||^2: zero for a tangential step."""
        expected = rows.norm(dim=1).square() + (after - rows).norm(dim=1).square()
        return ((after.norm(dim=1).square() - expected) / expected).abs()

    # eps in w^ = w / (||w|| + eps) leaves a radial residual of relative size eps / ||w|| (~1e-8).
    assert pythagoras_gap(moved["adamp"]).max().item() < 1e-7
    assert pythagoras_gap(moved["adam"]).max().item() > 1e-3, "vacuous: Adam's step had no radial part"


@PATHS
@pytest.mark.filterwarnings("ignore:.*all-zero gradient:UserWarning")  # zero gradients on purpose
def test_zero_gradient_weight_gets_wd_ratio_decay(foreach: bool) -> None:
    """Official edge case: a matrix with an all-zero gradient passes the test (cos 0), so it decays by
    1 - lr * wd * wd_ratio (and does not move otherwise); a vector decays by 1 - lr * wd."""
    matrix = nn.Parameter(torch.full((3, 4), 2.0, dtype=F64))
    vector = nn.Parameter(torch.full((4,), 2.0, dtype=F64))
    optimizer = AdamP([matrix, vector], lr=0.1, weight_decay=0.5, wd_ratio=0.2, foreach=foreach)
    copies = [nn.Parameter(matrix.detach().clone()), nn.Parameter(vector.detach().clone())]
    reference = official.AdamP(copies, lr=0.1, weight_decay=0.5, wd_ratio=0.2)
    for params in (optimizer.param_groups[0]["params"], reference.param_groups[0]["params"]):
        for param in params:
            param.grad = torch.zeros_like(param)
    optimizer.step()
    reference.step()
    torch.testing.assert_close(matrix.detach(), torch.full((3, 4), 2.0 * (1 - 0.1 * 0.5 * 0.2), dtype=F64))
    torch.testing.assert_close(vector.detach(), torch.full((4,), 2.0 * (1 - 0.1 * 0.5), dtype=F64))
    for mine, theirs in zip((matrix, vector), reference.param_groups[0]["params"]):
        torch.testing.assert_close(mine.detach(), theirs.detach(), rtol=0, atol=0)


def test_zero_gradient_weight_warns() -> None:
    """Edge case (frozen weights with zero gradients get wd_ratio decay): 'reproduce but warn'."""
    matrix = nn.Parameter(torch.ones(3, 4, dtype=F64))
    optimizer = AdamP([matrix], lr=0.1, weight_decay=0.5)
    matrix.grad = torch.zeros_like(matrix)
    with pytest.warns(UserWarning):
        optimizer.step()
