"""MaskDropout, swap_dropout, dropout_layers (tests 1 and 2)."""

from __future__ import annotations

import pytest
import torch
from gradhub_dia import MaskDropout, dropout_layers, swap_dropout
from torch import nn

import gradhub


def test_mask_of_ones_scales_by_one_over_keep_probability() -> None:
    """Test 1a: use_mask with a mask of ones returns x / (1 - p), in train and in eval mode."""
    x = torch.randn(4, 7, dtype=torch.float64)
    layer = MaskDropout(0.25).double()
    layer.mask, layer.use_mask = torch.ones_like(x), True
    for training in (True, False):
        layer.train(training)
        torch.testing.assert_close(layer(x), x / 0.75, rtol=1e-15, atol=0)


def test_tracked_mask_reproduces_the_train_mode_output() -> None:
    """Test 1b: the tracked mask, applied with use_mask, gives the same output bit for bit; and the tracked
    forward is nn.Dropout's own output from the same RNG state."""
    x = torch.randn(3, 5, 6)
    layer = MaskDropout(0.3)
    layer.track = True
    torch.manual_seed(7)
    tracked = layer(x)
    torch.manual_seed(7)
    reference = nn.Dropout(0.3)(x)
    assert torch.equal(tracked, reference)
    assert layer.track is False and layer.mask is not None and layer.mask.shape == x.shape
    assert set(layer.mask.unique().tolist()) <= {0.0, 1.0}
    assert 0.5 < layer.mask.mean() < 0.9  # Bernoulli(0.7)
    layer.use_mask = True
    assert torch.equal(layer(x), tracked)
    layer.eval()
    assert torch.equal(layer(x), tracked)


def test_tracked_mask_is_the_sampled_mask_not_the_nonzeros() -> None:
    """Zero inputs (dead ReLUs) keep their sampled mask entry (the official code would record 0 there)."""
    layer = MaskDropout(0.5)
    layer.track, layer.generator = True, torch.Generator().manual_seed(0)
    layer(torch.zeros(1000))
    assert 0.4 < layer.mask.mean() < 0.6


def test_normal_mode_is_dropout() -> None:
    x = torch.randn(200, 50)
    layer = MaskDropout(0.5)
    torch.manual_seed(3)
    out = layer(x)
    torch.manual_seed(3)
    assert torch.equal(out, nn.functional.dropout(x, 0.5, training=True))
    assert torch.equal(layer.eval()(x), x)


def test_continuous_mask_gradient_reaches_the_mask() -> None:
    x = torch.randn(2, 3, dtype=torch.float64)
    mask = torch.rand(2, 3, dtype=torch.float64, requires_grad=True)
    layer = MaskDropout(0.5)
    layer.mask, layer.use_mask = mask, True
    (gradient,) = torch.autograd.grad(layer(x).sum(), mask)
    torch.testing.assert_close(gradient, x / 0.5)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.2), nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.4)), nn.Linear(8, 2)
    )


def test_swap_dropout_preserves_eval_outputs_and_parameter_names() -> None:
    """Test 2: eval outputs unchanged; parameter names, order and values unchanged; p kept; mode kept."""
    model = _net().eval()
    x = torch.randn(5, 6)
    before_out = model(x)
    before_names = [name for name, _ in model.named_parameters()]
    before_state = {k: v.clone() for k, v in model.state_dict().items()}
    swapped = swap_dropout(model)
    assert swapped is model
    assert torch.equal(swapped(x), before_out)
    assert [name for name, _ in swapped.named_parameters()] == before_names
    assert list(swapped.state_dict()) == list(before_state)
    assert all(torch.equal(swapped.state_dict()[k], v) for k, v in before_state.items())
    layers = dropout_layers(swapped)
    assert [type(layer) for layer in layers] == [MaskDropout, MaskDropout]
    assert [layer.p for layer in layers] == [0.2, 0.4]
    assert not any(layer.training for layer in layers)


def test_swap_dropout_keeps_train_mode_and_leaves_other_dropouts() -> None:
    model = nn.Sequential(nn.Dropout(0.1), nn.Dropout2d(0.3)).train()
    swap_dropout(model)
    assert isinstance(model[0], MaskDropout) and model[0].training
    assert type(model[1]) is nn.Dropout2d
    assert isinstance(swap_dropout(nn.Dropout(0.5)), MaskDropout)


def test_dropout_layers_lists_in_module_order() -> None:
    model = _net()
    assert [layer.p for layer in dropout_layers(model)] == [0.2, 0.4]
    assert dropout_layers(nn.Linear(2, 2)) == []


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_bad_p_is_a_gradhub_error(p: float) -> None:
    with pytest.raises(gradhub.HyperparameterError, match=rf"mask_dropout.*p={p}"):
        MaskDropout(p)


def test_use_mask_without_a_mask_or_with_a_wrong_shape() -> None:
    layer = MaskDropout(0.5)
    layer.use_mask = True
    with pytest.raises(gradhub.UnsupportedInputError, match=r"mask_dropout.*set layer\.mask"):
        layer(torch.ones(2, 3))
    layer.mask = torch.ones(3, 2)
    with pytest.raises(gradhub.UnsupportedInputError, match=r"mask_dropout.*mask shape.*\(3, 2\).*\(2, 3\)"):
        layer(torch.ones(2, 3))
