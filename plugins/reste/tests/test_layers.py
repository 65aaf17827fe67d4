"""ReSTEConv2d / ReSTELinear against plain convolutions: the forward, the gradient through the scale, set_reste_o."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from gradhub_reste import RESTE_CONV2D, RESTE_LINEAR
from gradhub_reste.functional import rectified_derivative
from gradhub_reste.layers import ReSTEConv2d, ReSTELayer, ReSTELinear, set_reste_o
from torch import Tensor, nn
from torch.nn import functional as F

import gradhub


def _conv(**kwargs: object) -> ReSTEConv2d:
    torch.manual_seed(0)
    return ReSTEConv2d(**{"in_channels": 3, "out_channels": 4, "kernel_size": 3, "padding": 1, **kwargs}).double()


def _input(shape: tuple[int, ...] = (2, 3, 6, 6), seed: int = 1) -> Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_registry_returns_the_classes_and_defaults() -> None:
    assert gradhub.get(RESTE_CONV2D.name) is ReSTEConv2d
    assert gradhub.get(RESTE_LINEAR.name) is ReSTELinear
    assert issubclass(ReSTEConv2d, nn.Conv2d) and issubclass(ReSTELinear, nn.Linear)
    layer = ReSTEConv2d(3, 4, 3)
    assert (layer.o, layer.t_w, layer.t_a, layer.interval) == (1.0, 1.5, 1.5, 0.1)
    assert layer.binarize_activations and layer.bias is None
    assert "o=1.0, t_w=1.5, t_a=1.5, interval=0.1, binarize_activations=True" in repr(layer)
    assert set(layer.state_dict()) == {"weight"}  # o is a number, not state


@pytest.mark.parametrize("binarize_activations", (True, False))
def test_conv_forward_is_binary_weights_scaled_by_mean_abs(binarize_activations: bool) -> None:
    layer = _conv(stride=2, o=2.5, bias=True, binarize_activations=binarize_activations)
    x = _input()
    weight = torch.sign(layer.weight) * layer.weight.abs().mean()
    inputs = torch.sign(x) if binarize_activations else x
    assert torch.equal(layer(x), F.conv2d(inputs, weight, layer.bias, stride=2, padding=1))


def test_linear_forward_and_unbatched_inputs() -> None:
    torch.manual_seed(0)
    layer = ReSTELinear(5, 3, o=3.0).double()
    x = _input((4, 5))
    expected = F.linear(torch.sign(x), torch.sign(layer.weight) * layer.weight.abs().mean())
    assert torch.equal(layer(x), expected)
    assert torch.equal(layer(x[0]), expected[0])
    assert torch.equal(_conv()(_input()[0]), _conv()(_input())[0])


def _scale_gradient_formula(layer: ReSTELayer, upstream: Tensor) -> Tensor:
    """dL/dW for W_b = sign(W) * m, m = mean|W|: m phi(W) G + sign(W) sum(G sign(W)) / numel(W), G = dL/dW_b."""
    weight = layer.weight.detach()
    phi = rectified_derivative(weight, layer.o, layer.t_w, layer.interval)
    return (
        weight.abs().mean() * phi * upstream
        + torch.sign(weight) * (upstream * torch.sign(weight)).sum() / weight.numel()
    )


def weight_gradient_mismatch(layer: ReSTELayer) -> float:
    """max |autograd's dL/dW - the formula| for a random upstream gradient on W_b (float64)."""
    upstream = torch.randn(layer.weight.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    (gradient,) = torch.autograd.grad((layer.binarized_weight() * upstream).sum(), layer.weight)
    return float((gradient - _scale_gradient_formula(layer, upstream)).abs().max())


class _DetachedScale(ReSTEConv2d):
    """Wrong: the scale mean|W| detached, so no gradient flows through it."""

    def binarized_weight(self) -> Tensor:
        return self.binarize(self.weight, self.t_w) * self.weight.abs().mean().detach()


class _InvertedPowerConv(ReSTEConv2d):
    """Wrong: phi of sign(x)|x|^o (o inverted) on the weights."""

    def binarize(self, values: Tensor, t: float) -> Tensor:
        phi = torch.where(values.abs() <= t, self.o * values.abs().clamp_min(self.interval) ** (self.o - 1), 0.0)
        return torch.sign(values).detach() + (phi.detach() * values - (phi.detach() * values).detach())


@pytest.mark.parametrize("o", (1.0, 3.0))
def test_weight_gradient_flows_through_the_scale(o: float) -> None:
    layer = _conv(o=o, t_w=0.15, interval=0.02)  # weights reach every branch (|W| < 0.19)
    assert weight_gradient_mismatch(layer) < 1e-14
    torch.manual_seed(0)
    detached = _DetachedScale(3, 4, 3, padding=1, o=o, t_w=0.15, interval=0.02).double()
    assert torch.equal(detached.weight, layer.weight)
    assert weight_gradient_mismatch(detached) > 1e-4
    torch.manual_seed(0)
    inverted = _InvertedPowerConv(3, 4, 3, padding=1, o=3.0, t_w=0.15, interval=0.02).double()
    assert weight_gradient_mismatch(inverted) > 1e-4


def _grads(layer: nn.Module, x: Tensor, upstream: Tensor) -> tuple[Tensor, Tensor]:
    x = x.clone().requires_grad_()
    return torch.autograd.grad((layer(x) * upstream).sum(), (x, layer.weight))


def test_activation_gradient_is_phi_at_t_a_times_the_binary_input_gradient() -> None:
    layer = _conv(o=2.0, t_a=1.0)
    x = _input()
    weight = (torch.sign(layer.weight) * layer.weight.abs().mean()).detach()
    upstream = torch.randn(2, 4, 6, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    binary = torch.sign(x).requires_grad_()
    (binary_gradient,) = torch.autograd.grad((F.conv2d(binary, weight, padding=1) * upstream).sum(), binary)
    input_gradient, _ = _grads(layer, x, upstream)
    torch.testing.assert_close(
        input_gradient, binary_gradient * rectified_derivative(x, 2.0, 1.0, 0.1), rtol=1e-14, atol=0
    )
    one_w_32_a = _conv(o=2.0, binarize_activations=False)
    (plain,) = torch.autograd.grad((F.conv2d(x.requires_grad_(), weight, padding=1) * upstream).sum(), x)
    torch.testing.assert_close(_grads(one_w_32_a, x.detach(), upstream)[0], plain, rtol=1e-14, atol=0)


def test_set_reste_o_and_validated_setter() -> None:
    model = nn.Sequential(_conv(), nn.Flatten(), ReSTELinear(144, 3), nn.Linear(3, 2)).double()
    x = _input()
    before = model(x)
    assert set_reste_o(model, 2.5) == 2
    assert model[0].o == 2.5 and model[2].o == 2.5
    assert torch.equal(model(x), before)  # o changes the backward only
    model[0].o = 1  # ints accepted, stored as a float
    assert model[0].o == 1.0 and isinstance(model[0].o, float)


def _training_gradient(layer_type: Callable[..., nn.Module], dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    torch.manual_seed(0)
    layer = layer_type().to(dtype)
    x = _input((2, 3, 5, 5)).to(dtype).requires_grad_()
    out = layer(x)
    out.square().sum().backward()
    return x.grad, layer.weight.grad


@pytest.mark.parametrize("dtype", (torch.bfloat16, torch.float16))
def test_half_precision_layers(dtype: torch.dtype) -> None:
    """bfloat16 / float16 layers train: finite gradients in the layer's dtype, close to float32's."""
    if dtype == torch.float16:
        try:
            F.conv2d(torch.ones(1, 1, 2, 2, dtype=dtype), torch.ones(1, 1, 1, 1, dtype=dtype))
        except RuntimeError:  # a CPU build without float16 convolutions: the linear layer still runs
            layer = ReSTELinear(6, 4, o=2.0).to(dtype)
            x = _input((3, 6)).to(dtype).requires_grad_()
            layer(x).sum().backward()
            assert x.grad.dtype == dtype and bool(torch.isfinite(x.grad).all())
            return
    factory = lambda: ReSTEConv2d(3, 4, 3, padding=1, o=2.0, t_w=0.15, interval=0.02)  # noqa: E731
    input_grad, weight_grad = _training_gradient(factory, dtype)
    reference_input, reference_weight = _training_gradient(factory, torch.float32)
    assert input_grad.dtype == weight_grad.dtype == dtype
    assert bool(torch.isfinite(input_grad).all()) and bool(torch.isfinite(weight_grad).all())
    torch.testing.assert_close(input_grad.float(), reference_input, rtol=0.05, atol=0.1)
    torch.testing.assert_close(weight_grad.float(), reference_weight, rtol=0.05, atol=0.5)
