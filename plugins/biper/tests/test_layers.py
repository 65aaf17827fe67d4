"""BiPerConv2d / BiPerLinear against plain convolutions and linear maps (Eq. 4-5, both stages, the official layer)."""

from __future__ import annotations

import pytest
import torch
from gradhub_biper import BIPER_CONV2D, BIPER_LINEAR, set_biper_stage
from gradhub_biper.layers import BiPerConv2d, BiPerLinear
from torch import nn
from torch.nn import functional as F

import gradhub


def _conv(**kwargs: object) -> BiPerConv2d:
    torch.manual_seed(0)
    base = dict(in_channels=3, out_channels=4, kernel_size=3, padding=1)
    return BiPerConv2d(**{**base, **kwargs}).double()


def _input(shape: tuple[int, ...] = (2, 3, 6, 6), seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float64)


def test_registry_returns_the_classes() -> None:
    assert gradhub.get(BIPER_CONV2D.name) is BiPerConv2d
    assert gradhub.get(BIPER_LINEAR.name) is BiPerLinear
    assert issubclass(BiPerConv2d, nn.Conv2d) and issubclass(BiPerLinear, nn.Linear)


def test_defaults_follow_official_scripts() -> None:
    layer = BiPerConv2d(3, 4, 3)
    assert layer.freq == 20.0 and layer.stage == 2 and layer.bias is None
    assert layer.binarize_act and layer.act_norm
    assert layer.alpha.shape == (4, 1, 1)
    assert bool((layer.alpha >= 0).all()) and bool((layer.alpha <= 1).all())


@pytest.mark.parametrize("omega", (20.0, 30.0))
def test_conv_equivalence_stage2(omega: float) -> None:
    layer = _conv(freq=omega, binarize_act=False, act_norm=False, stride=2, dilation=1)
    x = _input()
    expected = F.conv2d(x, torch.sign(torch.sin(omega * layer.weight)), stride=2, padding=1) * layer.alpha
    assert torch.equal(layer(x), expected)


def test_conv_with_bias_scales_bias_by_alpha_as_official() -> None:
    layer = _conv(binarize_act=False, bias=True)
    x = _input()
    weight = torch.sign(torch.sin(20.0 * layer.weight))
    expected = F.conv2d(x, weight, layer.bias, padding=1) * layer.alpha
    assert torch.equal(layer(x), expected)


def test_stage1_forward_is_sine_weights_and_switch_keeps_parameters() -> None:
    model = nn.Sequential(_conv(stage=1, binarize_act=False), nn.Flatten(), BiPerLinear(144, 3, stage=1).double())
    conv = model[0]
    x = _input()
    expected = F.conv2d(x, torch.sin(20.0 * conv.weight), padding=1) * conv.alpha
    assert torch.equal(conv(x), expected)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    assert set_biper_stage(model, 2) == 2
    assert conv.stage == 2 and model[2].stage == 2
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)
    binary = F.conv2d(x, torch.sign(torch.sin(20.0 * conv.weight)), padding=1) * conv.alpha
    assert torch.equal(conv(x), binary)
    assert set_biper_stage(model, 1) == 2 and torch.equal(conv(x), expected)


def test_binary_input_and_weights_in_full_layer() -> None:
    layer = _conv().eval()
    x = _input()
    expected = F.conv2d(torch.sign(x), torch.sign(torch.sin(20.0 * layer.weight)), padding=1) * layer.alpha
    assert torch.equal(layer(x), expected)


