"""Conformance checks for layers: forward/backward, declared gradients, state_dict."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gradhub.kinds import bind
from gradhub.kinds.layer import LayerExample
from gradhub.specs import MethodSpec
from gradhub.testing._helpers import (
    INVOKERS,
    RUNNERS,
    assert_close,
    assert_finite,
    fail,
    load_example,
    load_target,
    target_is_class,
    tensors_of,
)
from gradhub.testing._suite import conformance_check


def _example(spec: MethodSpec, device: torch.device, dtype: torch.dtype, seed: int = 0) -> LayerExample:
    return load_example(spec, device, dtype, seed, LayerExample)


def build(
    spec: MethodSpec,
    hparams: dict[str, Any],
    device: torch.device,
    dtype: torch.dtype,
    seed: int = 0,
    example: Any = None,
) -> Any:
    """The layer as a callable: a module (seeded, on device) or the function with its hyperparameters."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        factory = getattr(example, "modules", None)
        modules = factory() if factory is not None else ()
        layer = bind(load_target(spec), hparams, modules)
    if isinstance(layer, nn.Module):
        layer = layer.to(device=device, dtype=dtype)
    return layer


def differentiable_inputs(inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Copies of the inputs, floating ones requiring grad."""
    return tuple(
        x.detach().clone().requires_grad_(x.is_floating_point()) if isinstance(x, torch.Tensor) else x for x in inputs
    )


def _projection_weights(outputs: list[torch.Tensor], seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(o.shape, generator=generator, dtype=torch.float64).to(o.device, o.dtype) for o in outputs]


def forward_backward(layer: Any, inputs: tuple[torch.Tensor, ...]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Outputs, and gradients of a fixed random projection of them w.r.t. inputs and parameters."""
    leaves = [x for x in inputs if isinstance(x, torch.Tensor) and x.requires_grad]
    if isinstance(layer, nn.Module):
        leaves += [p for p in layer.parameters() if p.requires_grad]
    outputs = [o for o in tensors_of(layer(*inputs), detach=False) if o.is_floating_point()]
    live = [o for o in outputs if o.requires_grad]
    gradients: list[torch.Tensor] = []
    if live and leaves:
        objective = sum((o * w).sum() for o, w in zip(live, _projection_weights(live, 0)))
        gradients = [
            g if g is not None else torch.zeros_like(leaf)
            for g, leaf in zip(torch.autograd.grad(objective, leaves, allow_unused=True), leaves)
        ]
    return [o.detach() for o in outputs], gradients


def _run(spec: MethodSpec, device: torch.device, dtype: torch.dtype, seed: int) -> list[torch.Tensor]:
    example = _example(spec, device, dtype, seed)
    layer = build(spec, example.hparams, device, dtype, seed, example=example)
    outputs, gradients = forward_backward(layer, differentiable_inputs(example.inputs))
    return outputs + gradients


def _invoke(spec: MethodSpec, example: LayerExample, hparams: dict[str, Any]) -> Any:
    factory = getattr(example, "modules", None)
    layer = bind(load_target(spec), hparams, factory() if factory is not None else ())
    return layer if isinstance(layer, nn.Module) else layer(*example.inputs)


RUNNERS["layer"] = _run
INVOKERS["layer"] = (LayerExample, _invoke)


@conformance_check(
    "layer", "loss", dtypes="declared", applies=lambda spec: _prediction_form(spec), when="it takes a prediction"
)
def check_forward_backward(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """Outputs and gradients are finite, on the inputs' device, in the inputs' dtype, shaped like their leaves."""
    example = load_example(spec, device, dtype, 0, INVOKERS[spec.kind.value][0])
    layer = build(spec, example.hparams, device, dtype, example=example)
    inputs = differentiable_inputs(example.inputs)
    outputs, gradients = forward_backward(layer, inputs)
    if not outputs:
        fail(spec, "its output has no floating-point tensor")
    assert_finite(spec, outputs, "outputs")
    assert_finite(spec, gradients, "gradients")
    for index, output in enumerate(outputs):
        if output.device.type != device.type:
            fail(spec, f"output {index} is on {output.device}, the inputs on {device}")
        if output.is_floating_point() and output.dtype != dtype:
            fail(spec, f"output {index} is {output.dtype}; inputs are {dtype}")
    if not gradients:
        fail(spec, "no gradient reaches its inputs or parameters")


def _prediction_form(spec: MethodSpec) -> bool:
    """Layers, and losses whose gradients flow into a prediction (not a model-form loss)."""
    return getattr(spec.capabilities, "form", "prediction") != "model"


def _gradient_is(kind: str) -> Any:
    return lambda spec: _prediction_form(spec) and getattr(spec.capabilities, "gradient", None) == kind


@conformance_check("layer", "loss", dtypes="precise", applies=_gradient_is("exact"), when='gradient == "exact"')
def check_gradient_exact(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """The backward is the true gradient (torch.autograd.gradcheck on inputs and parameters)."""
    example = load_example(spec, device, dtype, 0, INVOKERS[spec.kind.value][0])
    layer = build(spec, example.hparams, device, dtype, example=example)
    inputs = differentiable_inputs(example.inputs)
    if spec.kind.value == "loss":  # only the prediction is differentiated
        inputs = (inputs[0], *(x.detach() if isinstance(x, torch.Tensor) else x for x in inputs[1:]))
    params = dict(layer.named_parameters()) if isinstance(layer, nn.Module) else {}
    names = list(params)
    leaves = [x for x in inputs if isinstance(x, torch.Tensor) and x.requires_grad]

    def function(*values: torch.Tensor) -> Any:
        replaced = list(inputs)
        positions = [i for i, x in enumerate(inputs) if isinstance(x, torch.Tensor) and x.requires_grad]
        for position, value in zip(positions, values[: len(positions)]):
            replaced[position] = value
        if isinstance(layer, nn.Module):
            new_params = dict(zip(names, values[len(positions) :]))
            return torch.func.functional_call(layer, new_params, tuple(replaced))
        return layer(*replaced)

    tolerance = (
        {"eps": 1e-6, "atol": 1e-5, "rtol": 1e-3}
        if dtype == torch.float64
        else {"eps": 1e-2, "atol": 5e-2, "rtol": 5e-2}
    )
    values = tuple(leaves) + tuple(p.detach().clone().requires_grad_(True) for p in params.values())
    try:
        torch.autograd.gradcheck(function, values, **tolerance)
    except Exception as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        fail(
            spec,
            f"its gradient is declared exact but gradcheck fails in {dtype}: {first_line}. Fix the backward or "
            "declare capabilities.gradient='surrogate'",
        )


@conformance_check("layer", "loss", applies=_gradient_is("surrogate"), when='gradient == "surrogate"')
def check_gradient_flows(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """A declared surrogate gradient is nonzero somewhere: it must carry a learning signal."""
    example = load_example(spec, device, dtype, 0, INVOKERS[spec.kind.value][0])
    _, gradients = forward_backward(
        build(spec, example.hparams, device, dtype, example=example), differentiable_inputs(example.inputs)
    )
    if not any(bool((g != 0).any()) for g in gradients):
        fail(spec, "its surrogate gradient is zero everywhere on the example")


@conformance_check("layer", applies=target_is_class, when="the target is a class")
def check_state_dict_round_trip(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """A module built from another seed, loaded with a module's state_dict, computes the same outputs."""
    example = _example(spec, device, dtype)
    original = build(spec, example.hparams, device, dtype, seed=0, example=example)
    copy = build(spec, example.hparams, device, dtype, seed=1, example=example)
    copy.load_state_dict(original.state_dict())
    inputs = differentiable_inputs(example.inputs)
    expected = tensors_of(original(*inputs))
    actual = tensors_of(copy(*inputs))
    assert_close(spec, expected, actual, "outputs after load_state_dict (is every tensor a parameter or buffer?)")
