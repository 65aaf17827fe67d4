"""The attack loop: clipping, the signed step, the model left alone, fallback, budget (tests 5 and 6)."""

from __future__ import annotations

import pytest
import torch
from gradhub_dia import DIA, MaskDropout, client_gradients
from gradhub_dia.examples import tiny_victim
from gradhub_dia.inversion import dropout_inversion_attack, inverting_gradients
from torch import nn

import gradhub
from gradhub.testing import assert_model_unchanged, fingerprint

from .conftest import generator

SHAPE = (1, 4, 4)


@pytest.fixture
def victim():
    return tiny_victim(dtype=torch.float64)


def test_clipping_after_a_step(victim) -> None:
    """Test 5: after a step every mask is in [0, 1] and x is inside clip_range (and the clip was active)."""
    model, gradients, labels, _, _ = victim
    result = dropout_inversion_attack(
        model, gradients, labels, SHAPE, generator=generator(), max_iter=1, lr=0.7, clip_range=(-0.2, 0.3)
    )
    x, (mask,) = result.output, result.masks
    assert x.min() >= -0.2 and x.max() <= 0.3
    assert (x == -0.2).any() and (x == 0.3).any()
    assert mask.min() >= 0 and mask.max() <= 1
    assert ((mask > 0) & (mask < 1)).any()  # the step moved some masks inside (0, 1)
    unclipped = dropout_inversion_attack(model, gradients, labels, SHAPE, generator=generator(), max_iter=1, lr=0.7)
    assert unclipped.output.min() < -0.2 and unclipped.output.max() > 0.3


def _start(model) -> torch.Tensor:
    """The attack's first draw from its generator is x ~ N(0, 1) (then the masks)."""
    return torch.randn((2, *SHAPE), generator=generator(), dtype=torch.float64)


def test_signed_first_step_moves_every_pixel_by_lr(victim) -> None:
    """Test 6a: with signed_grad the first Adam step moves every pixel by lr (Adam at step 1 on +-1)."""
    model, gradients, labels, _, _ = victim
    lr = 0.05
    result = dropout_inversion_attack(model, gradients, labels, SHAPE, generator=generator(), max_iter=1, lr=lr)
    moved = (result.output - _start(model)).abs()
    torch.testing.assert_close(moved, torch.full_like(moved, lr), rtol=1e-6, atol=0)


@pytest.mark.parametrize("attack", [dropout_inversion_attack, inverting_gradients])
def test_signed_second_step_depends_only_on_signs(victim, attack) -> None:
    """Test 6b (the step that tells sign-then-Adam from Adam): step 2 moves each pixel by lr (same sign twice)
    or lr/19 (sign flipped); with raw gradients the moves are not from that set."""
    model, gradients, labels, _, _ = victim
    lr = 0.01

    def moves(signed: bool) -> torch.Tensor:
        one = attack(model, gradients, labels, SHAPE, generator=generator(), max_iter=1, lr=lr, signed_grad=signed)
        two = attack(model, gradients, labels, SHAPE, generator=generator(), max_iter=2, lr=lr, signed_grad=signed)
        assert two.history[1] < two.history[0]  # so two.output is the iterate after step 2
        return (two.output - one.output).abs() / lr

    signed = moves(True)
    distance = torch.minimum((signed - 1).abs(), (signed - 1 / 19).abs())
    assert distance.max() < 1e-5, distance.max()
    raw = moves(False)
    assert torch.minimum((raw - 1).abs(), (raw - 1 / 19).abs()).max() > 1e-3


def _busy_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(16, 10), nn.BatchNorm1d(10), nn.ReLU(), nn.Dropout(0.3), nn.Linear(10, 3)
    ).double()
    model.train()
    model[1].weight.grad = torch.ones_like(model[1].weight)
    model[5].bias.requires_grad_(False)
    return model


@pytest.mark.parametrize("attack", [dropout_inversion_attack, inverting_gradients])
@pytest.mark.parametrize("attacker_train_mode", [False, True])
def test_model_left_exactly_as_found(attack, attacker_train_mode: bool) -> None:
    model = _busy_model()
    x = torch.rand(3, *SHAPE, dtype=torch.float64)
    y = torch.tensor([0, 1, 2])
    gradients, _ = client_gradients(model, x, y, generator=generator())
    before = fingerprint(model)
    result = attack(
        model, gradients, y, SHAPE, generator=generator(), max_iter=3, attacker_train_mode=attacker_train_mode
    )
    assert_model_unchanged(DIA, before, model)
    assert type(model[4]) is nn.Dropout
    assert torch.isfinite(result.output).all()


def test_model_without_dropout_is_an_error() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).double()
    x, y = torch.rand(1, *SHAPE, dtype=torch.float64), torch.tensor([1])
    gradients, masks = client_gradients(model, x, y)
    assert masks == []
    with pytest.raises(
        gradhub.UnsupportedInputError, match=r"dia: .*Sequential without any nn.Dropout.*inverting_gradients"
    ):
        dropout_inversion_attack(model, gradients, y, SHAPE, max_iter=2)
    assert inverting_gradients(model, gradients, y, SHAPE, max_iter=2).iterations == 2


def test_channel_dropout_is_an_error() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Dropout2d(0.2), nn.Flatten(), nn.Dropout(0.1), nn.Linear(8, 3))
    x, y = torch.rand(1, *SHAPE), torch.tensor([1])
    gradients, _ = client_gradients(model, x, y)
    with pytest.raises(gradhub.UnsupportedInputError, match=r"dia: .*dropout layers: 1 \(Dropout2d\).*elementwise"):
        dropout_inversion_attack(model, gradients, y, SHAPE, max_iter=2)


