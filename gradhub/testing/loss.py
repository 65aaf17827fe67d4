"""Conformance checks for losses (forward/backward and gradient checks are shared with layers).

A loss of form ``"model"`` (``LossCapabilities.form``) is called as
``fn(model, *data, generator=g, **hparams)`` with a fresh seeded generator per call; its
gradients are checked on the model's parameters instead of on a prediction.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gradhub.kinds import bind
from gradhub.kinds.loss import LossExample
from gradhub.specs import MethodSpec
from gradhub.testing._helpers import (
    INVOKERS,
    RUNNERS,
    assert_finite,
    fail,
    generator_for,
    load_example,
    load_target,
)
from gradhub.testing._suite import conformance_check
from gradhub.testing.layer import build, differentiable_inputs, forward_backward


def _example(spec: MethodSpec, device: torch.device, dtype: torch.dtype, seed: int = 0) -> LossExample:
    return load_example(spec, device, dtype, seed, LossExample)


def model_form(spec: MethodSpec) -> bool:
    return getattr(spec.capabilities, "form", "prediction") == "model"


def _model(spec: MethodSpec, example: LossExample) -> nn.Module:
    model = example.inputs[0] if example.inputs else None
    if not isinstance(model, nn.Module):
        fail(spec, f"a model-form loss's example must give the model as inputs[0]; it gave {type(model).__name__}")
    return model


def evaluate(
    spec: MethodSpec, example: LossExample, hparams: dict[str, Any], device: torch.device, seed: int = 0
) -> torch.Tensor:
    """The loss on its example: a prediction-form loss on differentiable copies of the inputs, a
    model-form loss on the model with a generator seeded ``seed``."""
    if model_form(spec):
        _model(spec, example)
        return bind(load_target(spec), hparams)(*example.inputs, generator=generator_for(device, seed))
    return build(spec, hparams, device, example.inputs[0].dtype)(*differentiable_inputs(example.inputs))


def _model_gradients(spec: MethodSpec, example: LossExample, value: torch.Tensor) -> list[torch.Tensor]:
    parameters = [p for p in _model(spec, example).parameters() if p.requires_grad]
    gradients = torch.autograd.grad(value, parameters, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(parameters, gradients)]


def _run(spec: MethodSpec, device: torch.device, dtype: torch.dtype, seed: int) -> list[torch.Tensor]:
    example = _example(spec, device, dtype, seed)
    if model_form(spec):
        value = evaluate(spec, example, example.hparams, device, seed)
        return [value.detach(), *_model_gradients(spec, example, value.sum())]
    outputs, gradients = forward_backward(
        build(spec, example.hparams, device, dtype, seed), differentiable_inputs(example.inputs)
    )
    return outputs + gradients


def _invoke(spec: MethodSpec, example: LossExample, hparams: dict[str, Any]) -> Any:
    loss = bind(load_target(spec), hparams)
    if model_form(spec):
        return loss(*example.inputs, generator=generator_for(torch.device("cpu"), 0))
    return loss(*example.inputs)


RUNNERS["loss"] = _run
INVOKERS["loss"] = (LossExample, _invoke)


@conformance_check("loss")
def check_returns_scalar(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """With its default reduction the loss is one finite scalar that requires grad."""
    example = _example(spec, device, dtype)
    hparams = {k: v for k, v in example.hparams.items() if k != "reduction"}
    value = evaluate(spec, example, hparams, device)
    if not isinstance(value, torch.Tensor) or value.dim() != 0:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        fail(spec, f"with the default reduction it returned {shape}, not a scalar tensor")
    if not torch.isfinite(value):
        fail(spec, f"it returned {value.item()} on its example")
    if not value.requires_grad:
        cut = "the model's" if model_form(spec) else "the prediction's"
        fail(spec, f"its value does not require grad: {cut} graph is cut")


@conformance_check("loss", applies=lambda spec: len(spec.capabilities.reductions) > 1, when="it declares reductions")
def check_reduction_consistent(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """reduction='none' values sum to reduction='sum' and average to reduction='mean'."""
    example = _example(spec, device, dtype)
    values = {}
    for reduction in spec.capabilities.reductions:
        # A model-form loss gets the same seed for each reduction, so it draws the same noise.
        values[reduction] = evaluate(spec, example, {**example.hparams, "reduction": reduction}, device).detach()
    if "none" not in values:
        return
    tolerance = dict(rtol=1e-5, atol=1e-6) if dtype != torch.float64 else dict(rtol=1e-10, atol=1e-12)
    for reduction, reduce in (("sum", torch.sum), ("mean", torch.mean)):
        if reduction in values and not torch.allclose(reduce(values["none"]), values[reduction], **tolerance):
            fail(
                spec,
                f"reduction='{reduction}' gives {values[reduction].item():.6g} but reduction='none' values "
                f"{reduction} to {reduce(values['none']).item():.6g}",
            )


@conformance_check("loss", dtypes="declared", applies=model_form, when='form == "model"')
def check_model_gradients(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """Gradients reach the model's parameters: finite, in their dtype, not all zero."""
    example = _example(spec, device, dtype)
    value = evaluate(spec, example, example.hparams, device)
    if not isinstance(value, torch.Tensor) or not value.requires_grad:
        fail(spec, "its value does not require grad: the model's graph is cut")
    gradients = _model_gradients(spec, example, value.sum())
    assert_finite(spec, gradients, "gradients of the model's parameters")
    for gradient, parameter in zip(gradients, _model(spec, example).parameters()):
        if gradient.dtype != parameter.dtype or gradient.device != parameter.device:
            fail(
                spec,
                f"a parameter gradient is {gradient.dtype} on {gradient.device}, the parameter "
                f"{parameter.dtype} on {parameter.device}",
            )
    if not any(bool(gradient.ne(0).any()) for gradient in gradients):
        fail(spec, "no gradient reaches the model's parameters: every parameter gradient is zero")


@conformance_check("loss", applies=model_form, when='form == "model"')
def check_generator_matters(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """Generators seeded 0 and 1 give different losses: the noise comes from the generator."""
    example = _example(spec, device, dtype)
    first = evaluate(spec, example, example.hparams, device, seed=0).detach()
    second = evaluate(spec, example, example.hparams, device, seed=1).detach()
    if torch.equal(first, second):
        fail(spec, "generators seeded 0 and 1 gave the same loss: it does not draw its noise from its generator")
