"""diffGrad pinned to its definition: closed forms, the Adam limit, the aliasing guard, both paths.

Each test fails for a specific wrong implementation: the v1 aliasing bug (xi = 0.5 at step 1,
previous_grad following p.grad), the raw instead of the decayed gradient in previous_grad, a
wrong friction formula, or a multi-tensor path that drifts from the per-tensor one.
"""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
from gradhub_diffgrad.diffgrad import DiffGrad
from torch import nn

PATH_OPTIONS = {"per-tensor": {"foreach": False}, "multi-tensor": {"foreach": True}, "fused": {"fused": True}}
PATHS = pytest.mark.parametrize("path", list(PATH_OPTIONS))


@PATHS
def test_first_step_closed_form(path: str) -> None:
    """Step 1: m_hat = g, v_hat = g^2, xi = sigmoid(|g|), so p1 = p0 - lr * sigmoid(|g|) * sign(g) (hand-computed)."""
    param = nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    param.grad = torch.tensor([0.5, -3.0], dtype=torch.float64)
    DiffGrad([param], lr=1e-3, **PATH_OPTIONS[path]).step()
    expected = torch.tensor([0.999377541, -1.999047426], dtype=torch.float64)
    torch.testing.assert_close(param.detach(), expected, rtol=0, atol=1e-7)
    friction = torch.sigmoid(torch.tensor([0.5, 3.0], dtype=torch.float64))
    exact = torch.tensor([1.0, -2.0], dtype=torch.float64) - 1e-3 * friction * torch.tensor([1.0, -1.0]).double()
    torch.testing.assert_close(
        param.detach(), exact, rtol=0, atol=1e-9
    )  # eps: 1e-8 next to sqrt(v) = 0.03 |g| at step 1


