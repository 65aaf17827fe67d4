"""TrAct's weight gradient pinned to its closed form, its ridge-regression meaning, its limits and its layers.

Every key criterion is also run on a deliberately wrong variant, which must fail it: the
preconditioner on the wrong side, the patch matrix built without its transpose, A^T A divided by
the batch size instead of the number of rows N.
"""

from __future__ import annotations

import copy

import pytest
import torch
from gradhub_tract import tract_weight_grad
from gradhub_tract.functional import tract_gradient
from gradhub_tract.layers import TrAct, TrActConv2d, TrActLinear, tract
from torch import nn
from torch.autograd.gradcheck import GradcheckError
from torch.nn import functional as F

F64 = torch.float64


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def closed_form(a: torch.Tensor, g: torch.Tensor, l: float) -> torch.Tensor:  # noqa: E741
    """G^T A (A^T A / N + l I)^-1, written directly (explicit inverse, float64)."""
    rows, features = a.shape
    return g.mT @ a @ torch.linalg.inv(a.mT @ a / rows + l * torch.eye(features, dtype=a.dtype))


def linear_weight_grad(layer: nn.Module, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The weight gradient the layer produces for a loss whose dL/dz is ``g`` (L = sum(z * g))."""
    (grad,) = torch.autograd.grad((layer(x) * g).sum(), [layer.weight])
    return grad


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual - expected).abs().max() / expected.abs().max())


# Wrong variants of the weight gradient, for the criteria below to reject.
def wrong_side(a: torch.Tensor, g: torch.Tensor, l: float) -> torch.Tensor:  # noqa: E741
    """(A^T A / N + l I)^-1 G_W: the preconditioner on the left (needs m == n)."""
    rows, features = a.shape
    return torch.linalg.inv(a.mT @ a / rows + l * torch.eye(features, dtype=a.dtype)) @ (g.mT @ a)


def batch_normalised(a: torch.Tensor, g: torch.Tensor, l: float, batch: int) -> torch.Tensor:  # noqa: E741
    """G_W (A^T A / b + l I)^-1: normalised by the batch size b instead of the N rows (tokens, patches)."""
    features = a.shape[1]
    return g.mT @ a @ torch.linalg.inv(a.mT @ a / batch + l * torch.eye(features, dtype=a.dtype))


# 1. The closed form
@pytest.mark.parametrize("inv_type", ["inverse", "cholesky"])
def test_linear_weight_grad_is_the_closed_form(inv_type: str) -> None:
    generator = _generator()
    a = torch.randn(30, 8, generator=generator, dtype=F64)
    g = torch.randn(30, 5, generator=generator, dtype=F64)
    layer = TrActLinear(8, 5, l=0.1, inv_type=inv_type, dtype=F64)
    grad = linear_weight_grad(layer, a, g)
    expected = closed_form(a, g, 0.1)
    assert relative_error(grad, expected) < 1e-10
    assert relative_error(tract_weight_grad(a, g, l=0.1, inv_type=inv_type), expected) < 1e-10
    plain = g.mT @ a
    assert relative_error(plain, expected) > 0.1  # the criterion tells TrAct from the plain gradient


def test_closed_form_rejects_the_preconditioner_on_the_wrong_side() -> None:
    generator = _generator(1)
    a = torch.randn(30, 8, generator=generator, dtype=F64)
    g = torch.randn(30, 8, generator=generator, dtype=F64)  # m == n, so the wrong side is computable
    assert relative_error(linear_weight_grad(TrActLinear(8, 8, l=0.1, dtype=F64), a, g), closed_form(a, g, 0.1)) < 1e-10
    assert relative_error(wrong_side(a, g, 0.1), closed_form(a, g, 0.1)) > 0.1


# 2. The ridge-regression interpretation
def ridge_step(a: torch.Tensor, w_old: torch.Tensor, g: torch.Tensor, eta: float, l: float) -> torch.Tensor:  # noqa: E741
    """argmin_W ||A W^T - z*||^2 + l N ||W - W_old||^2 with z* = A W_old^T - eta N G, by stacked least squares."""
    rows, features = a.shape
    z_star = a @ w_old.mT - eta * rows * g
    scale = (l * rows) ** 0.5
    stacked = torch.cat([a, scale * torch.eye(features, dtype=a.dtype)])
    target = torch.cat([z_star, scale * w_old.mT])
    return torch.linalg.lstsq(stacked, target, driver="gelsd").solution.mT


@pytest.mark.parametrize(("rows", "features"), [(30, 8), (4, 27)])
def test_tract_step_is_the_ridge_minimiser_of_the_stepped_activations(rows: int, features: int) -> None:
    generator = _generator(2)
    a = torch.randn(rows, features, generator=generator, dtype=F64)
    g = torch.randn(rows, features, generator=generator, dtype=F64)  # m == n: the wrong side is computable
    layer = TrActLinear(features, features, bias=False, l=0.3, dtype=F64)
    w_old = layer.weight.detach().clone()
    eta = 0.05
    expected = ridge_step(a, w_old, g, eta, 0.3)
    stepped = w_old - eta * linear_weight_grad(layer, a, g)
    assert float((stepped - expected).abs().max()) < 1e-9
    for wrong in (wrong_side(a, g, 0.3), g.mT @ a, batch_normalised(a, g, 0.3, rows // 2)):
        assert float((w_old - eta * wrong - expected).abs().max()) > 1e-4


# 3. The two branches
@pytest.mark.parametrize(("rows", "features"), [(4, 27), (26, 27), (27, 27), (40, 27)])
@pytest.mark.parametrize("inv_type", ["inverse", "cholesky"])
def test_both_branches_equal_the_direct_formula(rows: int, features: int, inv_type: str) -> None:
    generator = _generator(3)
    a = torch.randn(rows, features, generator=generator, dtype=F64)
    g = torch.randn(rows, 6, generator=generator, dtype=F64)
    assert relative_error(tract_gradient(a, g, 0.1, inv_type), closed_form(a, g, 0.1)) < 1e-9


def test_woodbury_form_of_the_paper_equals_the_push_through_form() -> None:
    """The official small-batch expression (1/l) G^T (I - (1/l) K (K/l + I)^-1) A, K = A A^T / N."""
    generator = _generator(4)
    a = torch.randn(5, 27, generator=generator, dtype=F64)
    g = torch.randn(5, 4, generator=generator, dtype=F64)
    l, eye = 0.2, torch.eye(5, dtype=F64)  # noqa: E741
    k = a @ a.mT / 5
    official = g.mT @ (eye - k @ torch.linalg.inv(k / l + eye) / l) @ a / l
    assert relative_error(tract_gradient(a, g, l, "inverse"), official) < 1e-10


def test_empty_batch_gives_a_zero_weight_gradient() -> None:
    layer = TrActLinear(4, 3, dtype=F64)
    x = torch.zeros(0, 4, dtype=F64)
    layer(x).sum().backward()
    assert layer.weight.grad is not None and not layer.weight.grad.any()


# 4. Conv2d equals the Linear formula on unfold patches; its other outputs are nn.Conv2d's
CONVS = [
    dict(stride=1, padding=0),
    dict(stride=2, padding=0),
    dict(stride=1, padding=1),
    dict(stride=2, padding=1),
    dict(stride=1, padding=1, dilation=2),
    dict(stride=(2, 1), padding=(1, 0)),
]


def _patches(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """The (B H_out W_out, C k_h k_w) patch matrix, rows in (b, h, w) order."""
    unfolded = F.unfold(x, conv.kernel_size, conv.dilation, conv.padding, conv.stride)
    return unfolded.transpose(1, 2).reshape(-1, unfolded.shape[1])


@pytest.mark.parametrize("geometry", CONVS, ids=str)
@pytest.mark.parametrize("batch", [1, 3])
def test_conv2d_equals_the_linear_formula_on_unfold_patches(geometry: dict, batch: int) -> None:
    generator = _generator(5)
    x = torch.randn(batch, 2, 7, 6, generator=generator, dtype=F64, requires_grad=True)
    ours = TrActConv2d(2, 5, 3, l=0.1, dtype=F64, **geometry)
    plain = nn.Conv2d(2, 5, 3, dtype=F64, **geometry)
    plain.load_state_dict(ours.state_dict())
    out = ours(x)
    g = torch.randn(out.shape, generator=generator, dtype=F64)
    grads = torch.autograd.grad((out * g).sum(), [x, ours.weight, ours.bias])
    plain_out = plain(x)
    plain_grads = torch.autograd.grad((plain_out * g).sum(), [x, plain.weight, plain.bias])
    assert torch.equal(out, plain_out)
    assert torch.equal(grads[0], plain_grads[0])  # the input gradient: exactly nn.Conv2d's
    assert torch.equal(grads[2], plain_grads[2])  # the bias gradient too
    a = _patches(x.detach(), plain)
    g2d = g.permute(0, 2, 3, 1).reshape(-1, 5)
    expected = closed_form(a, g2d, 0.1).reshape(ours.weight.shape)
    assert relative_error(grads[1], expected) < 1e-10
    # wrong variants: patches reshaped without the transpose; A^T A over the batch size only
    wrong_patches = F.unfold(x.detach(), 3, ours.dilation, ours.padding, ours.stride).reshape(a.shape)
    if batch > 1 or a.shape[0] > 1:
        wrong = closed_form(wrong_patches, g2d, 0.1).reshape(ours.weight.shape)
        assert relative_error(wrong, expected) > 1e-3
    wrong = batch_normalised(a, g2d, 0.1, batch).reshape(ours.weight.shape)
    assert relative_error(wrong, expected) > 1e-3


def test_float32_forward_input_and_bias_gradients_are_bit_for_bit_the_plain_layers() -> None:
    generator = _generator(6)
    x = torch.randn(4, 3, 9, 9, generator=generator, requires_grad=True)
    ours = TrActConv2d(3, 8, 3, stride=2, padding=1)
    plain = nn.Conv2d(3, 8, 3, stride=2, padding=1)
    plain.load_state_dict(ours.state_dict())
    g = torch.randn(4, 8, 5, 5, generator=generator)
    ours_grads = torch.autograd.grad((ours(x) * g).sum(), [x, ours.bias])
    plain_grads = torch.autograd.grad((plain(x) * g).sum(), [x, plain.bias])
    assert torch.equal(ours(x), plain(x))
    assert all(torch.equal(a, b) for a, b in zip(ours_grads, plain_grads))
    tokens = torch.randn(2, 7, 6, generator=generator, requires_grad=True)
    linear, reference = TrActLinear(6, 4), nn.Linear(6, 4)
    reference.load_state_dict(linear.state_dict())
    gz = torch.randn(2, 7, 4, generator=generator)
    ours_grads = torch.autograd.grad((linear(tokens) * gz).sum(), [tokens, linear.bias])
    plain_grads = torch.autograd.grad((reference(tokens) * gz).sum(), [tokens, reference.bias])
    assert torch.equal(linear(tokens), reference(tokens))
    assert all(torch.allclose(a, b, rtol=1e-6, atol=1e-6) for a, b in zip(ours_grads, plain_grads))


@pytest.mark.parametrize(
    "options",
    [
        dict(padding="same"),
        dict(padding="same", kernel_size=4),  # asymmetric: padded with F.pad first
        dict(padding="valid"),
        dict(padding=1, padding_mode="reflect"),
        dict(padding=(1, 2), padding_mode="circular"),
        dict(padding=1, padding_mode="replicate"),
    ],
    ids=str,
)
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
def test_string_padding_and_padding_modes_use_the_padded_input_patches(options: dict) -> None:
    options = {"kernel_size": 3, **options}
    generator = _generator(7)
    x = torch.randn(2, 2, 6, 7, generator=generator, dtype=F64, requires_grad=True)
    ours = TrActConv2d(2, 4, l=0.2, dtype=F64, **options)
    plain = nn.Conv2d(2, 4, dtype=F64, **options)
    plain.load_state_dict(ours.state_dict())
    out = ours(x)
    assert torch.equal(out, plain(x))
    g = torch.randn(out.shape, generator=generator, dtype=F64)
    grad_x, grad_w = torch.autograd.grad((out * g).sum(), [x, ours.weight])
    (plain_grad_x,) = torch.autograd.grad((plain(x) * g).sum(), [x])
    assert torch.allclose(grad_x, plain_grad_x, rtol=1e-12, atol=1e-12)
    mode = "constant" if plain.padding_mode == "zeros" else plain.padding_mode
    padded = F.pad(x.detach(), plain._reversed_padding_repeated_twice, mode=mode)
    unfolded = F.unfold(padded, plain.kernel_size, plain.dilation, 0, plain.stride)
    a = unfolded.transpose(1, 2).reshape(-1, unfolded.shape[1])
    expected = closed_form(a, g.permute(0, 2, 3, 1).reshape(-1, 4), 0.2).reshape(ours.weight.shape)
    assert relative_error(grad_w, expected) < 1e-10


def test_unbatched_conv_input_is_one_image() -> None:
    generator = _generator(8)
    x = torch.randn(2, 5, 5, generator=generator, dtype=F64)
    layer = TrActConv2d(2, 3, 3, padding=1, dtype=F64)
    out = layer(x)
    assert out.shape == (3, 5, 5)
    (grad,) = torch.autograd.grad(out.square().sum(), [layer.weight])
    (batched,) = torch.autograd.grad(layer(x[None]).square().sum(), [layer.weight])
    assert torch.equal(grad, batched)


# 5. The large-lambda limit
@pytest.mark.parametrize("layer", ["linear", "conv"])
def test_large_lambda_gives_the_plain_gradient_over_lambda(layer: str) -> None:
    generator = _generator(9)
    if layer == "linear":
        module, plain = TrActLinear(12, 4, l=1e8, dtype=F64), nn.Linear(12, 4, dtype=F64)
        x = torch.randn(3, 10, 12, generator=generator, dtype=F64)
    else:
        module, plain = TrActConv2d(3, 4, 3, padding=1, l=1e8, dtype=F64), nn.Conv2d(3, 4, 3, padding=1, dtype=F64)
        x = torch.randn(2, 3, 6, 6, generator=generator, dtype=F64)
    plain.load_state_dict(module.state_dict())
    g = torch.randn(plain(x).shape, generator=generator, dtype=F64)
    (ours,) = torch.autograd.grad((module(x) * g).sum(), [module.weight])
    (reference,) = torch.autograd.grad((plain(x) * g).sum(), [plain.weight])
    assert relative_error(1e8 * ours, reference) < 1e-6
    module.l = 1.0
    (moderate,) = torch.autograd.grad((module(x) * g).sum(), [module.weight])
    assert relative_error(moderate, reference) > 1e-2  # the criterion is not met by a moderate lambda


# 6. Parameter sharing and the wrapper
def test_tract_shares_the_parameter_objects_and_an_earlier_optimizer_trains_them() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    first = model[0]
    keys = list(model.state_dict())
    model[0] = tract(first, l=0.5)
    assert isinstance(model[0], TrActLinear) and isinstance(model[0], nn.Linear)
    assert model[0].weight is first.weight and model[0].bias is first.bias
    assert list(model.state_dict()) == keys
    before = first.weight.detach().clone()
    x = torch.randn(8, 6)
    model(x).square().mean().backward()
    optimizer.step()
    assert not torch.equal(first.weight, before)  # the optimizer built before wrapping moved it


def test_wrapping_draws_no_random_numbers_and_keeps_the_configuration() -> None:
    conv = nn.Conv2d(3, 8, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(1, 2), padding_mode="reflect", bias=False)
    conv.eval()
    state = torch.random.get_rng_state()
    wrapped = TrAct(conv, l=0.3, inv_type="cholesky")
    assert torch.equal(state, torch.random.get_rng_state())
    assert isinstance(wrapped, TrActConv2d) and wrapped.weight is conv.weight and wrapped.bias is None
    for name in ("kernel_size", "stride", "padding", "dilation", "padding_mode", "groups"):
        assert getattr(wrapped, name) == getattr(conv, name), name
    assert (wrapped.l, wrapped.inv_type, wrapped.training) == (0.3, "cholesky", False)
    x = torch.randn(2, 3, 8, 9)
    assert torch.equal(wrapped(x), conv(x))
    assert wrapped.weight.device == conv.weight.device


def test_rewrapping_a_tract_layer_changes_lambda_and_keeps_parameters() -> None:
    layer = TrActLinear(5, 3, l=0.1)
    again = tract(layer, l=2.0)
    assert again.weight is layer.weight and again.l == 2.0 and layer.l == 0.1


def test_a_deep_copy_of_a_wrapped_model_trains_independently() -> None:
    model = nn.Sequential(tract(nn.Linear(4, 3)))
    twin = copy.deepcopy(model)
    model(torch.randn(6, 4)).sum().backward()
    assert twin[0].weight.grad is None and model[0].weight.grad is not None


# 7. gradcheck on the input path (the weight gradient is not the true gradient, on purpose)
@pytest.mark.parametrize("layer", ["linear", "conv"])
def test_input_gradient_passes_gradcheck(layer: str) -> None:
    generator = _generator(10)
    if layer == "linear":
        module = TrActLinear(5, 3, l=0.1, dtype=F64)
        x = torch.randn(2, 4, 5, generator=generator, dtype=F64, requires_grad=True)
    else:
        module = TrActConv2d(2, 3, 3, stride=2, padding=1, l=0.1, dtype=F64)
        x = torch.randn(2, 2, 5, 5, generator=generator, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda inp: torch.tanh(module(inp)), (x,), eps=1e-6, atol=1e-8, fast_mode=True)
    bias = module.bias.detach().clone().requires_grad_()
    call = lambda b: torch.tanh(_call(module, x.detach(), module.weight, b))  # noqa: E731
    assert torch.autograd.gradcheck(call, (bias,), fast_mode=True)
    weight = module.weight.detach().clone().requires_grad_()
    with pytest.raises(GradcheckError):  # the weight's is TrAct's, not dL/dW
        torch.autograd.gradcheck(lambda w: _call(module, x.detach(), w, module.bias), (weight,), fast_mode=True)


def _call(module: nn.Module, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return torch.func.functional_call(module, {"weight": weight, "bias": bias}, (x,))


# Precision, solvers, compile
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_weight_gradient_is_solved_in_float32(dtype: torch.dtype) -> None:
    generator = _generator(11)
    x = torch.randn(4, 3, 6, 6, generator=generator)
    layer = TrActConv2d(3, 4, 3, l=0.1)
    g = torch.randn(4, 4, 4, 4, generator=generator)
    low = copy.deepcopy(layer).to(dtype)
    reference = TrActConv2d(3, 4, 3, l=0.1)  # float32, on the same (rounded) parameters and inputs
    reference.load_state_dict({k: v.to(dtype).float() for k, v in layer.state_dict().items()})
    (expected,) = torch.autograd.grad((reference(x.to(dtype).float()) * g.to(dtype).float()).sum(), [reference.weight])
    (grad,) = torch.autograd.grad((low(x.to(dtype)) * g.to(dtype)).sum(), [low.weight])
    assert grad.dtype == dtype
    # within one rounding of the low-precision dtype of the float32 result (the solve itself is float32)
    assert relative_error(grad.float(), expected) < 2 * torch.finfo(dtype).eps


def test_autocast_bfloat16_gives_float32_weight_gradients() -> None:
    generator = _generator(12)
    layer = TrActLinear(16, 8)
    x = torch.randn(32, 16, generator=generator)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    assert out.dtype == torch.bfloat16
    out.float().square().sum().backward()
    assert layer.weight.grad.dtype == torch.float32 and torch.isfinite(layer.weight.grad).all()


def test_cholesky_and_inverse_agree() -> None:
    generator = _generator(13)
    x = torch.randn(3, 2, 9, 9, generator=generator)
    layer = TrActConv2d(2, 4, 3, l=0.05)
    grads = []
    for inv_type in ("inverse", "cholesky"):
        layer.inv_type = inv_type
        grads.append(torch.autograd.grad(layer(x).square().sum(), [layer.weight])[0])
    assert relative_error(grads[1], grads[0]) < 1e-5


def test_torch_compile_matches_eager() -> None:
    generator = _generator(14)
    model = nn.Sequential(TrActConv2d(2, 3, 3, padding=1, l=0.2), nn.ReLU(), nn.Flatten(), TrActLinear(48, 2))
    x = torch.randn(2, 2, 4, 4, generator=generator)
    eager = torch.autograd.grad(model(x).square().sum(), list(model.parameters()))
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    traced = torch.autograd.grad(compiled(x).square().sum(), list(model.parameters()))
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(eager, traced))
