"""Bad inputs raise gradhub errors naming the method, the input, the value and what is allowed."""

from __future__ import annotations

import re

import pytest
import torch
from gradhub_dia.examples import tiny_victim
from gradhub_dia.inversion import dropout_inversion_attack, inverting_gradients

import gradhub

SHAPE = (1, 4, 4)


@pytest.fixture
def victim():
    model, gradients, labels, inputs, masks = tiny_victim()
    return model, gradients, labels, inputs, masks


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("lr", -0.1, "> 0"),
        ("max_iter", 0, ">= 1"),
        ("mask_weight", -1.0, ">= 0"),
        ("init", "zeros", "'randn', 'rand'"),
        ("lr_factor", 1.0, "< 1"),
        ("clip_range", (0.5, 0.1), "lo < hi"),
        ("clip_range", "0,1", "tuple"),
    ],
)
def test_bad_hyperparameters(victim, name, value, allowed) -> None:
    model, gradients, labels, _, _ = victim
    with pytest.raises(gradhub.HyperparameterError) as info:
        dropout_inversion_attack(model, gradients, labels, SHAPE, **{name: value})
    message = str(info.value)
    assert message.startswith("dia: ") and name in message and allowed in message and str(value) in message


def test_unknown_and_mask_only_keywords(victim) -> None:
    model, gradients, labels, _, _ = victim
    with pytest.raises(gradhub.UnknownHyperparameterError, match="dia: unknown hyperparameter n_iter=5"):
        dropout_inversion_attack(model, gradients, labels, SHAPE, n_iter=5)
    with pytest.raises(
        gradhub.UnknownHyperparameterError, match="inverting_gradients: unknown hyperparameter mask_weight"
    ):
        inverting_gradients(model, gradients, labels, SHAPE, mask_weight=1e-4)


def test_trials_need_budget(victim) -> None:
    model, gradients, labels, _, _ = victim
    with pytest.raises(gradhub.HyperparameterError, match=r"dia: invalid max_iter=2; .*>= n_trials=3"):
        dropout_inversion_attack(model, gradients, labels, SHAPE, max_iter=2, n_trials=3)


def test_tv_needs_two_spatial_dims() -> None:
    model, gradients, labels, _, _ = tiny_victim()
    with pytest.raises(gradhub.HyperparameterError, match=r"dia: invalid tv_weight=1e-05; .*input_shape=\(16,\)"):
        dropout_inversion_attack(model, gradients, labels, (16,), max_iter=1)
    result = dropout_inversion_attack(model, gradients, labels, (16,), max_iter=1, tv_weight=0.0)
    assert result.output.shape == (2, 16)


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        # each case: how the observed gradients are broken, and the message it must give
        (lambda g: {**g, "9.weight": torch.zeros(1)}, r"target_gradients key: '9.weight'; keys must be parameter names"),  # noqa: E501
        (lambda g: {**g, "1.weight": torch.zeros(3, 3)}, r"shapes: target_gradients\['1.weight'\] \(3, 3\), 1.weight \(16, 16\); .* must have the same shape"),  # noqa: E501
        (lambda g: list(g.values())[:2], r"target_gradients: a sequence of 2 tensors; one gradient per model parameter"),  # noqa: E501
        (lambda g: {"1.weight": torch.zeros(16, 16, dtype=torch.long)}, r"target_gradients\['1.weight'\] dtype: torch.int64; .* must be a floating-point tensor"),  # noqa: E501
        (lambda g: {"1.weight": torch.full((16, 16), float("nan"))}, r"target_gradients\['1.weight'\] values: 256 of 256 entries non-finite .* must be finite"),  # noqa: E501
        (lambda g: {"1.weight": torch.zeros(16, 16, device="meta")}, r"devices: target_gradients\['1.weight'\] on meta, 1.weight on cpu; .* must be on the same device"),  # noqa: E501
        (lambda g: "grads", r"target_gradients: 'grads'; a dict parameter name -> tensor"),
        (lambda g: {}, r"target_gradients: {}; at least one parameter gradient"),
    ],
)  # fmt: skip
def test_bad_gradients(victim, mutate, pattern) -> None:
    model, gradients, labels, _, _ = victim
    with pytest.raises(gradhub.UnsupportedInputError, match="dia: unsupported " + pattern):
        dropout_inversion_attack(model, mutate(gradients), labels, SHAPE, max_iter=1)