def test_p_zero_falls_back_to_ig_exactly() -> None:
    model, gradients, labels, _, _ = tiny_victim(dtype=torch.float64, p=0.0)
    dia = dropout_inversion_attack(model, gradients, labels, SHAPE, generator=generator(3), max_iter=4)
    ig = inverting_gradients(model, gradients, labels, SHAPE, generator=generator(3), max_iter=4)
    assert dia.fallback and dia.masks is None and not ig.fallback
    assert torch.equal(dia.output, ig.output) and torch.equal(dia.history, ig.history)
    assert dia.model_calls == ig.model_calls == 4


def test_generator_is_the_only_randomness(victim) -> None:
    model, gradients, labels, _, _ = victim
    torch.manual_seed(1)
    first = dropout_inversion_attack(model, gradients, labels, SHAPE, generator=generator(2), max_iter=3)
    torch.manual_seed(2)
    second = dropout_inversion_attack(model, gradients, labels, SHAPE, generator=generator(2), max_iter=3)
    other = dropout_inversion_attack(model, gradients, labels, SHAPE, generator=generator(9), max_iter=3)
    assert torch.equal(first.output, second.output) and torch.equal(first.masks[0], second.masks[0])
    assert not torch.equal(first.output, other.output)


def test_masks_start_bernoulli_and_have_the_activation_shape(victim) -> None:
    model, gradients, labels, _, _ = victim
    result = dropout_inversion_attack(model, gradients, labels, SHAPE, generator=generator(), max_iter=1, lr=1e-9)
    (mask,) = result.masks
    assert mask.shape == (2, 16)
    draw = generator()
    torch.randn((2, *SHAPE), generator=draw, dtype=torch.float64)
    expected = torch.full((2, 16), 0.75, dtype=torch.float64).bernoulli_(generator=draw)
    torch.testing.assert_close(mask, expected, atol=1e-6, rtol=0)


def test_model_calls_iterations_and_trials(victim) -> None:
    model, gradients, labels, _, _ = victim
    dia = dropout_inversion_attack(model, gradients, labels, SHAPE, generator=generator(), max_iter=7, n_trials=2)
    assert dia.iterations == 7 and dia.model_calls == 8 and len(dia.history) in (3, 4)
    ig = inverting_gradients(model, gradients, labels, SHAPE, generator=generator(), max_iter=7, n_trials=3)
    assert ig.iterations == 7 and ig.model_calls == 7
    stopped = dropout_inversion_attack(
        model, gradients, labels, SHAPE, generator=generator(), max_iter=9, stop_loss=10.0
    )
    assert stopped.iterations == 1


def test_counting_model_forwards(victim) -> None:
    """model_calls is the number of forward passes through the model (counted with a hook on a copy)."""
    model, gradients, labels, _, _ = victim
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))
    result = dropout_inversion_attack(model, gradients, labels, SHAPE, generator=generator(), max_iter=5)
    assert len(calls) == result.model_calls == 6
    calls.clear()
    result = inverting_gradients(model, gradients, labels, SHAPE, generator=generator(), max_iter=5)
    assert len(calls) == result.model_calls == 5


def test_progress_and_metrics(victim) -> None:
    model, gradients, labels, inputs, masks = victim
    events = []
    result = dropout_inversion_attack(
        model, gradients, labels, SHAPE, generator=generator(), max_iter=4, progress=events.append,
        ground_truth=inputs, true_masks=masks,
    )  # fmt: skip
    assert [e.step for e in events] == [1, 2, 3, 4, 4] and events[-1].done and events[0].task == "dia"
    assert "loss" in events[0].metrics
    mse = (result.output - inputs).square().mean()
    torch.testing.assert_close(result.metrics["mse"], mse)
    data_range = inputs.max() - inputs.min()
    torch.testing.assert_close(result.metrics["psnr"], 10 * torch.log10(data_range**2 / mse))
    agreement = ((result.masks[0] >= 0.5) == (masks[0] >= 0.5)).double().mean()
    torch.testing.assert_close(result.metrics["mask_agreement"], agreement)


def test_gradient_list_and_subset(victim) -> None:
    model, gradients, labels, _, _ = victim
    as_dict = dropout_inversion_attack(model, gradients, labels, SHAPE, generator=generator(), max_iter=3)
    as_list = dropout_inversion_attack(
        model, list(gradients.values()), labels, SHAPE, generator=generator(), max_iter=3
    )
    assert torch.equal(as_dict.output, as_list.output)
    subset = {k: v for k, v in gradients.items() if k.startswith("4.")}
    result = dropout_inversion_attack(model, subset, labels, SHAPE, generator=generator(), max_iter=3)
    assert torch.isfinite(result.output).all()


def test_user_mask_dropout_layers_are_supported() -> None:
    model, gradients, labels, _, _ = tiny_victim(dtype=torch.float64)
    from gradhub_dia import swap_dropout

    swap_dropout(model)
    assert isinstance(model[3], MaskDropout)
    result = dropout_inversion_attack(model, gradients, labels, SHAPE, generator=generator(), max_iter=2)
    assert result.masks[0].shape == (2, 16) and model[3].mask is None and not model[3].use_mask