def _input_gradient(layer: nn.Module, x: torch.Tensor, upstream: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (layer(x) * upstream).sum().backward()
    return x.grad


@pytest.mark.parametrize("make", ("conv", "linear"))
def test_train_eval_normalisation_policy(make: str) -> None:
    """Official policy: per-sample std normalisation in training mode only; same forward."""
    if make == "conv":
        layer, x = _conv(), 3.0 * _input()
    else:
        torch.manual_seed(0)
        layer, x = BiPerLinear(8, 5).double(), 3.0 * _input((4, 8))
    upstream = torch.randn(layer(x).shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    layer.train()
    train_out, train_grad = layer(x), _input_gradient(layer, x, upstream)
    layer.eval()
    eval_out, eval_grad = layer(x), _input_gradient(layer, x, upstream)
    assert torch.equal(train_out, eval_out)  # sign() is scale-invariant

    # eval: triangle surrogate on the raw input
    weights = torch.sign(torch.sin(20.0 * layer.weight.detach()))
    op = (lambda a: F.conv2d(a, weights, padding=1)) if make == "conv" else (lambda a: F.linear(a, weights))
    alpha = layer.alpha.detach()
    probe = torch.sign(x).requires_grad_(True)
    (op(probe) * alpha * upstream).sum().backward()
    assert torch.equal(eval_grad, probe.grad * (2 - 2 * x.abs()).clamp(min=0))

    # train: a0 = a / sqrt(var_per_sample(a) + 1e-5), then the triangle; chain through a0
    x_leaf = x.clone().requires_grad_(True)
    dims = tuple(range(1, x.ndim))
    a0 = x_leaf / torch.sqrt(x_leaf.var(dims, keepdim=True) + 1e-5)
    surrogate = probe.grad * (2 - 2 * a0.detach().abs()).clamp(min=0)
    (a0 * surrogate).sum().backward()
    torch.testing.assert_close(train_grad, x_leaf.grad, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(train_grad, eval_grad)  # x was scaled by 3: the supports differ


def test_act_norm_off_uses_raw_input_in_training() -> None:
    layer = _conv(act_norm=False)
    x = 3.0 * _input()
    upstream = torch.randn(layer(x).shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    layer.train()
    train_grad = _input_gradient(layer, x, upstream)
    layer.eval()
    assert torch.equal(train_grad, _input_gradient(layer, x, upstream))


def test_weight_gradient_is_sine_derivative_through_layer() -> None:
    layer = _conv(binarize_act=False)
    x = _input()
    upstream = torch.randn(layer(x).shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    (layer(x) * upstream).sum().backward()
    w = layer.weight.detach().clone().requires_grad_(True)
    wb = torch.sign(torch.sin(20.0 * w))
    wb_leaf = wb.detach().requires_grad_(True)
    (F.conv2d(x, wb_leaf, padding=1) * layer.alpha.detach() * upstream).sum().backward()
    expected = wb_leaf.grad * 20.0 * torch.cos(20.0 * w.detach())
    torch.testing.assert_close(layer.weight.grad, expected, rtol=1e-13, atol=1e-13)


def test_linear_equivalence_and_unbatched_inputs() -> None:
    torch.manual_seed(0)
    layer = BiPerLinear(6, 3, bias=True).double().eval()
    x = _input((5, 6))
    expected = F.linear(torch.sign(x), torch.sign(torch.sin(20.0 * layer.weight)), layer.bias) * layer.alpha
    assert torch.equal(layer(x), expected)
    assert torch.equal(layer(x[0]), expected[0])
    conv = _conv().eval()
    image = _input((2, 3, 6, 6))
    assert torch.equal(conv(image[0]), conv(image)[0])


def test_bfloat16_layer_matches_float32_phase() -> None:
    torch.manual_seed(0)
    layer = BiPerConv2d(3, 4, 3, freq=200.0, binarize_act=False).to(torch.bfloat16)
    w = layer.weight.detach().float()
    assert torch.equal(layer.quantized_weight().float(), torch.sign(torch.sin(200.0 * w)))
    x = _input().to(torch.bfloat16)
    assert layer(x).dtype == torch.bfloat16


def test_state_dict_has_alpha_and_loads_into_fresh_layer() -> None:
    layer = _conv(stage=1)
    other = BiPerConv2d(3, 4, 3, padding=1, stage=1).double()
    other.load_state_dict(layer.state_dict())
    x = _input()
    assert "alpha" in layer.state_dict()
    assert torch.equal(layer(x), other(x))


def test_regularization_is_the_official_periodic_penalty() -> None:
    """tau * sum over layers of mean(0.5 - 0.5 cos(2 freq W)), as the official main.py adds to the loss."""
    import math

    import pytest
    import torch
    from gradhub_biper import BiPerConv2d, BiPerLinear, biper_regularization
    from torch import nn

    import gradhub

    torch.manual_seed(0)
    model = nn.Sequential(BiPerConv2d(2, 3, 3, freq=20.0), nn.Flatten(), BiPerLinear(12, 2, freq=5.0)).double()
    expected = sum(
        0.037 * torch.mean(0.5 - 0.5 * torch.cos(2 * layer.freq * layer.weight)) for layer in (model[0], model[2])
    )
    value = biper_regularization(model, tau=0.037)
    assert value.dim() == 0 and math.isclose(value.item(), expected.item(), rel_tol=1e-12)
    value.backward()
    weight = model[2].weight
    torch.testing.assert_close(
        weight.grad, 0.037 * 5.0 * torch.sin(2 * 5.0 * weight.detach()) / weight.numel(), rtol=1e-12, atol=1e-15
    )
    assert biper_regularization(model, tau=0.0).item() == 0.0
    with pytest.raises(gradhub.HyperparameterError, match=r"biper_regularization: invalid tau=-1"):
        biper_regularization(model, tau=-1)
    with pytest.raises(gradhub.UnsupportedInputError, match="no BiPerConv2d or BiPerLinear layer to regularise"):
        biper_regularization(nn.Linear(2, 2))