def test_bad_labels_shape_model_and_evaluation_inputs(victim) -> None:
    model, gradients, labels, inputs, masks = victim
    cases = [
        (dict(labels=torch.tensor(1)), r"labels shape: \(\); labels must be at least 1-D"),
        (dict(labels=labels.to("meta")), r"devices: model on cpu, labels on meta; .* must be on the same device"),
        (dict(input_shape=(1, 0, 4)), r"input_shape: \(1, 0, 4\); the per-sample input shape"),
        (dict(input_shape="1x4x4"), r"input_shape: '1x4x4'"),
        (dict(model="net"), r"model: 'net'; a torch.nn.Module"),
        (dict(ground_truth=inputs[:1]), r"ground_truth shape: \(1, 1, 4, 4\); .* must have shape \(2, 1, 4, 4\)"),
        (dict(true_masks=masks * 2), r"true_masks: 2 masks; one per dropout layer \(1\)"),
        (dict(true_masks=[masks[0][:1]]), r"true_masks\[0\] shape: \(1, 16\); .* must have shape \(2, 16\)"),
        (dict(generator=3), r"generator: 3; a torch.Generator or None"),
    ]
    for change, pattern in cases:
        arguments = dict(model=model, target_gradients=gradients, labels=labels, input_shape=SHAPE, max_iter=1)
        arguments.update(change)
        with pytest.raises(gradhub.UnsupportedInputError, match="dia: unsupported " + pattern):
            dropout_inversion_attack(**arguments)


def test_true_masks_rejected_by_ig(victim) -> None:
    model, gradients, labels, _, masks = victim
    with pytest.raises(
        gradhub.UnknownHyperparameterError, match="inverting_gradients: unknown hyperparameter true_masks"
    ):
        inverting_gradients(model, gradients, labels, SHAPE, true_masks=masks)


# --- an input_shape that does not fit the model (issue 11) -----------------------------------------


def _conv_victim():
    """A conv net on 1-channel 4x4 images with one Dropout, and a client gradient on 2 samples."""
    from gradhub_dia.inversion import client_gradients

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.Flatten(), torch.nn.Dropout(0.25), torch.nn.Linear(32, 3)
    )
    inputs, labels = torch.rand(2, 1, 4, 4), torch.tensor([0, 2])
    gradients, _ = client_gradients(model, inputs, labels, generator=torch.Generator().manual_seed(0))
    return model, gradients, labels


@pytest.mark.parametrize("attack", [dropout_inversion_attack, inverting_gradients])
@pytest.mark.parametrize("p", [0.25, 0.0])  # p = 0: DIA's IG fallback, whose first forward is IG's
@pytest.mark.parametrize(
    ("conv", "input_shape", "torch_words"),
    [
        (False, (1, 5, 5), "mat1 and mat2 shapes cannot be multiplied"),
        (False, (15,), "mat1 and mat2 shapes cannot be multiplied"),
        (True, (3, 4, 4), "expected input"),
    ],
)
def test_input_shape_that_does_not_fit_the_model(attack, p, conv, input_shape, torch_words) -> None:
    """It used to fail inside torch ('mat1 and mat2 shapes cannot be multiplied'); now the first forward says so."""
    if conv:
        model, gradients, labels = _conv_victim()
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = p
    else:
        model, gradients, labels, _, _ = tiny_victim(p=p)
    model.train()
    name = "dia" if attack is dropout_inversion_attack else "inverting_gradients"
    shape = re.escape(str(input_shape))
    with pytest.raises(
        gradhub.UnsupportedInputError,
        match=rf"^{name}: unsupported input_shape: {shape} \(x of shape \(2, .*\); it does not fit the model "
        rf"\(its first forward on x failed: '.*{torch_words}",
    ):
        attack(model, gradients, labels, input_shape, max_iter=2, tv_weight=0.0)
    assert model.training and all(module.training for module in model.modules())  # modes restored
    assert not any(module._forward_hooks or module._forward_pre_hooks for module in model.modules())  # no hooks left