@PATHS
def test_constant_gradient_halves_adam(path: str) -> None:
    """With a constant gradient, xi = sigmoid(0) = 0.5 from step 2 on: each step is exactly half of Adam's
    from the same moments (m and v follow Adam's exactly); step 1 is sigmoid(|g|) of Adam's.

    eps = 0 for both: torch.optim.Adam adds eps to sqrt(v_hat), diffGrad (official) to sqrt(v), so with
    eps > 0 the two differ by eps's scale (3e-4 relative here on the 1e-3 gradient entry at step 1)."""
    gradient = torch.tensor([[0.3, -1.7, 2.5], [1e-3, -0.05, 4.0]], dtype=torch.float64)
    ours = nn.Parameter(torch.randn(2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    adam_param = nn.Parameter(ours.detach().clone())
    optimizer = DiffGrad([ours], lr=1e-2, eps=0.0, **PATH_OPTIONS[path])
    adam = torch.optim.Adam([adam_param], lr=1e-2, eps=0.0, foreach=False)
    for step in range(1, 21):
        before_ours, before_adam = ours.detach().clone(), adam_param.detach().clone()
        ours.grad, adam_param.grad = gradient.clone(), gradient.clone()
        optimizer.step()
        adam.step()
        ours_delta, adam_delta = ours.detach() - before_ours, adam_param.detach() - before_adam
        friction = torch.sigmoid(gradient.abs()) if step == 1 else torch.full_like(gradient, 0.5)
        torch.testing.assert_close(ours_delta, friction * adam_delta, rtol=1e-12, atol=1e-15)
        state, adam_state = optimizer.state[ours], adam.state[adam_param]
        torch.testing.assert_close(state["exp_avg"], adam_state["exp_avg"], rtol=1e-14, atol=0)
        torch.testing.assert_close(state["exp_avg_sq"], adam_state["exp_avg_sq"], rtol=1e-14, atol=0)
        assert state["step"] == step


@PATHS
def test_friction_uses_gradient_change(path: str) -> None:
    """Step 2 with a changed gradient: the update equals the hand-computed
    lr * sqrt(1-b2^2)/(1-b1^2) * sigmoid(|g1-g2|) * m / (sqrt(v) + eps)."""
    lr, (beta1, beta2), eps = 0.1, (0.9, 0.999), 1e-8
    g1 = torch.tensor([1.0, -0.5, 0.0, 2.0], dtype=torch.float64)
    g2 = torch.tensor([-1.0, -0.5, 3.0, 2.5], dtype=torch.float64)
    param = nn.Parameter(torch.zeros(4, dtype=torch.float64))
    optimizer = DiffGrad([param], lr=lr, **PATH_OPTIONS[path])
    param.grad = g1.clone()
    optimizer.step()
    before = param.detach().clone()
    param.grad = g2.clone()
    optimizer.step()
    m = beta1 * (1 - beta1) * g1 + (1 - beta1) * g2
    v = beta2 * (1 - beta2) * g1**2 + (1 - beta2) * g2**2
    step_size = lr * math.sqrt(1 - beta2**2) / (1 - beta1**2)
    expected = before - step_size * torch.sigmoid((g1 - g2).abs()) * m / (v.sqrt() + eps)
    torch.testing.assert_close(param.detach(), expected, rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(optimizer.state[param]["previous_grad"], g2, rtol=0, atol=0)


@PATHS
def test_previous_grad_is_a_copy(path: str) -> None:
    """Aliasing guard (the v1 bug): changing p.grad in place after step() leaves previous_grad as it was."""
    param = nn.Parameter(torch.ones(3, 2))
    param.grad = torch.full((3, 2), 0.7)
    optimizer = DiffGrad([param], **PATH_OPTIONS[path])
    optimizer.step()
    remembered = optimizer.state[param]["previous_grad"]
    assert remembered.data_ptr() != param.grad.data_ptr()
    param.grad.mul_(0)
    torch.testing.assert_close(remembered, torch.full((3, 2), 0.7), rtol=0, atol=0)
    optimizer.zero_grad(set_to_none=False)  # the pre-2.0 default that made v1 degenerate
    torch.testing.assert_close(optimizer.state[param]["previous_grad"], torch.full((3, 2), 0.7), rtol=0, atol=0)


@PATHS
def test_weight_decay_enters_previous_grad_but_not_p_grad(path: str) -> None:
    """previous_grad = g + wd * p (the decayed gradient, official); p.grad itself is not modified."""
    weight_decay = 0.3
    param = nn.Parameter(torch.tensor([[1.0, -2.0], [0.5, 4.0]], dtype=torch.float64))
    grad = torch.tensor([[0.1, 0.2], [-0.3, 0.0]], dtype=torch.float64)
    param.grad = grad.clone()
    start = param.detach().clone()
    optimizer = DiffGrad([param], lr=1e-2, weight_decay=weight_decay, **PATH_OPTIONS[path])
    optimizer.step()
    torch.testing.assert_close(optimizer.state[param]["previous_grad"], grad + weight_decay * start, rtol=0, atol=1e-15)
    torch.testing.assert_close(param.grad, grad, rtol=0, atol=0)


def _mixed_model(dtype: torch.dtype) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        model = nn.Sequential(
            nn.Conv2d(2, 4, 3), nn.Flatten(), nn.Linear(16, 5), nn.LayerNorm(5), nn.Tanh(), nn.Linear(5, 1)
        ).to(dtype)
    inputs = torch.randn(8, 2, 4, 4, generator=generator, dtype=dtype)
    targets = torch.randn(8, 1, generator=generator, dtype=dtype)
    return model, inputs, targets


def _train(
    model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, targets: torch.Tensor, steps: int
) -> None:
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.mse_loss(model(inputs), targets).backward()
        optimizer.step()


def test_foreach_and_fused_match_per_tensor_float32() -> None:
    """Mixed shapes (4-D conv, 2-D, 1-D), two param groups, weight decay: params and state agree to 1e-6
    on the multi-tensor path (the fused kernel to 1e-5: its float32 sigmoid is a vectorised exp within 2 ulp)."""
    results = []
    for path in PATH_OPTIONS:
        model, inputs, targets = _mixed_model(torch.float32)
        params = list(model.parameters())
        optimizer = DiffGrad(
            [{"params": params[:3]}, {"params": params[3:], "lr": 5e-3}],
            lr=1e-2,
            weight_decay=1e-2,
            **PATH_OPTIONS[path],
        )
        _train(model, optimizer, inputs, targets, 15)
        state = [optimizer.state[p][key] for p in params for key in ("exp_avg", "exp_avg_sq", "previous_grad")]
        results.append([p.detach().clone() for p in params] + state)
    # The fused kernel's float32 differs by more round-off (a 2-ulp exp in the friction, fused
    # multiply-adds), measured up to 2e-5 relative after 15 steps; float64 agrees to 1e-12 (test_peers).
    for other, tolerance in zip(results[1:], (1e-6, 1e-5)):
        for single, multi in zip(results[0], other):
            torch.testing.assert_close(multi, single, rtol=tolerance * 5, atol=tolerance)


@PATHS
def test_state_dict_round_trip(path: str) -> None:
    """10 steps == 4 steps, save (torch.save / weights_only load), fresh optimizer, 6 steps: bit for bit."""
    straight, inputs, targets = _mixed_model(torch.float64)
    optimizer = DiffGrad(straight.parameters(), lr=1e-2, weight_decay=1e-3, **PATH_OPTIONS[path])
    _train(straight, optimizer, inputs, targets, 10)

    model, _, _ = _mixed_model(torch.float64)
    optimizer = DiffGrad(model.parameters(), lr=1e-2, weight_decay=1e-3, **PATH_OPTIONS[path])
    _train(model, optimizer, inputs, targets, 4)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    assert set(saved["optimizer"]["state"][0]) == {"step", "exp_avg", "exp_avg_sq", "previous_grad"}
    resumed, _, _ = _mixed_model(torch.float64)
    resumed.load_state_dict(saved["model"])
    fresh = DiffGrad(resumed.parameters(), lr=1e-2, weight_decay=1e-3, **PATH_OPTIONS[path])
    fresh.load_state_dict(copy.deepcopy(saved["optimizer"]))
    _train(resumed, fresh, inputs, targets, 6)
    for first, second in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(first, second)


@PATHS
def test_bfloat16_state_in_parameter_dtype(path: str) -> None:
    """bf16 parameters: state in bf16 (official; the suite requires the parameter's dtype), steps finite."""
    model, inputs, targets = _mixed_model(torch.bfloat16)
    optimizer = DiffGrad(model.parameters(), lr=1e-2, **PATH_OPTIONS[path])
    _train(model, optimizer, inputs, targets, 5)
    for param in model.parameters():
        assert param.dtype == torch.bfloat16 and torch.isfinite(param).all()
        for key in ("exp_avg", "exp_avg_sq", "previous_grad"):
            assert optimizer.state[param][key].dtype == torch.bfloat16


def test_cache_blocked_multi_tensor_path_equals_per_tensor_on_large_tensors() -> None:
    """Tensors larger than a cache block (512K float64 elements) are stepped slice by slice (and by the
    fused kernel in parallel chunks): the per-tensor results to round-off."""
    import torch
    from gradhub_diffgrad.diffgrad import DiffGrad

    shapes = [(1100, 1000), (300,), (64, 3, 3, 3), (600, 900), (10,)]
    results = []
    for path in PATH_OPTIONS:
        params = [
            torch.nn.Parameter(torch.randn(s, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
            for s in shapes
        ]
        optimizer = DiffGrad(params, lr=1e-2, weight_decay=1e-3, **PATH_OPTIONS[path])
        gradient_generator = torch.Generator().manual_seed(2)
        for _ in range(3):
            for p in params:
                p.grad = torch.randn(p.shape, generator=gradient_generator, dtype=torch.float64)
            optimizer.step()
        state = [optimizer.state[p][key] for p in params for key in ("exp_avg", "exp_avg_sq", "previous_grad")]
        results.append([p.detach() for p in params] + state)
    for other in results[1:]:
        for single, multi in zip(results[0], other):
            torch.testing.assert_close(multi, single, rtol=1e-12, atol=1e-15)
